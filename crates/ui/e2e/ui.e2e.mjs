// lasthop's web UI in a real browser: Debian's headless Chromium driven by
// playwright-core. Run by crates/lasthop/tests/ui_browser.rs against a
// collector filled by real demo scenarios; what to expect comes in the
// environment (the Rust test reads it from the ledgers and `lasthop report`):
//
//   LASTHOP_URL         the collector's API address, http://127.0.0.1:PORT
//   LOST_KEY            an order the ledgers lost; LOST_VERDICT, LOST_HOP its verdict and hop
//   EXPECTED_LOST       lost messages in the report of all time
//   EXPECTED_HOP_LOST   of which at LOST_HOP
//   XSS_MSG_ID          a message whose span attributes and key hold markup and script
//   SHOTS_DIR           where screenshots go
//
// Exits 1 at the first expectation that does not hold, saying which.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env('LASTHOP_URL');
const shots = env('SHOTS_DIR');
mkdirSync(shots, { recursive: true });

function expect(cond, what) {
  if (!cond) throw new Error('expected ' + what);
  console.log('ok: ' + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const failures = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => failures.push('page error: ' + e.message));
  // A failed request is logged by the browser itself; the pages expect some
  // (a bad trace id is a 400, /api/live/status a 404 without live judging).
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) failures.push('console error: ' + m.text());
  });
  page.on('dialog', (d) => { failures.push('a dialog opened: ' + d.message()); d.dismiss(); });
  const shot = (name) => page.screenshot({ path: join(shots, name + '.png'), fullPage: true });

  // 1. Search a lost order's key with the form.
  const lostKey = env('LOST_KEY');
  const lostVerdict = env('LOST_VERDICT');
  const lostHop = env('LOST_HOP');
  await page.goto(base + '/');
  await page.selectOption('select[name=by]', 'key');
  await page.fill('input[name=q]', lostKey);
  await page.selectOption('select[name=range]', 'all');
  await page.click('button[type=submit]');
  await page.waitForSelector('#results-table');
  expect(page.url().includes('/search?key=' + encodeURIComponent(lostKey)), 'the search is a deep link: ' + page.url());
  const row = page.locator('#results-table tbody tr');
  expect(await row.count() === 1, 'one message for ' + lostKey);
  const cell = row.locator(`[data-verdict="${lostVerdict}"]`);
  expect(await cell.count() === 1, `its verdict is ${lostVerdict}`);
  expect((await cell.textContent()).includes('at ' + lostHop), `at hop ${lostHop}: ${await cell.textContent()}`);
  await shot('search');

  // 2. Open it: the verdict, its hop, the fix, the evidence marked in the waterfall.
  await row.locator('a').first().click();
  await page.waitForSelector('#waterfall');
  expect(new URL(page.url()).pathname.startsWith('/message/'), 'the message page has its own address');
  const card = page.locator(`#verdicts [data-verdict="${lostVerdict}"]`);
  expect(await card.count() >= 1, 'the verdict card is shown');
  expect((await card.locator('.hop-name').first().textContent()) === lostHop, 'the card names the hop');
  const fix = (await card.locator('.fix').first().textContent()) || '';
  expect(fix.startsWith('Fix: ') && fix.length > 20, 'the fix is shown: ' + fix);
  const explanation = await card.locator('.explanation').first().textContent();
  expect(explanation.length > 20, 'the explanation is shown');
  const evidence = page.locator('.wf-row[data-evidence=true]');
  expect(await evidence.count() >= 1, 'evidence spans are marked in the waterfall');
  const rows = await page.locator('.wf-row').count();
  expect(rows >= 2, `the waterfall has the path (${rows} spans)`);
  await evidence.first().click();
  const detail = page.locator('.wf-detail:not([hidden])');
  expect((await detail.first().textContent()).includes('span id'), 'a bar opens its attributes');
  await shot('message');
  const messageUrl = page.url();

  // A deep link to the message opens the same page by itself.
  const fresh = await browser.newPage();
  await fresh.goto(messageUrl);
  await fresh.waitForSelector('#verdicts');
  expect(await fresh.locator(`#verdicts [data-verdict="${lostVerdict}"]`).count() >= 1, 'the pasted message link shows the verdict');
  await fresh.close();

  // 3. The report: totals, charts, a count followed to its lost messages.
  await page.goto(base + '/report?range=all');
  await page.waitForSelector('#totals');
  const lostTotal = (await page.locator('#total-lost').textContent()).trim();
  expect(lostTotal === env('EXPECTED_LOST'), `the report counts ${env('EXPECTED_LOST')} lost (shows ${lostTotal})`);
  expect(await page.locator('[data-chart=timeline] rect[data-hop]').count() >= 1, 'the timeline draws losses by hop');
  await shot('report');
  const hopChart = page.locator('[data-chart="Lost by hop"] .hbar').filter({ hasText: lostHop });
  const hopCount = (await hopChart.locator('.n').textContent()).trim();
  expect(hopCount === env('EXPECTED_HOP_LOST'), `lost at ${lostHop}: ${env('EXPECTED_HOP_LOST')} (shows ${hopCount})`);
  await hopChart.locator('.n a').click();
  await page.waitForSelector('#filter-note');
  const listed = page.locator('#lost-table tbody tr');
  expect(String(await listed.count()) === hopCount, 'following the count lists that many lost messages');
  const hops = await listed.locator('td:nth-child(5)').allTextContents();
  expect(hops.every((h) => h === lostHop), 'each of them lost at ' + lostHop);
  const keys = await listed.locator('td:nth-child(2)').allTextContents();
  expect(keys.some((k) => k.split(' ').includes(lostKey)), 'the lost order is among them');
  await shot('report-filtered');
  await listed.filter({ hasText: lostKey }).locator('a').first().click();
  await page.waitForSelector('#verdicts');
  expect(await page.locator(`#verdicts [data-verdict="${lostVerdict}"]`).count() >= 1, 'a listed message opens its page');

  // 4. Markup and script in span attributes show as text.
  const xss = env('XSS_MSG_ID');
  await page.goto(base + '/message/' + encodeURIComponent(xss));
  await page.waitForSelector('#waterfall');
  await page.locator('.wf-row').first().click();
  const text = await page.locator('#page').textContent();
  expect(text.includes('<script>window.__lasthop_pwned = 1</script>'), 'the script attribute is shown as text');
  expect(text.includes('<img/src=x/onerror=window.__lasthop_pwned=2>'), 'the markup in a key is shown as text');
  expect(await page.locator('#page script, #page img, #page b[data-injected]').count() === 0, 'no element came from a span');
  expect(await page.evaluate(() => window.__lasthop_pwned === undefined), 'no script from a span ran');
  await shot('escaped');
  await page.goto(base + '/search?key=' + encodeURIComponent('<img/src=x/onerror=window.__lasthop_pwned=2>'));
  await page.waitForSelector('#results-table');
  expect(await page.evaluate(() => window.__lasthop_pwned === undefined), 'searching for the markup runs nothing');

  // 5. "No spans found" and "query failed" are different answers.
  await page.goto(base + '/search?key=NO_SUCH_ORDER_0');
  await page.waitForSelector('#no-results');
  expect((await page.locator('#no-results').textContent()).startsWith('No spans found for business key NO_SUCH_ORDER_0'), 'an unknown key finds no spans');
  await page.goto(base + '/search?trace_id=not-hex');
  await page.waitForSelector('#search-error');
  expect((await page.locator('#search-error').textContent()).startsWith('Query failed: '), 'a bad trace id is a failed query');

  // 6. Collector health.
  await page.goto(base + '/health');
  await page.waitForSelector('#health');
  const acked = Number(await page.locator('[data-counter="acknowledged spans"] td.mono').textContent());
  expect(acked > 0, `acknowledged spans are counted (${acked})`);
  expect(await page.locator('[data-counter="index lag"]').count() === 1, 'the index lag is shown');
  await shot('health');

  expect(failures.length === 0, 'no page error: ' + failures.join('; '));
} catch (e) {
  console.error('FAILED: ' + e.message + (failures.length ? '\n' + failures.join('\n') : ''));
  process.exitCode = 1;
} finally {
  await browser.close();
}
