//! `lasthop report`: judge every message in a window (or in files) and
//! summarize the losses. From the store, a window is judged a share of its
//! messages at a time (`--share-spans`), so memory stays bounded however
//! long the history.

use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lasthop_analyzer::facts::{PlainDelivered, WindowFacts};
use lasthop_analyzer::report::{self, ReportBuilder, Window};
use lasthop_analyzer::{Evidence, Globals, Options};
use lasthop_collector::{Share, SpanStore};
use lasthop_vocab::SpanRecord;

use crate::cli::{ReportArgs, ReportFormat};

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
        ("limit", MAX_SPANS.to_string()),
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
    serde_json::from_value(body["spans"].clone())
        .with_context(|| format!("{endpoint} sent spans lasthop cannot read"))
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

/// What the whole window `[lo, hi)` says about the groups ([`Globals`]),
/// gathered share by share from fast-field facts; the facts themselves when
/// the window is one share. A window with more consumers than facts can tell
/// apart is read from records instead (`None` then: no plain path).
fn window_globals(
    store: &SpanStore,
    window: (u64, u64),
    of: u32,
) -> anyhow::Result<(Globals, Option<Option<WindowFacts>>)> {
    let mut globals = Globals::default();
    let mut only_share = None;
    for index in 0..of {
        let facts = WindowFacts::read(store, window, Share { index, of })?;
        if facts.too_many_consumers {
            eprintln!("more than 64 (group, topic) pairs: judging every message from its records");
            let mut globals = Globals::default();
            for index in 0..of {
                let (lo, hi) = window;
                let parts =
                    store.records_in_window(lo, hi, Share { index, of }, &|_| false, &|_| {})?;
                globals.absorb(&Evidence::of(parts.iter().flatten()));
            }
            return Ok((globals, None));
        }
        globals.absorb_facts(&facts);
        if of == 1 {
            only_share = Some(facts);
        }
    }
    Ok((globals, Some(only_share)))
}

/// Judges every message of the store's window `[lo, hi)`, about
/// `share_spans` spans at a time: with more spans than that, the window's
/// messages are split into shares by message key. A first pass gathers what
/// each group did over the whole window ([`Globals`], from fast-field facts
/// only). Then, per share, the messages whose facts show them plainly
/// delivered are counted without reading a record ([`PlainDelivered`]) and
/// the others' records are read and judged by the rules, with the window's
/// facts. Spans without a message id are read by every share. `read_all`
/// judges every message from its records.
fn judge_store(
    store: &SpanStore,
    (lo, hi): (u64, u64),
    share_spans: u64,
    options: &Options,
    read_all: bool,
) -> anyhow::Result<ReportBuilder> {
    // Every pass reads the same commit, however a collector goes on writing.
    let store = &store.pinned();
    let total = store.count_in_window(lo, hi)?;
    let of = u32::try_from(total.div_ceil(share_spans).max(1)).context("window too large")?;
    let share = |index| Share { index, of };
    let (globals, facts) = window_globals(store, (lo, hi), of)?;
    let (by_facts, mut only_share) = match facts {
        Some(only_share) => (!read_all, only_share),
        None => (false, None),
    };
    let mut builder = ReportBuilder::new();
    let bar = progress_bar(total, "judging");
    for index in 0..of {
        let plain = if by_facts {
            let facts = match only_share.take() {
                Some(facts) => facts,
                None => WindowFacts::read(store, (lo, hi), share(index))?,
            };
            Some(PlainDelivered::find(&facts, &globals, &options.groups))
        } else {
            None
        };
        if let Some(plain) = &plain {
            builder.add_plain(plain);
            bar.inc(plain.spans);
        }
        // The bar counts each span once: those without a message id in the first share only.
        let counted = |part: &[SpanRecord]| {
            let n = part
                .iter()
                .filter(|s| s.message_id.is_some() || index == 0)
                .count();
            bar.inc(n as u64);
        };
        // The facts saw every message of the share (same commit): read the others.
        let skip = |key| plain.as_ref().is_some_and(|p| !p.others.contains(&key));
        let parts = store.records_in_window(lo, hi, share(index), &skip, &counted)?;
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
    let report = if args.server.is_none() && args.inputs.is_empty() {
        let store = SpanStore::open(&args.data.path)?;
        let window_ns = (since.unwrap_or(0), until.unwrap_or(u64::MAX));
        judge_store(&store, window_ns, args.share_spans, &options, args.read_all)?.finish(window)
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
