//! `lasthop query`: the path of each message a trace id, message id or
//! business key finds (the analyzer's [`lasthop_analyzer::path`], which the
//! web UI shows too), as a timeline with its verdicts.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use lasthop_analyzer::JudgedAt;
use lasthop_analyzer::path::{Lookup, MessagePath, Role, outcome, paths, paths_json, time_text};
use lasthop_analyzer::report::Window;
use lasthop_collector::SpanStore;
use lasthop_vocab::SpanRecord;
use serde_json::Value;

use crate::data_dir::DataDir;
use crate::flags::{Judging, OutputFormat};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("lookup").required(true).args(["trace_id", "key", "msg_id"])))]
pub struct QueryArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Ask a running collector's API instead of reading the data directory,
    /// e.g. http://127.0.0.1:16686.
    #[arg(long, value_name = "URL", conflicts_with = "path")]
    pub server: Option<String>,
    /// Trace id (32 hex digits).
    #[arg(long, value_name = "HEX")]
    pub trace_id: Option<String>,
    /// Business key, e.g. an order id.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Message id.
    #[arg(long, value_name = "ID")]
    pub msg_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub judging: Judging,
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let lookup = match (&args.trace_id, &args.msg_id, &args.key) {
        (Some(t), _, _) => Lookup::trace_id(t).map_err(|e| anyhow::anyhow!("--trace-id: {e}"))?,
        (_, Some(m), _) => Lookup::MessageId(m.clone()),
        (_, _, Some(k)) => Lookup::Key(k.clone()),
        _ => bail!("give --trace-id, --msg-id or --key"),
    };
    let (all, newest) = match &args.server {
        Some(url) => {
            let all = fetch(url, &lookup)?;
            let newest = all.iter().map(|s| s.start_ns).max();
            (all, newest)
        }
        None => {
            let store = SpanStore::open(&args.data.path)?;
            (lookup.find(&store)?, store.newest_start_ns()?)
        }
    };
    let at = JudgedAt::resolve(args.judging.now()?, newest, None);
    let found = paths(&all, &lookup, &args.judging.options(at));
    match args.format {
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&paths_json(&found, at))?)
        }
        OutputFormat::Text => {
            print!("{}", text_output(&lookup, &found));
            if !found.is_empty() {
                let judged = Window::new(None, None, at).judged().unwrap_or_default();
                println!("\n{judged}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks a collector's `/api/spans`.
fn fetch(url: &str, lookup: &Lookup) -> anyhow::Result<Vec<SpanRecord>> {
    let endpoint = format!("{}/api/spans", url.trim_end_matches('/'));
    let response = reqwest::blocking::Client::new()
        .get(&endpoint)
        .query(&[(lookup.param(), lookup.value()), ("context", "true")])
        .send()
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .with_context(|| format!("{endpoint} did not answer JSON"))?;
    if !status.is_success() {
        let msg = body["errors"][0]["msg"]
            .as_str()
            .unwrap_or("no reason given")
            .to_owned();
        bail!("{endpoint} answered {status}: {msg}");
    }
    serde_json::from_value(body["spans"].clone())
        .with_context(|| format!("{endpoint} sent spans lasthop cannot read"))
}

/// Where a span sits: broker, offsets, queue, group, whichever it has.
fn place(r: &SpanRecord) -> String {
    let mut parts = Vec::new();
    if let Some(b) = &r.broker {
        parts.push(match r.epoch {
            Some(e) => format!("{b}#{e}"),
            None => b.clone(),
        });
    }
    if let Some(o) = r.commitlog_offset {
        parts.push(format!("offset {o}"));
    }
    if let (Some(s), Some(e)) = (r.range_start, r.range_end) {
        parts.push(format!("range {s}..{e}"));
    }
    if let Some(q) = r.queue_id {
        parts.push(format!("queue {q}"));
    }
    if let Some(q) = r.queue_offset {
        parts.push(format!("queue offset {q}"));
    }
    if let Some(g) = &r.group {
        parts.push(format!("group {g}"));
    }
    parts.join(", ")
}

fn text_output(lookup: &Lookup, paths: &[MessagePath]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (label, value) = (lookup.label(), lookup.value());
    if paths.is_empty() {
        let _ = writeln!(out, "no spans found for {label} {value}");
        return out;
    }
    let own: usize = paths
        .iter()
        .map(|m| m.hops.iter().filter(|h| h.role == Role::Own).count())
        .sum();
    let _ = writeln!(out, "{own} spans for {label} {value}\n");
    for m in paths {
        let id = m.message_id.as_deref().unwrap_or("(no message id)");
        let _ = write!(out, "message {id}");
        if !m.keys.is_empty() {
            let _ = write!(out, "  keys {}", m.keys.join(" "));
        }
        if let Some(t) = &m.topic {
            let _ = write!(out, "  topic {t}");
        }
        let _ = writeln!(out);
        for h in &m.hops {
            let r = &h.span;
            let hop = r.hop.map_or("-", |h| h.as_str());
            // Spans of others on this message's path say why they are there;
            // a `*` marks the spans a verdict cites.
            let mark = if h.evidence_for.is_empty() { ' ' } else { '*' };
            let role = match h.role {
                Role::Own => String::new(),
                other => format!("  [{}]", other.as_str()),
            };
            let _ = writeln!(
                out,
                " {mark}{}  {hop:<10} {:<18} {:<24} {:<10} {}{role}",
                time_text(r.start_ns),
                truncate(&r.service, 18),
                truncate(&r.name, 24),
                outcome(r),
                place(r)
            );
        }
        for note in &m.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        if !m.trace_ids.is_empty() {
            let _ = writeln!(out, "  traces: {}", m.trace_ids.join(", "));
        }
        if m.hops.iter().any(|h| !h.evidence_for.is_empty()) {
            let _ = writeln!(out, "  (* the verdict's evidence)");
        }
        if let Some(v) = &m.verdicts {
            if v.process_count > 1 {
                let _ = writeln!(out, "  processed {} times (duplicates)", v.process_count);
            }
            if v.send_indeterminate {
                let _ = writeln!(
                    out,
                    "  the producer saw a failed send, but the broker stored it"
                );
            }
            for g in &v.verdicts {
                let group = g.group.as_deref().unwrap_or("(no group)");
                let hop = g
                    .hop
                    .as_deref()
                    .map(|h| format!(" at {h}"))
                    .unwrap_or_default();
                let cause = g
                    .cause
                    .map(|c| {
                        format!(
                            " ({})",
                            serde_json::to_value(c)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {group}: {}{hop}{cause}",
                    g.verdict.as_str().to_uppercase()
                );
                let _ = writeln!(out, "    {}", g.explanation);
                if let Some(fix) = &g.fix {
                    let _ = writeln!(out, "    fix: {fix}");
                }
            }
        }
        let _ = writeln!(out);
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}
