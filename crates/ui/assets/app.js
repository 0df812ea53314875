// lasthop's web UI: one plain-JavaScript page, no dependencies.
//
// Every string that comes from spans reaches the page as a text node or an
// attribute value set through the DOM (`el`, `svg`): nothing is ever parsed
// as HTML, so a span attribute holding markup or script shows as text.
// Pages: / and /search (search), /message/{id} (a message's path),
// /report (the loss report of a window), /health (the collector's counters).
'use strict';

(() => {
  const page = document.getElementById('page');
  let meta = null;

  // ---- DOM helpers -------------------------------------------------------

  function append(node, ...children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  /** An element; `props` are DOM properties (`class`, `href`, `onclick`, `data-*` ...). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k.startsWith('data-') || k === 'title' || k === 'href' || k === 'type' ||
               k === 'name' || k === 'value' || k === 'placeholder' || k === 'for' || k === 'id') {
        node.setAttribute(k, String(v));
      } else node[k] = v;
    }
    return append(node, children);
  }

  /** An SVG element with attributes. */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    }
    return append(node, children);
  }

  function show(...children) {
    page.replaceChildren();
    append(page, children);
  }

  function link(href, ...children) {
    return el('a', { href }, ...children);
  }

  function qs(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== '') q.set(k, v);
    }
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // ---- data --------------------------------------------------------------

  /** GET a JSON route: `{ok: true, body}` or `{ok: false, error}`. */
  async function api(path, params) {
    let res;
    try {
      res = await fetch(path + qs(params || {}), { headers: { accept: 'application/json' } });
    } catch (e) {
      return { ok: false, status: 0, error: 'cannot reach lasthop: ' + e.message };
    }
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const msg = body && body.errors && body.errors[0] && body.errors[0].msg;
      return { ok: false, status: res.status, error: msg || (res.status + ' ' + res.statusText) };
    }
    return { ok: true, status: res.status, body };
  }

  async function loadMeta() {
    if (meta) return meta;
    const r = await api('/api/ui/meta');
    meta = r.ok ? r.body : { verdicts: [], hops: [] };
    return meta;
  }

  function kind(verdict) {
    const v = (meta && meta.verdicts || []).find((x) => x.name === verdict);
    if (v && v.lost) return 'lost';
    if (verdict === 'delivered' || verdict === 'rolled_back') return 'ok';
    if (verdict === 'in_flight' || verdict === 'half_pending' || verdict === 'dead_lettered') return 'pending';
    return 'unknown';
  }

  function badge(cell) {
    const text = (cell.group || '(no group)') + ': ' + cell.verdict + (cell.hop ? ' at ' + cell.hop : '');
    return el('span', { class: 'badge ' + kind(cell.verdict), 'data-verdict': cell.verdict }, text);
  }

  // ---- time windows ------------------------------------------------------

  const RANGES = [
    ['15m', 'Last 15 minutes', 15 * 60e3],
    ['1h', 'Last hour', 3600e3],
    ['24h', 'Last 24 hours', 24 * 3600e3],
    ['7d', 'Last 7 days', 7 * 24 * 3600e3],
    ['all', 'All time', null],
    ['custom', 'Between…', null],
  ];

  /** `{since, until}` in ms (either may be null) and a phrase for messages. */
  function windowOf(params, fallback) {
    const range = params.get('range') || (params.get('since') || params.get('until') ? 'custom' : fallback);
    if (range === 'custom') {
      const since = Number(params.get('since')) || null;
      const until = Number(params.get('until')) || null;
      const fmt = (ms) => new Date(ms).toISOString();
      const phrase = 'between ' + (since ? fmt(since) : 'the beginning') + ' and ' + (until ? fmt(until) : 'now');
      return { range, since, until, phrase };
    }
    const r = RANGES.find((x) => x[0] === range) || RANGES.find((x) => x[0] === fallback);
    if (!r[2]) return { range: r[0], since: null, until: null, phrase: 'in all time' };
    const until = Date.now() + 1000;
    return { range: r[0], since: until - r[2], until, phrase: 'in the ' + r[1].toLowerCase() };
  }

  function localInput(ms) {
    if (!ms) return '';
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
    return d.toISOString().slice(0, 16);
  }

  function rangeControls(w) {
    const since = el('input', { type: 'datetime-local', name: 'since', value: localInput(w.range === 'custom' ? w.since : null) });
    const until = el('input', { type: 'datetime-local', name: 'until', value: localInput(w.range === 'custom' ? w.until : null) });
    const custom = el('span', { class: 'custom' }, el('label', {}, 'From', since), el('label', {}, 'To', until));
    const select = el('select', { name: 'range', onchange: () => { custom.hidden = select.value !== 'custom'; } },
      RANGES.map(([v, label]) => el('option', { value: v, selected: v === w.range }, label)));
    custom.hidden = w.range !== 'custom';
    return { nodes: [el('label', {}, 'Time', select), custom], read: () => {
      if (select.value !== 'custom') return { range: select.value };
      const ms = (input) => (input.value ? String(new Date(input.value).getTime()) : null);
      return { range: 'custom', since: ms(since), until: ms(until) };
    } };
  }

  // ---- search ------------------------------------------------------------

  const LOOKUPS = [['key', 'Business key'], ['msg_id', 'Message id'], ['trace_id', 'Trace id']];

  async function searchPage(params) {
    await loadMeta();
    const by = LOOKUPS.find(([k]) => params.get(k)) || LOOKUPS[0];
    const w = windowOf(params, params.get(by[0]) ? 'all' : '1h');
    const kindSel = el('select', { name: 'by' }, LOOKUPS.map(([k, l]) => el('option', { value: k, selected: k === by[0] }, l)));
    const value = el('input', { class: 'wide', name: 'q', placeholder: 'ORDER_1001, a message id or a trace id', value: params.get(by[0]) || '' });
    const topic = el('input', { name: 'topic', placeholder: 'any', value: params.get('topic') || '' });
    const group = el('input', { name: 'group', placeholder: 'any', value: params.get('group') || '' });
    const verdict = el('select', { name: 'verdict' }, el('option', { value: '' }, 'any'),
      meta.verdicts.map((v) => el('option', { value: v.name, selected: v.name === params.get('verdict') }, v.name)));
    const range = rangeControls(w);
    const form = el('form', { class: 'search card', onsubmit: (e) => {
      e.preventDefault();
      const p = { [kindSel.value]: value.value.trim(), topic: topic.value.trim(), group: group.value.trim(), verdict: verdict.value, ...range.read() };
      go('/search' + qs(p));
    } },
      el('label', {}, 'Find by', kindSel), el('label', {}, 'Value', value),
      el('label', {}, 'Topic', topic), el('label', {}, 'Consumer group', group),
      el('label', {}, 'Verdict', verdict), range.nodes, el('button', { type: 'submit' }, 'Search'));
    const results = el('div', { id: 'results' });
    show(el('h1', {}, 'Find a message'), form, results);
    if (![...params.keys()].length) {
      append(results, el('p', { class: 'muted' }, 'Search by an order id or another business key, a message id or a trace id; or leave the value empty to list the newest messages of a window, narrowed by topic, group and verdict.'));
      return;
    }
    results.replaceChildren(el('p', { class: 'muted' }, 'Searching…'));
    const query = { topic: params.get('topic'), group: params.get('group'), verdict: params.get('verdict'), since: w.since, until: w.until };
    if (params.get(by[0])) query[by[0]] = params.get(by[0]);
    const r = await api('/api/ui/search', query);
    results.replaceChildren();
    if (!r.ok) {
      append(results, el('p', { class: 'error', id: 'search-error' }, 'Query failed: ' + r.error));
      return;
    }
    const found = r.body.messages;
    const what = params.get(by[0]) ? by[1].toLowerCase() + ' ' + params.get(by[0]) : 'messages';
    if (!found.length) {
      append(results, el('p', { class: 'empty', id: 'no-results' }, 'No spans found for ' + what + ' ' + w.phrase + '.'));
      return;
    }
    append(results,
      el('p', { class: 'muted' }, found.length + ' message' + (found.length === 1 ? '' : 's') + ' ' + w.phrase,
        r.body.source === 'report' ? ' (every loss the report counts in this window)' : '',
        r.body.truncated ? '; more matched: narrow the search to see them' : '',
        '; judged as of ' + r.body.judged_at + '.'),
      el('table', { id: 'results-table' },
        el('thead', {}, el('tr', {}, ['Message', 'Keys', 'Topic', 'First seen', 'Verdict per group'].map((h) => el('th', {}, h)))),
        el('tbody', {}, found.map((m) => el('tr', { 'data-message': m.message_id },
          el('td', { class: 'mono' }, link('/message/' + encodeURIComponent(m.message_id), m.message_id)),
          el('td', {}, m.keys.join(' ')),
          el('td', {}, m.topic || ''),
          el('td', { class: 'mono' }, m.time || ''),
          el('td', {}, m.verdicts.length ? m.verdicts.map(badge) : el('span', { class: 'muted' }, 'not judged'))))),
      ));
  }

  // ---- a message's path --------------------------------------------------

  function attrText(v) {
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function verdictCard(v) {
    return el('div', { class: 'card verdict ' + kind(v.verdict), 'data-verdict': v.verdict },
      el('div', { class: 'head' }, (v.group || '(no group)') + ': ', el('span', { class: 'badge ' + kind(v.verdict) }, v.verdict),
        v.hop ? [' at hop ', el('b', { class: 'hop-name' }, v.hop)] : '', v.cause ? el('span', { class: 'muted' }, ' (' + v.cause + ')') : ''),
      el('p', { class: 'explanation' }, v.explanation),
      v.fix ? el('p', { class: 'fix' }, el('b', {}, 'Fix: '), v.fix) : null);
  }

  function waterfall(hops) {
    const t0 = Math.min(...hops.map((h) => h.start_ns));
    const t1 = Math.max(...hops.map((h) => Math.max(h.end_ns, h.start_ns)));
    const spanNs = Math.max(t1 - t0, 1);
    const pct = (ns) => (100 * (ns - t0) / spanNs);
    const ms = (ns) => ((ns - t0) / 1e6).toFixed(ns - t0 < 1e7 ? 2 : 0) + ' ms';
    const box = el('div', { class: 'waterfall', id: 'waterfall' });
    for (const h of hops) {
      const evidence = h.evidence_for.length > 0;
      const left = pct(h.start_ns);
      const bar = el('div', { class: 'bar' + (h.outcome.startsWith('error') ? ' error' : '') + (h.role !== 'own' ? ' other' : '') });
      const width = Math.max(pct(Math.max(h.end_ns, h.start_ns)) - left, 0.3);
      bar.style.left = left + '%';
      bar.style.width = width + '%';
      // Beside the bar: after it, or before it when it ends near the right edge.
      const when = el('span', { class: 'when' }, '+' + ms(h.start_ns) + '  ' + h.outcome);
      if (left + width < 75) when.style.left = (left + width + 0.6) + '%';
      else when.style.right = (100 - left + 0.6) + '%';
      const detail = el('div', { class: 'wf-detail', hidden: true },
        el('table', {}, el('tbody', {},
          [['time', h.time], ['outcome', h.outcome], ['service', h.service], ['span', h.name], ['role on this path', h.role],
           ['evidence for', evidence ? h.evidence_for.map((g) => g || '(no group)').join(', ') : ''],
           ['trace id', h.trace_id], ['span id', h.span_id]]
            .concat(Object.entries(h.attributes).map(([k, v]) => [k, attrText(v)]))
            .filter(([, v]) => v !== '')
            .map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', { class: 'mono' }, v))))));
      const row = el('div', { class: 'wf-row' + (evidence ? ' evidence' : ''), 'data-hop': h.hop || '', 'data-role': h.role,
        'data-evidence': evidence ? 'true' : 'false', title: 'show the attributes of this span',
        onclick: () => { detail.hidden = !detail.hidden; } },
      el('div', { class: 'label' }, evidence ? el('span', { class: 'star', title: 'cited by the verdict' }, '★') : '',
        el('span', { class: 'hop' }, h.hop || '-'),
        h.role !== 'own' ? el('span', { class: 'role' }, '[' + h.role.replace('_', ' ') + '] ') : '',
        h.service + ' · ' + h.name),
      el('div', { class: 'track' }, bar, when));
      append(box, row, detail);
    }
    return box;
  }

  async function messagePage(id) {
    await loadMeta();
    show(el('h1', {}, 'Message ', el('span', { class: 'mono' }, id)), el('p', { class: 'muted' }, 'Loading its path…'));
    const r = await api('/api/ui/paths', { msg_id: id });
    if (!r.ok) {
      show(el('h1', {}, 'Message ', el('span', { class: 'mono' }, id)), el('p', { class: 'error' }, 'Query failed: ' + r.error));
      return;
    }
    const m = r.body.messages.find((x) => x.message_id === id);
    if (!m) {
      show(el('h1', {}, 'Message ', el('span', { class: 'mono' }, id)), el('p', { class: 'empty', id: 'no-results' }, 'No spans found for message id ' + id + '.'));
      return;
    }
    const stored = m.stored;
    const facts = el('dl', { class: 'facts card' },
      el('dt', {}, 'Keys'), el('dd', {}, m.keys.length ? m.keys.map((k) => [link('/search' + qs({ key: k }), k), ' ']) : '—'),
      el('dt', {}, 'Topic'), el('dd', {}, m.topic || '—'),
      el('dt', {}, 'Stored'), el('dd', {}, stored ? stored.broker + ' (epoch ' + stored.epoch + ') at commit-log offset ' + stored.offset +
        (stored.queue_id !== null ? ', queue ' + stored.queue_id + ' offset ' + stored.queue_offset : '') : 'no broker said it stored it'),
      el('dt', {}, 'Traces'), el('dd', { class: 'mono' }, m.trace_ids.map((t) => [link('/search' + qs({ trace_id: t }), t), ' '])),
      el('dt', {}, 'Judged'), el('dd', {}, 'as of ' + r.body.judged_at + ' (' + r.body.judged_at_from + ')'));
    const extra = [];
    if (m.process_count > 1) extra.push('processed ' + m.process_count + ' times (duplicates)');
    if (m.send_indeterminate) extra.push('the producer saw a failed send, but the broker stored it');
    show(
      el('h1', {}, 'Message ', el('span', { class: 'mono', id: 'message-id' }, id)),
      facts,
      el('h2', {}, 'Verdict'),
      el('div', { id: 'verdicts' }, m.verdicts.length ? m.verdicts.map(verdictCard) : el('p', { class: 'muted' }, 'No verdict: no consumer group is known for its topic.')),
      extra.length ? el('ul', {}, extra.map((t) => el('li', {}, t))) : null,
      el('h2', {}, 'Path'),
      el('p', { class: 'muted' }, m.hops.length + (m.hops.length === 1 ? ' span' : ' spans') + ' in time order: its own, and those of others that tell its story (the flush and replication that covered it, the batch delivery, the commit past it, the broker\'s restart or failover). ★ marks the verdict\'s evidence; click a span for its attributes.'),
      m.notes.length ? el('ul', { class: 'notes', id: 'notes' }, m.notes.map((n) => el('li', {}, n))) : null,
      waterfall(m.hops));
  }

  // ---- the report --------------------------------------------------------

  const HOP_COLORS = { send: '#c4312b', store: '#e07b39', flush: '#d69e2e', replicate: '#805ad5', receive: '#3182ce',
    process: '#2c7a7b', settle: '#2f855a', dlq: '#718096', unknown: '#a0aec0' };
  const color = (hop) => HOP_COLORS[hop] || '#4a5568';

  function hbars(title, entries, hrefOf, lost) {
    const max = Math.max(1, ...entries.map(([, n]) => n));
    return el('div', { class: 'card chart', 'data-chart': title },
      el('h2', {}, title),
      entries.length ? entries.map(([name, n]) => {
        const fill = el('div', { class: 'fill' + (lost ? ' lost' : '') });
        fill.style.width = (100 * n / max) + '%';
        const count = hrefOf ? link(hrefOf(name), String(n)) : String(n);
        return el('div', { class: 'hbar' }, el('span', { class: 'name', title: name }, name), el('div', { class: 'rail' }, fill), el('span', { class: 'n' }, count));
      }) : el('p', { class: 'muted' }, 'none'));
  }

  function timelineChart(report, w, hrefOf) {
    const step = report.timeline_step_seconds * 1000;
    const byStart = new Map(report.timeline.map((b) => [Date.parse(b.start), b.lost]));
    let first, last;
    if (w.since && w.until) {
      first = Math.floor(w.since / step) * step;
      last = w.until;
    } else if (report.timeline.length) {
      first = Math.min(...byStart.keys());
      last = Math.max(...byStart.keys()) + step;
    } else {
      return el('div', { class: 'card chart', 'data-chart': 'timeline' }, el('h2', {}, 'Losses over time'), el('p', { class: 'muted' }, 'no losses in this window'));
    }
    const buckets = [];
    for (let t = first; t < last; t += step) buckets.push([t, byStart.get(t) || {}]);
    const hops = [...new Set(report.timeline.flatMap((b) => Object.keys(b.lost)))].sort();
    const max = Math.max(1, ...buckets.map(([, l]) => Object.values(l).reduce((a, b) => a + b, 0)));
    const W = 720, H = 180, pad = 28, bw = Math.min((W - pad) / buckets.length, 48);
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H + 30}`, role: 'img', 'aria-label': 'losses over time by hop' });
    append(chart, svg('line', { x1: pad, y1: H, x2: W, y2: H, stroke: '#cbd5e0' }), svg('text', { x: 0, y: 12, 'font-size': 11, fill: '#667085' }, String(max)));
    buckets.forEach(([t, lost], i) => {
      let y = H;
      for (const hop of hops) {
        const n = lost[hop] || 0;
        if (!n) continue;
        const h = (H - 10) * n / max;
        y -= h;
        append(chart, svg('a', { href: hrefOf(t, hop) },
          svg('rect', { x: pad + i * bw + 1, y, width: Math.max(bw - 2, 1), height: h, fill: color(hop), 'data-hop': hop, 'data-count': n },
            svg('title', {}, n + ' lost at ' + hop + ' from ' + new Date(t).toISOString()))));
      }
    });
    const label = (i) => new Date(buckets[i][0]).toISOString().slice(step >= 86400e3 ? 5 : 11, step >= 86400e3 ? 10 : 16);
    for (const i of [0, Math.floor(buckets.length / 2), buckets.length - 1]) {
      append(chart, svg('text', { x: pad + i * bw, y: H + 16, 'font-size': 11, fill: '#667085' }, label(i)));
    }
    return el('div', { class: 'card chart', 'data-chart': 'timeline' },
      el('h2', {}, 'Losses over time by hop'),
      el('div', { class: 'legend' }, hops.map((h) => { const i = el('i'); i.style.background = color(h); return el('span', {}, i, h); }),
        el('span', { class: 'muted' }, 'buckets of ' + (step >= 3600e3 ? step / 3600e3 + ' h' : step / 60e3 + ' min'))),
      chart);
  }

  async function reportPage(params) {
    await loadMeta();
    const w = windowOf(params, '1h');
    const filter = ['hop', 'topic', 'group', 'broker', 'verdict', 'bucket'].find((k) => params.get(k));
    const range = rangeControls(w);
    const form = el('form', { class: 'search card', onsubmit: (e) => { e.preventDefault(); go('/report' + qs(range.read())); } },
      range.nodes, el('button', { type: 'submit' }, 'Show'));
    show(el('h1', {}, 'Loss report'), form, el('p', { class: 'muted', id: 'report-status' }, 'Judging the window…'));
    const r = await api('/api/ui/report', { since: w.since, until: w.until });
    if (!r.ok) {
      show(el('h1', {}, 'Loss report'), form, el('p', { class: 'error' }, 'Query failed: ' + r.error));
      return;
    }
    const rep = r.body;
    const keep = { range: w.range, since: w.range === 'custom' ? w.since : null, until: w.range === 'custom' ? w.until : null };
    // Quick ranges move with the clock: a link pins the window it was drawn for.
    const pinned = w.since || w.until ? { range: 'custom', since: w.since, until: w.until } : keep;
    const href = (k, v, extra) => '/report' + qs({ ...pinned, [k]: v, ...(extra || {}) }) + '#lost';
    const step = rep.timeline_step_seconds * 1000;
    const lost = rep.lost_messages.filter((m) => {
      if (!filter) return true;
      const v = params.get(filter);
      if (filter === 'hop') return (m.hop || 'unknown') === v;
      if (filter === 'bucket') { const t = Date.parse(m.sent_at); return t >= Number(v) && t < Number(v) + step && (!params.get('bhop') || (m.hop || 'unknown') === params.get('bhop')); }
      return m[filter] === v;
    });
    const verdicts = Object.entries(rep.totals.by_verdict).filter(([, n]) => n > 0);
    const lostTotal = rep.lost_messages.length;
    const funnel = rep.funnel.map(([stage, n]) => [stage, n]);
    const sorted = (o) => Object.entries(o).sort((a, b) => b[1] - a[1]);
    show(
      el('h1', {}, 'Loss report'), form,
      el('div', { class: 'card totals', id: 'totals' },
        el('div', {}, el('div', { class: 'big', id: 'total-messages' }, String(rep.totals.messages)), 'messages'),
        el('div', {}, el('div', { class: 'big error', id: 'total-lost' }, link(href('lost', 'all'), String(lostTotal))), 'lost'),
        el('div', { class: 'muted' }, 'Window ' + (rep.window.since || 'the beginning') + ' .. ' + (rep.window.until || 'now'),
          el('br'), 'judged as of ' + rep.window.judged_at + ' (' + rep.window.judged_at_from + ')')),
      el('div', { class: 'charts' },
        timelineChart(rep, w, (t, hop) => href('bucket', t, { bhop: hop })),
        hbars('Funnel', funnel, null, false),
        hbars('Verdicts', verdicts, (v) => (kind(v) === 'lost' ? href('verdict', v) : '/search' + qs({ verdict: v, ...pinned })), false),
        hbars('Lost by hop', sorted(rep.by_hop), (k) => href('hop', k), true),
        hbars('Lost by topic', sorted(rep.by_topic), (k) => href('topic', k), true),
        hbars('Lost by group', sorted(rep.by_group), (k) => href('group', k), true),
        hbars('Lost by broker', sorted(rep.by_broker), (k) => href('broker', k), true)),
      el('h2', { id: 'lost' }, 'Lost messages'),
      filter ? el('p', { class: 'filter-note', id: 'filter-note' }, 'Showing the ' + lost.length + ' lost message' + (lost.length === 1 ? '' : 's') +
        ' with ' + (filter === 'bucket' ? 'hop ' + (params.get('bhop') || 'any') + ' sent from ' + new Date(Number(params.get('bucket'))).toISOString() : filter + ' ' + params.get(filter)) + ' ',
        link('/report' + qs(pinned) + '#lost', '(show all)')) : null,
      lost.length ? el('table', { id: 'lost-table' },
        el('thead', {}, el('tr', {}, ['Message', 'Keys', 'Group', 'Verdict', 'Hop', 'Broker', 'Sent', 'Why'].map((h) => el('th', {}, h)))),
        el('tbody', {}, lost.map((m) => el('tr', { 'data-message': m.message_id },
          el('td', { class: 'mono' }, link('/message/' + encodeURIComponent(m.message_id), m.message_id)),
          el('td', {}, m.keys.join(' ')), el('td', {}, m.group || ''),
          el('td', {}, el('span', { class: 'badge ' + kind(m.verdict) }, m.verdict)),
          el('td', {}, m.hop || ''), el('td', {}, m.broker || ''), el('td', { class: 'mono' }, m.sent_at || ''),
          el('td', {}, m.explanation))))) : el('p', { class: 'empty' }, 'No lost message ' + w.phrase + '.'));
    if (location.hash === '#lost') document.getElementById('lost').scrollIntoView();
  }

  // ---- health ------------------------------------------------------------

  async function healthPage() {
    show(el('h1', {}, 'Collector health'), el('p', { class: 'muted' }, 'Loading…'));
    const [stats, live] = await Promise.all([api('/api/stats'), api('/api/live/status')]);
    if (!stats.ok) {
      show(el('h1', {}, 'Collector health'), el('p', { class: 'error' }, 'Query failed: ' + stats.error));
      return;
    }
    const c = stats.body.collector;
    const rows = [['stored spans', stats.body.stored_spans]];
    if (c) {
      rows.push(['received spans', c.received_spans], ['acknowledged spans', c.acknowledged_spans], ['indexed spans', c.indexed_spans],
        ['rejected spans', c.rejected_spans], ['dropped spans', c.dropped_spans], ['refused requests', c.refused_requests],
        ['pushed back (retry later)', c.backpressure_requests], ['replayed from the write-ahead log', c.replayed_spans],
        ['index lag', c.index_lag_seconds.toFixed(1) + ' s'], ['backlog', c.backlog_bytes + ' bytes'], ['write-ahead log', c.wal_bytes + ' bytes'], ['commits', c.commits]);
    }
    const table = (title, entries) => el('div', { class: 'card' }, el('h2', {}, title),
      el('table', {}, el('tbody', {}, entries.map(([k, v]) => el('tr', { 'data-counter': k }, el('td', {}, k), el('td', { class: 'mono' }, String(v)))))));
    const liveRows = live.ok ? [['messages open', live.body.open], ['spans taken in', live.body.spans], ['judgings', live.body.judgings],
      ['settled', live.body.settled], ['evicted unjudged', live.body.evicted], ['alerts sent', live.body.alerts.sent], ['alerts failed', live.body.alerts.failed]] : null;
    show(el('h1', {}, 'Collector health'),
      c ? null : el('p', { class: 'muted' }, 'No collector is writing here: this page reads a data directory (lasthop ui).'),
      el('div', { id: 'health' }, table('Spans', rows),
        liveRows ? table('Live judging', liveRows) : el('p', { class: 'muted' }, 'Live judging is off.')),
      el('p', {}, el('button', { class: 'plain', onclick: healthPage }, 'Refresh')));
  }

  // ---- routing -----------------------------------------------------------

  function go(url) {
    history.pushState(null, '', url);
    render();
  }

  function render() {
    const path = location.pathname;
    const params = new URLSearchParams(location.search);
    const section = path.startsWith('/message/') ? 'search' : path.slice(1) || 'search';
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === section);
    let done;
    if (path.startsWith('/message/')) done = messagePage(decodeURIComponent(path.slice('/message/'.length)));
    else if (path === '/report') done = reportPage(params);
    else if (path === '/health') done = healthPage();
    else done = searchPage(params);
    done.catch((e) => show(el('p', { class: 'error' }, 'The page failed: ' + e.message)));
  }

  document.addEventListener('click', (e) => {
    const a = e.target.closest('a');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    // An SVG link's `href` is not a string: read the attribute.
    const url = new URL(a.getAttribute('href') || '', location.href);
    if (url.origin !== location.origin || a.target) return;
    e.preventDefault();
    go(url.pathname + url.search + url.hash);
  });
  window.addEventListener('popstate', render);
  render();
})();
