//! `lasthop query`: the spans of a trace, message id or business key,
//! grouped per message, as a timeline.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use lasthop_analyzer::report::{Window, rfc3339_ms};
use lasthop_analyzer::{Evidence, JudgedAt, MessageVerdicts};
use lasthop_collector::SpanStore;
use lasthop_collector::api::jaeger::lifted_attributes;
use lasthop_collector::messages::{MessageSpans, group_by_message};
use lasthop_vocab::SpanRecord;
use serde_json::{Map, Value, json};

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
    let (kind, value) = match (&args.trace_id, &args.msg_id, &args.key) {
        (Some(t), _, _) => ("trace_id", t.trim().to_ascii_lowercase()),
        (_, Some(m), _) => ("msg_id", m.clone()),
        (_, _, Some(k)) => ("key", k.clone()),
        _ => bail!("give --trace-id, --msg-id or --key"),
    };
    if kind == "trace_id" && !(value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())) {
        bail!("--trace-id must be 32 hex digits, got {value:?}");
    }
    let (all, newest) = match &args.server {
        Some(url) => {
            let all = fetch(url, kind, &value)?;
            let newest = all.iter().map(|s| s.start_ns).max();
            (all, newest)
        }
        None => {
            let store = SpanStore::open(&args.data.path)?;
            let found = match kind {
                "trace_id" => store.by_trace_id(&value)?,
                "msg_id" => store.by_message_id(&value)?,
                _ => store.by_key(&value)?,
            };
            (store.with_context(found)?, store.newest_start_ns()?)
        }
    };
    let at = JudgedAt::resolve(args.judging.now()?, newest, None);
    // The lookup's own spans; the rest is context for the analysis.
    let wanted = |r: &SpanRecord| match kind {
        "trace_id" => r.trace_id == value,
        "msg_id" => r.message_id.as_deref() == Some(value.as_str()),
        _ => r.keys.contains(&value),
    };
    let records: Vec<SpanRecord> = all.iter().filter(|r| wanted(r)).cloned().collect();
    let options = args.judging.options(at);
    let judged = Window::new(None, None, at).judged().unwrap_or_default();
    let verdicts = lasthop_analyzer::analyze(&Evidence::new(&all), &options);
    let messages = group_by_message(&records);
    let verdict_of = |m: &MessageSpans| {
        m.message_id
            .as_deref()
            .and_then(|id| verdicts.iter().find(|v| v.message_id == id))
    };
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json_output(&messages, &verdict_of, at))?
        ),
        OutputFormat::Text => {
            print!("{}", text_output(kind, &value, &messages, &verdict_of));
            if !messages.is_empty() {
                println!("\n{judged}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks a collector's `/api/spans`.
fn fetch(url: &str, kind: &str, value: &str) -> anyhow::Result<Vec<SpanRecord>> {
    let endpoint = format!("{}/api/spans", url.trim_end_matches('/'));
    let response = reqwest::blocking::Client::new()
        .get(&endpoint)
        .query(&[(kind, value), ("context", "true")])
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

/// The hop as a timeline entry: `{hop, service, time, outcome, trace_id, span_id, attributes}`.
fn hop_json(r: &SpanRecord) -> Value {
    let attributes: Map<String, Value> = lifted_attributes(r)
        .into_iter()
        .filter(|a| a.key != "lasthop.hop")
        .map(|a| (a.key, serde_json::to_value(a.value).unwrap_or(Value::Null)))
        .collect();
    json!({
        "hop": r.hop.map(|h| h.as_str()),
        "name": r.name,
        "service": r.service,
        "time": time_text(r.start_ns),
        "outcome": outcome(r),
        "trace_id": r.trace_id,
        "span_id": r.span_id,
        "attributes": attributes,
    })
}

fn json_output<'a>(
    messages: &[MessageSpans],
    verdict_of: &dyn Fn(&MessageSpans) -> Option<&'a MessageVerdicts>,
    at: JudgedAt,
) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let v = verdict_of(m);
            json!({
                "message_id": m.message_id,
                "keys": m.keys,
                "topic": m.topic,
                "trace_ids": m.trace_ids,
                "process_count": v.map_or(0, |v| v.process_count),
                "send_indeterminate": v.is_some_and(|v| v.send_indeterminate),
                "verdicts": v.map_or(Value::Array(vec![]), |v| serde_json::to_value(&v.verdicts).unwrap_or(Value::Null)),
                "hops": m.spans.iter().map(hop_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "messages": messages,
        "judged_at": rfc3339_ms(at.ns),
        "judged_at_from": at.from,
    })
}

fn outcome(r: &SpanRecord) -> String {
    match (&r.error_type, r.is_error()) {
        (Some(t), _) => format!("error: {t}"),
        (None, true) => "error".into(),
        (None, false) => "ok".into(),
    }
}

fn time_text(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = (ns % 1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| ns.to_string())
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

fn text_output<'a>(
    kind: &str,
    value: &str,
    messages: &[MessageSpans],
    verdict_of: &dyn Fn(&MessageSpans) -> Option<&'a MessageVerdicts>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let label = match kind {
        "trace_id" => "trace",
        "msg_id" => "message id",
        _ => "key",
    };
    if messages.is_empty() {
        let _ = writeln!(out, "no spans found for {label} {value}");
        return out;
    }
    let spans: usize = messages.iter().map(|m| m.spans.len()).sum();
    let _ = writeln!(out, "{spans} spans for {label} {value}\n");
    for m in messages {
        let id = m.message_id.as_deref().unwrap_or("(no message id)");
        let _ = write!(out, "message {id}");
        if !m.keys.is_empty() {
            let _ = write!(out, "  keys {}", m.keys.join(" "));
        }
        if let Some(t) = &m.topic {
            let _ = write!(out, "  topic {t}");
        }
        let _ = writeln!(out);
        for r in &m.spans {
            let hop = r.hop.map_or("-", |h| h.as_str());
            let _ = writeln!(
                out,
                "  {}  {hop:<10} {:<18} {:<24} {:<10} {}",
                time_text(r.start_ns),
                truncate(&r.service, 18),
                truncate(&r.name, 24),
                outcome(r),
                place(r)
            );
        }
        if !m.trace_ids.is_empty() {
            let _ = writeln!(out, "  traces: {}", m.trace_ids.join(", "));
        }
        if let Some(v) = verdict_of(m) {
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
