//! Loss reports over many messages: totals by verdict, losses by hop, topic,
//! group and broker, a timeline of losses by hop, and the lost messages with
//! their explanations. Rendered as JSON (DESIGN section 7's shape), text or
//! markdown.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use polars::prelude::PolarsResult;

use crate::columnar::VerdictCounts;
use crate::model::{MessageVerdicts, Verdict};

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Window {
    pub since: Option<String>,
    pub until: Option<String>,
    /// The "now" silence was counted back from (RFC 3339).
    pub judged_at: Option<String>,
    /// Where that "now" came from: `--now`, `the newest span`, `the wall clock`.
    pub judged_at_from: Option<String>,
}

impl Window {
    /// The window `[since, until)` judged at `at`.
    pub fn new(since: Option<String>, until: Option<String>, at: crate::JudgedAt) -> Window {
        Window {
            since,
            until,
            judged_at: Some(rfc3339_ms(at.ns)),
            judged_at_from: Some(at.from.to_owned()),
        }
    }

    /// "judged as of T (the newest span)", when known.
    pub fn judged(&self) -> Option<String> {
        let at = self.judged_at.as_deref()?;
        let from = self.judged_at_from.as_deref().unwrap_or("unknown");
        Some(format!(
            "judged as of {at} ({from}; silence counts back from there; --now sets another)"
        ))
    }
}

/// RFC 3339 with milliseconds.
pub fn rfc3339_ms(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Totals {
    pub messages: u64,
    /// Verdicts (one per message and group) by name.
    pub by_verdict: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineBucket {
    /// Start of the bucket (RFC 3339).
    pub start: String,
    /// Losses in the bucket by hop.
    pub lost: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LostMessage {
    pub message_id: String,
    pub keys: Vec<String>,
    pub topic: Option<String>,
    pub group: Option<String>,
    /// The broker that stored it, when known.
    pub broker: Option<String>,
    /// When it was first sent or stored (RFC 3339), when known.
    pub sent_at: Option<String>,
    pub verdict: Verdict,
    pub hop: Option<String>,
    pub cause: Option<crate::model::Cause>,
    pub explanation: String,
    pub fix: Option<String>,
}

impl LostMessage {
    /// The entry of message `m` for its verdict `v`.
    pub fn of(m: &MessageVerdicts, v: &crate::model::GroupVerdict) -> LostMessage {
        LostMessage {
            message_id: m.message_id.clone(),
            keys: m.keys.clone(),
            topic: m.topic.clone(),
            group: v.group.clone(),
            broker: m.broker.clone(),
            sent_at: m.sent_ns.map(rfc3339_ms),
            verdict: v.verdict,
            hop: v.hop.clone(),
            cause: v.cause,
            explanation: v.explanation.clone(),
            fix: v.fix.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub window: Window,
    pub totals: Totals,
    pub by_hop: BTreeMap<String, u64>,
    pub by_topic: BTreeMap<String, u64>,
    pub by_group: BTreeMap<String, u64>,
    pub by_broker: BTreeMap<String, u64>,
    pub timeline: Vec<TimelineBucket>,
    /// The width of each timeline bucket in seconds (buckets without a loss are left out).
    pub timeline_step_seconds: u64,
    /// Messages that reached each stage: send, store, flush, replicate, receive, process.
    pub funnel: Vec<(String, u64)>,
    pub lost_messages: Vec<LostMessage>,
}

/// ns since the epoch of an RFC 3339 time (as [`rfc3339_ms`] writes them).
pub fn parse_rfc3339_ns(text: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(t.timestamp_nanos_opt()?).ok()
}

fn rfc3339(ns: u64) -> String {
    chrono::DateTime::from_timestamp((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Builds the report of `messages`.
pub fn build(messages: &[MessageVerdicts], window: Window) -> PolarsResult<Report> {
    let mut builder = ReportBuilder::new();
    builder.add(messages)?;
    Ok(builder.finish(window))
}

const FUNNEL: [&str; 6] = ["send", "store", "flush", "replicate", "receive", "process"];

/// A report built from messages judged a batch at a time: what it keeps is
/// counts, plus the lost messages themselves.
#[derive(Debug)]
pub struct ReportBuilder {
    messages: u64,
    counts: VerdictCounts,
    funnel: [u64; FUNNEL.len()],
    lost_messages: Vec<LostMessage>,
    lost_times: Vec<(u64, String)>,
}

impl Default for ReportBuilder {
    fn default() -> Self {
        ReportBuilder::new()
    }
}

impl ReportBuilder {
    pub fn new() -> ReportBuilder {
        ReportBuilder {
            messages: 0,
            counts: VerdictCounts {
                by_verdict: Verdict::ALL
                    .iter()
                    .map(|v| (v.as_str().to_owned(), 0))
                    .collect(),
                ..VerdictCounts::default()
            },
            funnel: [0; FUNNEL.len()],
            lost_messages: Vec::new(),
            lost_times: Vec::new(),
        }
    }

    /// Adds judged messages (each message once over all batches): the
    /// counts by verdict, hop, topic, group and broker are polars group-bys.
    pub fn add(&mut self, messages: &[MessageVerdicts]) -> PolarsResult<()> {
        self.messages += messages.len() as u64;
        self.counts.add(messages)?;
        for m in messages {
            for (count, stage) in self.funnel.iter_mut().zip(FUNNEL) {
                *count += u64::from(m.reached.contains(&stage));
            }
            for v in m.verdicts.iter().filter(|v| v.verdict.is_lost()) {
                self.add_lost(m, v);
            }
        }
        Ok(())
    }

    /// Adds messages judged from facts (plainly delivered or in flight).
    pub fn add_plain(&mut self, plain: &crate::facts::PlainVerdicts) {
        self.messages += plain.messages;
        for (verdict, n) in [
            (Verdict::Delivered, plain.delivered),
            (Verdict::InFlight, plain.in_flight),
        ] {
            *self
                .counts
                .by_verdict
                .entry(verdict.as_str().to_owned())
                .or_default() += n;
        }
        for (count, n) in self.funnel.iter_mut().zip(plain.funnel) {
            *count += n;
        }
    }

    fn add_lost(&mut self, m: &MessageVerdicts, v: &crate::model::GroupVerdict) {
        let hop = v.hop.clone().unwrap_or_else(|| "unknown".into());
        if let Some(t) = m.sent_ns {
            self.lost_times.push((t, hop));
        }
        self.lost_messages.push(LostMessage::of(m, v));
    }

    /// The report; lost messages in the order of their message ids.
    pub fn finish(self, window: Window) -> Report {
        self.finish_over(window, None)
    }

    /// The report, its timeline's buckets sized to `bounds` (ns since the
    /// epoch, `[since, until)`) when the window has both ends, else to the
    /// spread of the losses.
    pub fn finish_over(mut self, window: Window, bounds: Option<(u64, u64)>) -> Report {
        let (step, timeline) = timeline(&self.lost_times, bounds);
        self.lost_messages
            .sort_by(|a, b| (&a.message_id, &a.group).cmp(&(&b.message_id, &b.group)));
        Report {
            window,
            totals: Totals {
                messages: self.messages,
                by_verdict: self.counts.by_verdict,
            },
            by_hop: self.counts.by_hop,
            by_topic: self.counts.by_topic,
            by_group: self.counts.by_group,
            by_broker: self.counts.by_broker,
            timeline,
            timeline_step_seconds: step / 1_000_000_000,
            funnel: FUNNEL
                .iter()
                .zip(self.funnel)
                .map(|(stage, n)| ((*stage).to_owned(), n))
                .collect(),
            lost_messages: self.lost_messages,
        }
    }
}

/// Losses per bucket, and the bucket width in ns: one minute, or wider so
/// that the window (or, unbounded, the spread of the losses) has at most 60.
fn timeline(lost: &[(u64, String)], bounds: Option<(u64, u64)>) -> (u64, Vec<TimelineBucket>) {
    const MINUTE: u64 = 60_000_000_000;
    let spread = match bounds {
        Some((since, until)) if since < until => Some((since, until)),
        _ => lost
            .iter()
            .map(|l| l.0)
            .min()
            .zip(lost.iter().map(|l| l.0).max()),
    };
    let Some((min, max)) = spread else {
        return (MINUTE, Vec::new());
    };
    let width = ((max - min) / 60).max(MINUTE).div_ceil(MINUTE) * MINUTE;
    let first = min / width * width;
    let mut buckets: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    for (t, hop) in lost.iter().filter(|(t, _)| *t >= first) {
        *buckets
            .entry((t - first) / width)
            .or_default()
            .entry(hop.clone())
            .or_default() += 1;
    }
    let buckets = buckets
        .into_iter()
        .map(|(i, lost)| TimelineBucket {
            start: rfc3339(first + i * width),
            lost,
        })
        .collect();
    (width, buckets)
}

impl Report {
    /// How many (message, group) verdicts are losses.
    pub fn lost(&self) -> u64 {
        self.lost_messages.len() as u64
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let window = format!(
            "{} .. {}",
            self.window.since.as_deref().unwrap_or("the beginning"),
            self.window.until.as_deref().unwrap_or("now")
        );
        let _ = writeln!(out, "lasthop loss report ({window})");
        if let Some(judged) = self.window.judged() {
            let _ = writeln!(out, "{judged}");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} messages, {} lost\n",
            self.totals.messages,
            self.lost()
        );
        let _ = writeln!(out, "verdicts:");
        for (v, n) in self.totals.by_verdict.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  {v:<20} {n:>8}");
        }
        for (title, table) in [
            ("lost by hop", &self.by_hop),
            ("lost by topic", &self.by_topic),
            ("lost by group", &self.by_group),
            ("lost by broker", &self.by_broker),
        ] {
            if !table.is_empty() {
                let _ = writeln!(out, "\n{title}:");
                for (k, n) in table {
                    let _ = writeln!(out, "  {k:<30} {n:>8}");
                }
            }
        }
        if !self.timeline.is_empty() {
            let _ = writeln!(out, "\nlosses over time:");
            for b in &self.timeline {
                let parts: Vec<String> = b.lost.iter().map(|(h, n)| format!("{h} {n}")).collect();
                let _ = writeln!(out, "  {}  {}", b.start, parts.join(", "));
            }
        }
        if !self.lost_messages.is_empty() {
            let _ = writeln!(out, "\nlost messages:");
            for m in &self.lost_messages {
                let _ = writeln!(
                    out,
                    "  {} [{}] {} for {} at {}",
                    m.message_id,
                    m.keys.join(" "),
                    m.verdict.as_str(),
                    m.group.as_deref().unwrap_or("(no group)"),
                    m.hop.as_deref().unwrap_or("?")
                );
                let _ = writeln!(out, "    {}", m.explanation);
                if let Some(fix) = &m.fix {
                    let _ = writeln!(out, "    fix: {fix}");
                }
            }
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = String::new();
        let _ = writeln!(out, "# lasthop loss report\n");
        let _ = writeln!(
            out,
            "Window: {} .. {}{}. **{} messages, {} lost.**\n",
            self.window.since.as_deref().unwrap_or("the beginning"),
            self.window.until.as_deref().unwrap_or("now"),
            self.window
                .judged()
                .map_or_else(String::new, |j| format!(", {j}")),
            self.totals.messages,
            self.lost()
        );
        let _ = writeln!(out, "| verdict | count |\n| --- | --- |");
        for (v, n) in &self.totals.by_verdict {
            let _ = writeln!(out, "| {v} | {n} |");
        }
        for (title, table) in [
            ("Lost by hop", &self.by_hop),
            ("Lost by topic", &self.by_topic),
            ("Lost by group", &self.by_group),
            ("Lost by broker", &self.by_broker),
        ] {
            if !table.is_empty() {
                let _ = writeln!(out, "\n## {title}\n\n| | lost |\n| --- | --- |");
                for (k, n) in table {
                    let _ = writeln!(out, "| {} | {n} |", cell(k));
                }
            }
        }
        if !self.lost_messages.is_empty() {
            let _ = writeln!(
                out,
                "\n## Lost messages\n\n| message | keys | group | verdict | hop | explanation | fix |\n| --- | --- | --- | --- | --- | --- | --- |"
            );
            for m in &self.lost_messages {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    cell(&m.message_id),
                    cell(&m.keys.join(" ")),
                    cell(m.group.as_deref().unwrap_or("")),
                    m.verdict.as_str(),
                    cell(m.hop.as_deref().unwrap_or("")),
                    cell(&m.explanation),
                    cell(m.fix.as_deref().unwrap_or(""))
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GroupVerdict;

    fn m(id: &str, verdict: Verdict, hop: Option<&str>, t: u64) -> MessageVerdicts {
        MessageVerdicts {
            message_id: id.into(),
            broker: Some("broker-a".into()),
            sent_ns: Some(t),
            keys: vec![format!("ORDER_{id}")],
            topic: Some("order_paid".into()),
            trace_ids: vec![],
            process_count: 0,
            send_indeterminate: false,
            reached: vec!["send", "store"],
            verdicts: vec![GroupVerdict {
                group: Some("red-packet".into()),
                verdict,
                hop: hop.map(str::to_owned),
                cause: None,
                explanation: "why | with a pipe".into(),
                fix: crate::explain::fix(verdict).map(str::to_owned),
                evidence: vec![],
            }],
        }
    }

    #[test]
    fn counts_losses_by_dimension_and_over_time() {
        let t0 = 1_763_700_000_000_000_000;
        let ms = vec![
            m("1", Verdict::Delivered, None, t0),
            m("2", Verdict::LostAtFlush, Some("flush"), t0 + 1),
            m(
                "3",
                Verdict::LostAtFlush,
                Some("flush"),
                t0 + 120_000_000_000,
            ),
            m(
                "4",
                Verdict::LostAtConsumer,
                Some("settle"),
                t0 + 130_000_000_000,
            ),
        ];
        let r = build(&ms, Window::default()).unwrap();
        assert_eq!((r.totals.messages, r.lost()), (4, 3));
        assert_eq!(r.totals.by_verdict["delivered"], 1);
        assert_eq!(r.totals.by_verdict["lost_at_flush"], 2);
        assert_eq!(
            r.totals.by_verdict["dead_lettered"], 0,
            "every verdict name is listed"
        );
        assert_eq!(
            r.by_hop,
            BTreeMap::from([("flush".to_string(), 2), ("settle".to_string(), 1)])
        );
        assert_eq!(r.by_broker["broker-a"], 3);
        assert_eq!(r.timeline.len(), 2, "{:?}", r.timeline);
        assert_eq!(r.timeline[0].lost["flush"], 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["lost_messages"][0]["verdict"], "lost_at_flush");
        assert_eq!(json["totals"]["by_verdict"]["lost_at_flush"], 2);
        let md = r.to_markdown();
        assert!(
            md.contains("why \\| with a pipe"),
            "pipes are escaped in tables"
        );
        assert!(r.to_text().contains("4 messages, 3 lost"));
    }
}
