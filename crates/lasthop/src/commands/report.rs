//! `lasthop report`: judge every message in a window (or in files) and
//! summarize the losses.

use std::process::ExitCode;

use anyhow::{Context, bail};
use lasthop_analyzer::report::{self, Window};
use lasthop_analyzer::{Evidence, Options};
use lasthop_collector::SpanStore;
use lasthop_vocab::SpanRecord;

use crate::cli::{ReportArgs, ReportFormat};

/// Most spans read from the store for one report (the columnar, chunked
/// engine for larger histories is still to come).
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

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_time).transpose()?;
    let until = args.until.as_deref().map(parse_time).transpose()?;
    use std::io::IsTerminal;
    let progress = std::io::stderr().is_terminal();
    if progress {
        eprintln!("reading spans ...");
    }
    let spans: Vec<SpanRecord> = if let Some(url) = &args.server {
        fetch_window(url, since, until)?
    } else if args.inputs.is_empty() {
        let store = SpanStore::open(&args.data.path)?;
        let spans =
            store.by_time_range(since.unwrap_or(0), until.unwrap_or(u64::MAX), MAX_SPANS)?;
        if spans.len() == MAX_SPANS {
            eprintln!(
                "warning: the window holds more than {MAX_SPANS} spans; only the first {MAX_SPANS} are judged (narrow --since/--until)"
            );
        }
        spans
    } else {
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
        spans.retain(|s| {
            since.is_none_or(|t| s.start_ns >= t) && until.is_none_or(|t| s.start_ns < t)
        });
        spans
    };
    if progress {
        eprintln!("judging the messages of {} spans ...", spans.len());
    }
    let options = Options {
        grace_ns: args.grace * 1_000_000_000,
        groups: args.groups.clone(),
        ..Options::default()
    };
    let verdicts = lasthop_analyzer::analyze(&Evidence::new(&spans), &options);
    let report = report::build(
        &verdicts,
        Window {
            since: args.since.clone(),
            until: args.until.clone(),
        },
    );
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
