//! Plain-text application logs: what teams log far more often than JSON.
//!
//! The built-in layout is the common logback/log4j one: a timestamp, any
//! `[...]` groups (thread, service, MDC), a level, and a message with
//! `key=value` pairs, e.g.
//!
//! ```text
//! 2025-11-15 10:00:01.120 INFO [order-service] [Trace] message sent, traceId=5b8e..., msgId=M1, keys=ORDER_42
//! 2025-11-15 10:00:01.120 [main] ERROR c.e.RedPacketListener - processing failed, msgId=M1 error=Timeout
//! ```
//!
//! Other layouts are read through `--log-pattern`, a regular expression
//! with named groups ([`LogPattern`]). Either way a line becomes a span of
//! its hop when it names a message (message id or keys): the hop from
//! `hop=`, or from the message's words (sent, received, processed, ...),
//! or, for a line that tells an outcome and nothing else, `process`; the
//! outcome from `outcome=`, the level, or the words (failed, succeeded).
//! Lines that name no message are ordinary log lines and are passed over,
//! as are continuation lines (stack traces). A line that names a message
//! but not what happened to it is a bad record. Times without a zone are
//! read as UTC. Every span read here carries `lasthop.source = log`: the
//! analyzer lets an application's own word on its processing outrank a
//! tracer's (the swallowed exception).

use std::path::Path;
use std::sync::LazyLock;

use lasthop_vocab::{AttrValue, Attribute, Hop, SpanRecord, StatusCode, attr};
use regex::{Captures, Regex};

use super::{BadRecord, ReadOptions, Reader, Sniff};

/// The `text-log` input format.
#[derive(Debug)]
pub struct TextLog;

impl Reader for TextLog {
    fn name(&self) -> &'static str {
        "text-log"
    }

    fn about(&self) -> &'static str {
        "Plain-text application logs (logback/log4j layouts with key=value pairs such as msgId=... keys=...; --log-pattern for others)"
    }

    fn sniff(&self, head: &[u8]) -> Sniff {
        // Logs often open with a banner: any of the first lines will do.
        let text = String::from_utf8_lossy(head);
        if text.lines().take(64).any(|l| STARTS_WITH_TIME.is_match(l)) {
            Sniff::Likely
        } else {
            Sniff::No
        }
    }

    fn read(
        &self,
        path: &Path,
        options: &ReadOptions,
        sink: &mut dyn FnMut(Vec<SpanRecord>),
    ) -> std::io::Result<Vec<BadRecord>> {
        let bytes = std::fs::read(path)?;
        let text = String::from_utf8_lossy(&bytes);
        let (records, bad) = read(
            &text,
            &path.display().to_string(),
            options.log_pattern.as_ref(),
        );
        sink(records);
        Ok(bad)
    }
}

static STARTS_WITH_TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}").expect("a valid regex"));

/// The built-in layout: time, `[...]` groups, level, message.
static LAYOUT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^\[?(?P<time>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)\]?[:\s]+",
        r"(?P<pre>(?:\[[^\]]*\]\s*)*)",
        r"(?P<level>TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\b[\s:]*",
        r"(?P<post>(?:\[[^\]]*\]\s*)*)",
        r"(?P<message>.*)$"
    ))
    .expect("a valid regex")
});

static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?P<k>[A-Za-z_][\w.\-]*)=(?P<v>"[^"]*"|[^\s,;]+)"#).expect("a valid regex")
});

/// A user's regular expression for log lines (`--log-pattern`). Named
/// groups: `time` (required), and `msg_id` (or `message_id`), `keys` or
/// `trace_id` (one at least); optional `hop`, `outcome`, `error`, `level`,
/// `service`, `topic`, `group`, `message` (the text words are read from;
/// the whole line when absent).
#[derive(Debug, Clone)]
pub struct LogPattern(Regex);

impl LogPattern {
    /// Compiles `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<LogPattern, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("not a regular expression: {e}"))?;
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        if !names.contains(&"time") {
            return Err("the pattern needs a named group (?P<time>...)".into());
        }
        if !["msg_id", "message_id", "keys", "trace_id"]
            .iter()
            .any(|n| names.contains(n))
        {
            return Err(
                "the pattern needs a named group for the message: (?P<msg_id>...), (?P<keys>...) or (?P<trace_id>...)"
                    .into(),
            );
        }
        Ok(LogPattern(regex))
    }
}

impl std::str::FromStr for LogPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogPattern::new(s)
    }
}

/// What one line says, before it becomes a span.
#[derive(Debug, Default)]
struct Line {
    time: String,
    level: Option<String>,
    service: Option<String>,
    message: String,
    hop: Option<String>,
    message_id: Option<String>,
    keys: Vec<String>,
    trace_id: Option<String>,
    topic: Option<String>,
    group: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    rest: Vec<(String, String)>,
}

/// Reads a log file's text; `source` names it (span ids are made from it).
pub fn read(
    text: &str,
    source: &str,
    pattern: Option<&LogPattern>,
) -> (Vec<SpanRecord>, Vec<BadRecord>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut matched = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let Some(line) = (match pattern {
            Some(p) => from_pattern(p, raw),
            None => from_layout(raw),
        }) else {
            continue;
        };
        matched += 1;
        if line.message_id.is_none() && line.keys.is_empty() && line.trace_id.is_none() {
            continue; // an ordinary log line
        }
        let span_id = format!("{:08x}{:08x}", super::short_hash(source), line_no);
        match span_of(line, span_id) {
            Ok(span) => out.push(span),
            Err(reason) => bad.push(BadRecord {
                line: line_no,
                reason,
            }),
        }
    }
    if matched == 0 && text.lines().any(|l| !l.trim().is_empty()) {
        let reason = match pattern {
            Some(_) => "no line matches --log-pattern".to_owned(),
            None => "no line has the log layout lasthop reads (time, level, message); describe yours with --log-pattern".to_owned(),
        };
        bad.push(BadRecord { line: 1, reason });
    }
    (out, bad)
}

fn from_layout(raw: &str) -> Option<Line> {
    let c = LAYOUT.captures(raw)?;
    let group = |name| c.name(name).map_or("", |m| m.as_str());
    let brackets = |s: &str| -> Vec<String> {
        s.split(']')
            .filter_map(|b| b.trim().strip_prefix('['))
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
            .collect()
    };
    let mut line = Line {
        time: group("time").to_owned(),
        level: Some(group("level").to_owned()),
        // `LEVEL [service] ...`: the first group after the level names the service.
        service: brackets(group("post")).into_iter().next(),
        ..Line::default()
    };
    let message = group("message");
    let text_end = PAIR.find(message).map_or(message.len(), |m| m.start());
    line.message = message[..text_end]
        .trim()
        .trim_end_matches([',', ';'])
        .to_owned();
    // logback's default layout: `logger - message`.
    if let Some((_, text)) = line.message.split_once(" - ") {
        line.message = text.trim().to_owned();
    }
    for pair in PAIR.captures_iter(message) {
        let value = pair["v"].trim_matches('"').to_owned();
        line.put(&pair["k"], value);
    }
    Some(line)
}

fn from_pattern(pattern: &LogPattern, raw: &str) -> Option<Line> {
    let c: Captures<'_> = pattern.0.captures(raw)?;
    let get = |name: &str| {
        c.name(name)
            .map(|m| m.as_str().trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let mut line = Line {
        time: get("time").unwrap_or_default(),
        level: get("level"),
        service: get("service"),
        message: get("message").unwrap_or_else(|| raw.to_owned()),
        ..Line::default()
    };
    for name in [
        "hop",
        "msg_id",
        "message_id",
        "keys",
        "trace_id",
        "topic",
        "group",
        "outcome",
        "error",
    ] {
        if let Some(value) = get(name) {
            line.put(name, value);
        }
    }
    Some(line)
}

impl Line {
    /// Files a `key=value` pair under what it means; the rest stays an attribute.
    fn put(&mut self, key: &str, value: String) {
        let folded: String = key
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "msgid" | "messageid" => self.message_id = Some(value),
            "keys" | "key" | "bizkey" | "businesskey" => self.keys.extend(
                value
                    .split([',', ' '])
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned),
            ),
            "traceid" => self.trace_id = Some(value.to_ascii_lowercase()),
            "topic" | "destination" | "queue" => self.topic = Some(value),
            "group" | "consumergroup" => self.group = Some(value),
            "hop" => self.hop = Some(value),
            "outcome" | "result" | "status" => self.outcome = Some(value),
            "error" | "exception" | "errortype" | "err" => self.error = Some(value),
            "service" | "app" | "application" => self.service = Some(value),
            _ => self.rest.push((key.to_owned(), value)),
        }
    }
}

/// Whether the line says its processing failed (`Some(true)`), succeeded
/// (`Some(false)`), or neither.
fn failed(line: &Line) -> Result<Option<bool>, String> {
    if let Some(outcome) = &line.outcome {
        return match outcome.to_ascii_lowercase().as_str() {
            "ok" | "success" | "succeeded" | "true" | "done" => Ok(Some(false)),
            "error" | "fail" | "failed" | "failure" | "false" | "exception" => Ok(Some(true)),
            other => Err(format!("outcome {other:?} is neither ok nor error")),
        };
    }
    if line.error.is_some() || matches!(line.level.as_deref(), Some("ERROR" | "FATAL")) {
        return Ok(Some(true));
    }
    let has = words(&line.message);
    if has(&["fail", "error", "exception", "raised", "retry"]) {
        Ok(Some(true))
    } else if has(&[
        "succeeded",
        "success",
        "processed",
        "completed",
        "granted",
        "done",
    ]) {
        Ok(Some(false))
    } else {
        Ok(None)
    }
}

/// Whether any word of `text` starts with one of the given stems (words are
/// runs of letters, so `grant_red_packet` holds no `ack`).
fn words(text: &str) -> impl Fn(&[&str]) -> bool {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    move |stems: &[&str]| {
        words
            .iter()
            .any(|w| stems.iter().any(|stem| w.starts_with(stem)))
    }
}

/// The hop a line records: `hop=`, else its words, else `process` for a
/// line that tells an outcome.
fn hop(line: &Line, failed: Option<bool>) -> Result<Hop, String> {
    if let Some(hop) = &line.hop {
        return hop.parse::<Hop>().map_err(|e| e.to_string());
    }
    let has = words(&line.message);
    if has(&["process", "consum", "handl"]) {
        Ok(Hop::Process)
    } else if has(&["sent", "send", "publish", "produc"]) {
        Ok(Hop::Send)
    } else if has(&["receiv", "deliver"]) {
        Ok(Hop::Receive)
    } else if has(&["commit", "ack"]) {
        Ok(Hop::Settle)
    } else if failed.is_some() {
        Ok(Hop::Process)
    } else {
        Err(format!(
            "names a message but not what happened to it ({:?}): add hop=send|receive|process, or words such as sent, received, processed",
            line.message
        ))
    }
}

fn span_of(line: Line, span_id: String) -> Result<SpanRecord, String> {
    let time_ns = time(&line.time)?;
    let failed = failed(&line)?;
    let hop = hop(&line, failed)?;
    let is_error = failed == Some(true);
    let trace_id = line
        .trace_id
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_default();
    let mut attributes: Vec<Attribute> = line
        .rest
        .into_iter()
        .map(|(k, v)| Attribute::new(k, AttrValue::Str(v)))
        .collect();
    attributes.push(Attribute::new(attr::SOURCE, AttrValue::Str("log".into())));
    if let Some(level) = line.level {
        attributes.push(Attribute::new("log.level", AttrValue::Str(level)));
    }
    Ok(SpanRecord {
        trace_id,
        span_id,
        service: line.service.unwrap_or_else(|| "application".into()),
        name: if line.message.is_empty() {
            hop.as_str().to_owned()
        } else {
            line.message
        },
        start_ns: time_ns,
        end_ns: time_ns,
        status: if is_error {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        error_type: is_error.then(|| line.error.unwrap_or_else(|| "error".into())),
        hop: Some(hop),
        message_id: line.message_id,
        keys: line.keys,
        topic: line.topic,
        group: line.group,
        attributes,
        ..SpanRecord::default()
    })
}

/// A log timestamp: RFC 3339, `YYYY-MM-DD HH:MM:SS[.,fff]` (UTC), or epoch milliseconds.
fn time(text: &str) -> Result<u64, String> {
    let to_ns = |t: chrono::DateTime<chrono::Utc>| {
        t.timestamp_nanos_opt()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| format!("time {text:?} is out of range"))
    };
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms * 1_000_000);
    }
    let normalized = text.replace(',', ".").replacen(' ', "T", 1);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&normalized) {
        return to_ns(t.with_timezone(&chrono::Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&normalized, format) {
            return to_ns(t.and_utc());
        }
    }
    Err(format!(
        "time {text:?} is not a date and time lasthop reads"
    ))
}

#[cfg(test)]
#[path = "text_log_tests.rs"]
mod tests;
