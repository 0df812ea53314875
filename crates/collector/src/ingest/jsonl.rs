//! JSON-lines application logs: one object per line with `time` (RFC 3339 or
//! epoch milliseconds), `hop`, and `message_id` or `keys` (a string or an
//! array); optional `topic`, `group`, `service`, `outcome` (`ok`/`error`),
//! `error`, `trace_id`; every other field is kept as an attribute.

use lasthop_vocab::{AttrValue, Attribute, Hop, SpanRecord, StatusCode, attr};
use serde_json::{Map, Value};

use super::{BadRecord, Reader, Sniff};

/// The `jsonl` input format.
#[derive(Debug)]
pub struct Jsonl;

impl Reader for Jsonl {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn about(&self) -> &'static str {
        "Application logs, one JSON object per line (time, hop, message_id or keys, ...)"
    }

    fn sniff(&self, _head: &[u8]) -> Sniff {
        Sniff::Fallback
    }

    fn read(
        &self,
        path: &std::path::Path,
        _options: &super::ReadOptions,
        sink: &mut dyn FnMut(Vec<SpanRecord>),
    ) -> std::io::Result<Vec<BadRecord>> {
        let text = std::fs::read_to_string(path)?;
        let (records, bad) = read(&text, &path.display().to_string());
        sink(records);
        Ok(bad)
    }
}

/// Parses one line; `Err` says why it is not a log record lasthop can use.
pub fn parse_line(line: &str, span_id: String) -> Result<SpanRecord, String> {
    let Value::Object(mut o) =
        serde_json::from_str::<Value>(line).map_err(|e| format!("not JSON: {e}"))?
    else {
        return Err("not a JSON object".into());
    };
    let time_ns = time(o.remove("time").ok_or("missing \"time\"")?)?;
    let hop_text = take_str(&mut o, "hop").ok_or("missing \"hop\"")?;
    let hop: Hop = hop_text.parse().map_err(|e| format!("{e}"))?;
    let message_id = take_str(&mut o, "message_id");
    let keys = match o.remove("keys") {
        Some(Value::String(k)) => k.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(other) => {
            return Err(format!(
                "\"keys\" must be a string or an array, got {other}"
            ));
        }
        None => Vec::new(),
    };
    if message_id.is_none() && keys.is_empty() {
        return Err("needs \"message_id\" or \"keys\"".into());
    }
    let outcome = take_str(&mut o, "outcome");
    let error = take_str(&mut o, "error");
    let failed = match outcome.as_deref() {
        Some("error") => true,
        Some("ok") | None => false,
        Some(other) => return Err(format!("\"outcome\" must be ok or error, got {other:?}")),
    };
    let trace_id = take_str(&mut o, "trace_id")
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(SpanRecord {
        trace_id,
        span_id,
        service: take_str(&mut o, "service").unwrap_or_else(|| "application".into()),
        name: hop.as_str().into(),
        start_ns: time_ns,
        end_ns: time_ns,
        status: if failed {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        error_type: if failed {
            Some(error.unwrap_or_else(|| "error".into()))
        } else {
            None
        },
        hop: Some(hop),
        message_id,
        keys,
        topic: take_str(&mut o, "topic"),
        group: take_str(&mut o, "group"),
        attributes: {
            let mut attributes = attributes(o);
            attributes.push(Attribute::new(attr::SOURCE, AttrValue::Str("log".into())));
            attributes
        },
        ..SpanRecord::default()
    })
}

fn take_str(o: &mut Map<String, Value>, key: &str) -> Option<String> {
    match o.remove(key)? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn time(v: Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|ms| ms * 1_000_000)
            .ok_or_else(|| format!("\"time\" {n} is not epoch milliseconds")),
        Value::String(s) => {
            if let Ok(ms) = s.parse::<u64>() {
                return Ok(ms * 1_000_000);
            }
            chrono::DateTime::parse_from_rfc3339(&s)
                .map_err(|e| format!("\"time\" {s:?} is not RFC 3339: {e}"))
                .and_then(|t| {
                    t.timestamp_nanos_opt()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or("\"time\" is out of range".into())
                })
        }
        other => Err(format!(
            "\"time\" must be RFC 3339 or epoch milliseconds, got {other}"
        )),
    }
}

fn attributes(o: Map<String, Value>) -> Vec<Attribute> {
    o.into_iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => AttrValue::Str(s),
                Value::Bool(b) => AttrValue::Bool(b),
                Value::Number(n) => n.as_i64().map_or_else(
                    || AttrValue::Double(n.as_f64().unwrap_or(0.0)),
                    AttrValue::Int,
                ),
                other => AttrValue::Str(other.to_string()),
            };
            Attribute::new(k, value)
        })
        .collect()
}

/// Parses every line of a file's text.
pub fn read(text: &str, source: &str) -> (Vec<SpanRecord>, Vec<BadRecord>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let span_id = format!("{:08x}{:08x}", super::short_hash(source), i + 1);
        match parse_line(line, span_id) {
            Ok(s) => out.push(s),
            Err(reason) => bad.push(BadRecord {
                line: i as u64 + 1,
                reason,
            }),
        }
    }
    (out, bad)
}
