//! `lasthop report`: judge every message in a window (or in files) and
//! summarize the losses. From the store, a window is judged a share of its
//! messages at a time (`--share-spans`), so memory stays bounded however
//! long the history.

use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lasthop_analyzer::facts::{KeyFilter, KeySet, PlainVerdicts, WindowShares};
use lasthop_analyzer::report::{self, ReportBuilder, Window};
use lasthop_analyzer::{Evidence, Globals, Options};
use lasthop_collector::{KeyMemo, Messages, Pipeline, PipelineOptions, Share, SpanStore};
use lasthop_vocab::SpanRecord;

use crate::cli::{ReportArgs, ReportFormat};
use crate::commands::ingest::load_files;

/// Most spans read through a collector's API for one report.
const MAX_SPANS: usize = 5_000_000;

/// RFC 3339 or epoch milliseconds, to ns since the epoch.
fn parse_time(text: &str) -> anyhow::Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms * 1_000_000);
    }
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("{text:?} is not RFC 3339 or epoch milliseconds"))?;
    u64::try_from(t.timestamp_nanos_opt().unwrap_or(0)).context("time before 1970")
}

/// The window's spans from a collector's `/api/spans`.
fn fetch_window(
    url: &str,
    since: Option<u64>,
    until: Option<u64>,
) -> anyhow::Result<Vec<SpanRecord>> {
    let endpoint = format!("{}/api/spans", url.trim_end_matches('/'));
    let mut query = vec![
        ("limit", (MAX_SPANS + 1).to_string()),
        ("start_ns", since.unwrap_or(0).to_string()),
    ];
    if let Some(until) = until {
        query.push(("end_ns", until.to_string()));
    }
    let response = reqwest::blocking::Client::new()
        .get(&endpoint)
        .query(&query)
        .send()
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .with_context(|| format!("{endpoint} did not answer JSON"))?;
    if !status.is_success() {
        bail!(
            "{endpoint} answered {status}: {}",
            body["errors"][0]["msg"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    let spans: Vec<SpanRecord> = serde_json::from_value(body["spans"].clone())
        .with_context(|| format!("{endpoint} sent spans lasthop cannot read"))?;
    if spans.len() > MAX_SPANS {
        // A part of a window would give a wrong report, not a smaller one.
        bail!(
            "the window holds more than {MAX_SPANS} spans, more than a report through --server \
             reads: narrow it with --since and --until, or run the report with --data where \
             the collector keeps its data"
        );
    }
    Ok(spans)
}

/// The spans of a window from a collector (`--server`) or from files (`--input`).
fn read_spans(
    args: &ReportArgs,
    since: Option<u64>,
    until: Option<u64>,
) -> anyhow::Result<Vec<SpanRecord>> {
    if let Some(url) = &args.server {
        return fetch_window(url, since, until);
    }
    let mut spans = Vec::new();
    let mut bad = 0;
    for path in &args.inputs {
        let read = lasthop_analyzer::readers::read_file(
            path,
            args.input_format.map(|f| f.reader()),
            |r| spans.extend(r),
        )
        .with_context(|| format!("cannot read {}", path.display()))?;
        for b in &read.bad {
            eprintln!("{}:{}: {}", path.display(), b.line, b.reason);
        }
        bad += read.bad.len();
        eprintln!(
            "{}: {} spans ({})",
            path.display(),
            read.spans,
            read.format.as_str()
        );
    }
    if spans.is_empty() && bad > 0 {
        bail!("no input could be read");
    }
    spans.retain(|s| since.is_none_or(|t| s.start_ns >= t) && until.is_none_or(|t| s.start_ns < t));
    Ok(spans)
}

/// The --input files loaded into a temporary store (removed when the
/// returned directory is dropped), so that they are judged like the store,
/// with bounded memory.
fn spool(args: &ReportArgs, input_bytes: u64) -> anyhow::Result<(SpanStore, tempfile::TempDir)> {
    let parent = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("lasthop-report-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot make a temporary store in {}", parent.display()))?;
    eprintln!(
        "inputs hold {} MiB: loading them into a temporary store in {} to judge them with bounded memory",
        input_bytes >> 20,
        dir.path().display()
    );
    let pipeline = Pipeline::open(dir.path(), PipelineOptions::default())
        .with_context(|| format!("cannot open a store in {}", dir.path().display()))?;
    let loaded = load_files(
        &pipeline,
        &args.inputs,
        args.input_format.map(|f| f.reader()),
    )?;
    pipeline.shutdown();
    if loaded.spans == 0 && loaded.bad + loaded.unreadable > 0 {
        bail!("no input could be read");
    }
    let store = SpanStore::open(dir.path())?;
    Ok((store, dir))
}

/// A bar on stderr when it is a terminal (nothing otherwise).
fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {human_pos}/{human_len} spans, {eta} left")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Judges every message of the store's window `[lo, hi)` from records:
/// what the groups did over the window ([`Globals`]) first, then the
/// messages a share at a time. For windows whose facts cannot tell their
/// consumers apart.
fn judge_records(
    store: &SpanStore,
    (lo, hi): (u64, u64),
    of: u32,
    options: &Options,
    builder: &mut ReportBuilder,
) -> anyhow::Result<()> {
    let mut globals = Globals::default();
    let share = |index| Share { index, of };
    for index in 0..of {
        let parts = store.records_in_window(lo, hi, Messages::In(share(index)), &|_| {})?;
        globals.absorb(&Evidence::of(parts.iter().flatten()));
    }
    for index in 0..of {
        let parts = store.records_in_window(lo, hi, Messages::In(share(index)), &|_| {})?;
        let evidence = Evidence::with_globals(parts.iter().flatten(), &globals);
        builder.add(&lasthop_analyzer::analyze(&evidence, options))?;
    }
    Ok(())
}

/// For each span whose record is judged at once, how many spans' message
/// facts are held at once. The facts keep 80 bytes per message (about 20
/// per span at four spans a message), a record and its evidence about a
/// kilobyte: a share's facts take about an eighth of what a batch of
/// records may. A window with more spans is read in one pass all the same,
/// its shares' facts waiting in a temporary file (see
/// [`WindowShares`]), so more shares cost little time.
const FACTS_PER_RECORDS: u64 = 8;

/// The messages to read from records, in batches of about `share_spans`
/// spans: shares' other messages together while they fit, a share with more
/// split by key.
fn record_batches(shares: Vec<PlainVerdicts>, share_spans: u64) -> Vec<KeySet> {
    let mut pieces = Vec::new();
    for plain in shares {
        let parts = plain.other_spans.div_ceil(share_spans).max(1);
        if parts == 1 {
            pieces.push((plain.others, plain.other_spans));
            continue;
        }
        let mut split = vec![KeySet::default(); parts as usize];
        for key in plain.others {
            split[((key >> 64) as u64 % parts) as usize].insert(key);
        }
        pieces.extend(split.into_iter().map(|p| (p, plain.other_spans / parts)));
    }
    let mut batches: Vec<(KeySet, u64)> = vec![Default::default()];
    for (keys, spans) in pieces {
        let last = batches.last_mut().expect("one batch at least");
        if last.1 > 0 && last.1 + spans > share_spans {
            batches.push((keys, spans));
        } else {
            last.0.extend(keys);
            last.1 += spans;
        }
    }
    batches.into_iter().map(|(keys, _)| keys).collect()
}

/// Judges every message of the store's window `[lo, hi)` with memory for
/// about `share_spans` spans' records: with more spans than
/// [`FACTS_PER_RECORDS`] times that, the window's messages are handed out in
/// shares by message key.
///
/// 1. From fast fields only, no record read, in one pass: the
///    [`WindowShares`], and from them per share the window's facts with the
///    share's messages. Each share's facts add to the window's [`Globals`],
///    and the messages they show plainly delivered or plainly in flight
///    are counted ([`PlainVerdicts`]).
/// 2. The other messages' records are read in batches of about
///    `share_spans` spans ([`record_batches`]), each with every span without
///    a message id, and judged by the rules with the window's facts.
///
/// `--read-all` judges every message from its records.
fn judge_store(
    store: &SpanStore,
    window: (u64, u64),
    args: &ReportArgs,
    options: &Options,
) -> anyhow::Result<ReportBuilder> {
    let (share_spans, read_all) = (args.share_spans, args.read_all);
    let spill_dir = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    // Every pass reads the same commit, however a collector goes on writing.
    let store = &store.pinned();
    let (lo, hi) = window;
    let total = store.count_in_window(lo, hi)?;
    let facts_spans = share_spans.saturating_mul(FACTS_PER_RECORDS);
    let of = u32::try_from(total.div_ceil(facts_spans).max(1)).context("window too large")?;
    let mut builder = ReportBuilder::new();
    let reading = progress_bar(total, "reading fast fields");
    let read = |n| reading.inc(n);
    let memo = KeyMemo::default();
    let mut shares = WindowShares::read(store, window, (of, &spill_dir), Some(&memo), &read)?;
    reading.finish_and_clear();
    let bar = progress_bar(total, "judging");
    let mut globals = Globals::default();
    let mut others = Vec::new();
    for index in 0..of {
        let facts = shares.share(index)?;
        if facts.too_many_consumers {
            bar.finish_and_clear();
            eprintln!("more than 64 (group, topic) pairs: judging every message from its records");
            let mut builder = ReportBuilder::new();
            let record_shares =
                u32::try_from(total.div_ceil(share_spans).max(1)).context("window too large")?;
            judge_records(store, window, record_shares, options, &mut builder)?;
            return Ok(builder);
        }
        globals.absorb_facts(&facts);
        let plain = if read_all {
            PlainVerdicts::none(&facts)
        } else {
            PlainVerdicts::find(&facts, &globals, &options.groups)
        };
        builder.add_plain(&plain);
        bar.inc(plain.spans);
        others.push(plain);
    }
    for (first, wanted) in record_batches(others, share_spans)
        .iter()
        .enumerate()
        .map(|(i, b)| (i == 0, b))
    {
        // The bar counts each span once: those without a message id in the first batch only.
        let counted = |part: &[SpanRecord]| {
            let n = part
                .iter()
                .filter(|s| s.message_id.is_some() || first)
                .count();
            bar.inc(n as u64);
        };
        let filter = KeyFilter::new(wanted);
        let chosen = |key| filter.contains(key);
        let messages = match wanted.is_empty() {
            true => Messages::NoMessage,
            false => Messages::Chosen(&chosen, Some(&memo)),
        };
        let parts = store.records_in_window(lo, hi, messages, &counted)?;
        let evidence = Evidence::with_globals(parts.iter().flatten(), &globals);
        builder.add(&lasthop_analyzer::analyze(&evidence, options))?;
    }
    bar.finish_and_clear();
    Ok(builder)
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_time).transpose()?;
    let until = args.until.as_deref().map(parse_time).transpose()?;
    let options = Options {
        grace_ns: args.grace * 1_000_000_000,
        groups: args.groups.clone(),
        ..Options::default()
    };
    let window = Window {
        since: args.since.clone(),
        until: args.until.clone(),
    };
    let window_ns = (since.unwrap_or(0), until.unwrap_or(u64::MAX));
    let input_bytes: u64 = (args.inputs.iter())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let report = if args.server.is_none() && args.inputs.is_empty() {
        let store = SpanStore::open(&args.data.path)?;
        judge_store(&store, window_ns, &args, &options)?.finish(window)
    } else if !args.inputs.is_empty() && input_bytes > args.spool_above << 20 {
        let store = spool(&args, input_bytes)?;
        judge_store(&store.0, window_ns, &args, &options)?.finish(window)
    } else {
        let spans = read_spans(&args, since, until)?;
        let verdicts = lasthop_analyzer::analyze(&Evidence::new(&spans), &options);
        report::build(&verdicts, window)?
    };
    let text = match args.format {
        ReportFormat::Text => report.to_text(),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Markdown => report.to_markdown(),
        ReportFormat::Html => report.to_html(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "report written to {} ({} messages, {} lost)",
                path.display(),
                report.totals.messages,
                report.lost()
            );
        }
        None => print!("{text}"),
    }
    Ok(if args.fail_on_loss && report.lost() > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(keys: std::ops::Range<u128>, spans_each: u64) -> PlainVerdicts {
        let others: KeySet = keys
            .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) << 64 | k)
            .collect();
        PlainVerdicts {
            other_spans: others.len() as u64 * spans_each,
            others,
            ..PlainVerdicts::default()
        }
    }

    #[test]
    fn record_batches_hold_every_other_message_once_within_the_budget() {
        // Two small shares fit together; a large one is split by key.
        let shares = vec![share(0..10, 4), share(10..20, 4), share(20..1020, 4)];
        let batches = record_batches(shares, 100);
        let mut seen: Vec<u128> = batches.iter().flatten().map(|k| k & 0xffff).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1020).collect::<Vec<_>>());
        assert_eq!(batches[0].len(), 20, "the two small shares together");
        assert!(batches.len() >= 40, "4000 spans in batches of about 100");
        assert!(
            batches.iter().all(|b| b.len() * 4 <= 200),
            "{:?}",
            batches.iter().map(|b| b.len()).collect::<Vec<_>>()
        );
    }
}
