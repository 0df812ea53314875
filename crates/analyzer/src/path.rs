//! A message's path: its own spans and the spans of others that tell its
//! story (the flush and replication whose range covered its commit-log
//! offset, the broker's batch delivery that carried it, the offset commit
//! that went past it, the restart or failover that took it, the business
//! intent behind it, and every span a verdict cites), in time order, with
//! its verdicts. `lasthop query` and the web UI both show this, so the two
//! tell one story.

use std::collections::HashSet;

use lasthop_collector::api::jaeger::lifted_attributes;
use lasthop_collector::messages::group_by_message;
use lasthop_vocab::{Hop, SpanRecord};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::{JudgedAt, MessageVerdicts, Options};
use crate::report::rfc3339_ms;
use crate::{Evidence, analyze};

/// What a path is looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A trace id (32 lowercase hex digits).
    TraceId(String),
    /// A message id.
    MessageId(String),
    /// A business key, such as an order id.
    Key(String),
}

impl Lookup {
    /// A trace id lookup from text (either case, spaces around it
    /// ignored), or why the text is not a trace id.
    pub fn trace_id(text: &str) -> Result<Lookup, String> {
        let t = text.trim().to_ascii_lowercase();
        if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Lookup::TraceId(t))
        } else {
            Err(format!("a trace id is 32 hex digits, got {t:?}"))
        }
    }

    /// The lookup named by query parameters (`trace_id`, else `msg_id`,
    /// else `key`; empty ones ignored), as lasthop's APIs take them.
    pub fn from_params<'p>(
        get: impl Fn(&str) -> Option<&'p str>,
    ) -> Result<Option<Lookup>, String> {
        let get = |name: &str| get(name).map(str::trim).filter(|v| !v.is_empty());
        if let Some(t) = get("trace_id") {
            return Lookup::trace_id(t).map(Some);
        }
        if let Some(m) = get("msg_id") {
            return Ok(Some(Lookup::MessageId(m.to_owned())));
        }
        Ok(get("key").map(|k| Lookup::Key(k.to_owned())))
    }

    /// The query parameter that names it in lasthop's APIs.
    pub fn param(&self) -> &'static str {
        match self {
            Lookup::TraceId(_) => "trace_id",
            Lookup::MessageId(_) => "msg_id",
            Lookup::Key(_) => "key",
        }
    }

    /// Whether `r` is one of the spans the lookup asks for.
    pub fn matches(&self, r: &SpanRecord) -> bool {
        match self {
            Lookup::TraceId(t) => &r.trace_id == t,
            Lookup::MessageId(m) => r.message_id.as_deref() == Some(m.as_str()),
            Lookup::Key(k) => r.keys.contains(k),
        }
    }

    /// "trace", "message id" or "key", for messages to people.
    pub fn label(&self) -> &'static str {
        match self {
            Lookup::TraceId(_) => "trace",
            Lookup::MessageId(_) => "message id",
            Lookup::Key(_) => "key",
        }
    }

    /// The value looked up.
    pub fn value(&self) -> &str {
        match self {
            Lookup::TraceId(v) | Lookup::MessageId(v) | Lookup::Key(v) => v,
        }
    }

    /// The matching spans of a store, with the context their analysis needs.
    pub fn find(
        &self,
        store: &lasthop_collector::SpanStore,
    ) -> Result<Vec<SpanRecord>, lasthop_collector::StoreError> {
        let found = match self {
            Lookup::TraceId(t) => store.by_trace_id(t)?,
            Lookup::MessageId(m) => store.by_message_id(m)?,
            Lookup::Key(k) => store.by_key(k)?,
        };
        store.with_context(found)
    }
}

/// Why a span of the path is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One of the message's own spans (it names the message, or the lookup found it).
    Own,
    /// A business intent with one of the message's keys.
    Intent,
    /// A flush or replication whose range covered the message's offset.
    Covers,
    /// The broker's delivery of a pulled batch that held the message.
    Delivery,
    /// The first offset commit of a group past the message.
    Commit,
    /// The restart or failover of the broker after the message was stored.
    BrokerEvent,
    /// A span a verdict cites that none of the above brought in.
    Evidence,
}

impl Role {
    /// The word shown beside the span in `query`'s text.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Own => "own",
            Role::Intent => "intent",
            Role::Covers => "covers",
            Role::Delivery => "delivery",
            Role::Commit => "commit",
            Role::BrokerEvent => "broker event",
            Role::Evidence => "evidence",
        }
    }
}

/// One span of a path.
#[derive(Debug, Clone)]
pub struct PathHop {
    pub span: SpanRecord,
    pub role: Role,
    /// The groups whose verdict cites this span (`None`: the verdict of no group).
    pub evidence_for: Vec<Option<String>>,
}

/// Where the broker stored the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAt {
    pub broker: String,
    pub epoch: u64,
    pub offset: u64,
    pub queue_id: Option<u32>,
    pub queue_offset: Option<u64>,
}

/// A message's path and verdicts.
#[derive(Debug, Clone)]
pub struct MessagePath {
    /// `None` for spans the lookup found that name no message (intents, say).
    pub message_id: Option<String>,
    pub keys: Vec<String>,
    pub topic: Option<String>,
    pub trace_ids: Vec<String>,
    pub stored: Option<StoredAt>,
    /// What the path lacks that a reader would look for, e.g. "no flush
    /// span of broker-a (epoch 3) covers offset 81234".
    pub notes: Vec<String>,
    pub verdicts: Option<MessageVerdicts>,
    /// In time order.
    pub hops: Vec<PathHop>,
}

/// The paths of the messages `lookup` finds among `all` (its spans and
/// their context, as [`Lookup::find`] gives them), judged at `options.now_ns`.
pub fn paths(all: &[SpanRecord], lookup: &Lookup, options: &Options) -> Vec<MessagePath> {
    paths_of(all, |r| lookup.matches(r), options)
}

/// The same for the messages of the spans `wanted` picks out of `all`.
pub fn paths_of(
    all: &[SpanRecord],
    wanted: impl Fn(&SpanRecord) -> bool,
    options: &Options,
) -> Vec<MessagePath> {
    let wanted: Vec<SpanRecord> = all.iter().filter(|r| wanted(r)).cloned().collect();
    let verdicts = analyze(&Evidence::new(all), options);
    group_by_message(&wanted)
        .into_iter()
        .map(|m| {
            let verdict = m
                .message_id
                .as_deref()
                .and_then(|id| verdicts.iter().find(|v| v.message_id == id))
                .cloned();
            let mut path = MessagePath {
                message_id: m.message_id,
                keys: m.keys,
                topic: m.topic,
                trace_ids: m.trace_ids,
                stored: None,
                notes: Vec::new(),
                verdicts: verdict,
                hops: m
                    .spans
                    .into_iter()
                    .map(|span| PathHop {
                        span,
                        role: Role::Own,
                        evidence_for: Vec::new(),
                    })
                    .collect(),
            };
            if path.message_id.is_some() {
                path.add_others(all);
            }
            path.mark_evidence(all);
            path.hops.sort_by(|a, b| {
                (a.span.start_ns, &a.span.span_id).cmp(&(b.span.start_ns, &b.span.span_id))
            });
            path
        })
        .collect()
}

/// Where the message's own spans say it was stored: a store span, or else a
/// successful send that names the offset.
fn stored_at(own: &[PathHop]) -> Option<(StoredAt, u64)> {
    let from = |s: &SpanRecord| -> Option<(StoredAt, u64)> {
        Some((
            StoredAt {
                broker: s.broker.clone()?,
                epoch: s.epoch?,
                offset: s.commitlog_offset?,
                queue_id: s.queue_id,
                queue_offset: s.queue_offset,
            },
            s.start_ns,
        ))
    };
    let spans = || own.iter().map(|h| &h.span);
    spans()
        .filter(|s| s.hop == Some(Hop::Store))
        .find_map(from)
        .or_else(|| {
            spans()
                .filter(|s| s.hop == Some(Hop::Send) && !s.is_error())
                .find_map(from)
        })
}

fn covers(s: &SpanRecord, at: u64) -> bool {
    s.range_start.is_some_and(|a| a <= at) && s.range_end.is_some_and(|e| e > at)
}

impl MessagePath {
    fn has(&self, s: &SpanRecord) -> bool {
        self.hops
            .iter()
            .any(|h| h.span.span_id == s.span_id && h.span.trace_id == s.trace_id)
    }

    fn push(&mut self, s: &SpanRecord, role: Role) {
        if !self.has(s) {
            self.hops.push(PathHop {
                span: s.clone(),
                role,
                evidence_for: Vec::new(),
            });
        }
    }

    /// The spans of others that belong to this message's path.
    fn add_others(&mut self, all: &[SpanRecord]) {
        let keys: HashSet<String> = self.keys.iter().cloned().collect();
        for s in all
            .iter()
            .filter(|s| s.hop == Some(Hop::Intent) && s.message_id.is_none())
        {
            if s.keys.iter().any(|k| keys.contains(k)) {
                self.push(s, Role::Intent);
            }
        }
        let Some((stored, stored_ns)) = stored_at(&self.hops) else {
            return;
        };
        let on_broker = |s: &&SpanRecord| s.broker.as_deref() == Some(stored.broker.as_str());
        let same_log = |s: &SpanRecord| {
            s.broker.as_deref().is_none_or(|b| b == stored.broker)
                && s.epoch.is_none_or(|e| e == stored.epoch)
        };
        for hop in [Hop::Flush, Hop::Replicate] {
            let covering: Vec<&SpanRecord> = all
                .iter()
                .filter(on_broker)
                .filter(|s| s.hop == Some(hop) && s.epoch == Some(stored.epoch))
                .filter(|s| covers(s, stored.offset))
                .collect();
            if covering.is_empty() {
                self.notes.push(format!(
                    "no {} span of {} (epoch {}) covers offset {}",
                    hop.as_str(),
                    stored.broker,
                    stored.epoch,
                    stored.offset
                ));
            }
            for s in covering {
                self.push(s, Role::Covers);
            }
        }
        // The restart or failover that came next (the one that took it, if any did).
        let next = all
            .iter()
            .filter(on_broker)
            .filter(|s| matches!(s.hop, Some(Hop::Recover | Hop::Failover)))
            .filter(|s| s.epoch.is_some_and(|e| e > stored.epoch) && s.start_ns > stored_ns)
            .min_by_key(|s| (s.epoch, s.start_ns));
        if let Some(s) = next {
            self.push(s, Role::BrokerEvent);
        }
        let (Some(topic), Some(queue), Some(qo)) =
            (self.topic.clone(), stored.queue_id, stored.queue_offset)
        else {
            return;
        };
        let batch = |s: &&SpanRecord, hop: Hop| {
            s.hop == Some(hop)
                && s.message_id.is_none()
                && s.topic.as_deref() == Some(topic.as_str())
                && s.queue_id == Some(queue)
                && same_log(s)
        };
        let deliveries: Vec<&SpanRecord> = all
            .iter()
            .filter(|s| batch(s, Hop::Receive) && covers(s, qo))
            .collect();
        for s in deliveries {
            self.push(s, Role::Delivery);
        }
        // Per group, the first commit past it.
        let mut commits: Vec<&SpanRecord> = all
            .iter()
            .filter(|s| batch(s, Hop::Settle) && s.queue_offset.is_some_and(|n| n > qo))
            .collect();
        commits.sort_by_key(|s| (s.group.clone(), s.start_ns));
        commits.dedup_by(|a, b| a.group == b.group);
        for s in commits {
            self.push(s, Role::Commit);
        }
        self.stored = Some(stored);
    }

    /// Marks the spans each verdict cites, bringing in those not yet on the path.
    fn mark_evidence(&mut self, all: &[SpanRecord]) {
        let Some(verdicts) = self.verdicts.clone() else {
            return;
        };
        for v in &verdicts.verdicts {
            for id in &v.evidence {
                if !self.hops.iter().any(|h| &h.span.span_id == id)
                    && let Some(s) = all.iter().find(|s| &s.span_id == id)
                {
                    self.push(s, Role::Evidence);
                }
                for h in self.hops.iter_mut().filter(|h| &h.span.span_id == id) {
                    if !h.evidence_for.contains(&v.group) {
                        h.evidence_for.push(v.group.clone());
                    }
                }
            }
        }
    }

    /// The path as `query --format json` writes each message.
    pub fn to_json(&self) -> Value {
        let v = self.verdicts.as_ref();
        json!({
            "message_id": self.message_id,
            "keys": self.keys,
            "topic": self.topic,
            "trace_ids": self.trace_ids,
            "stored": self.stored,
            "notes": self.notes,
            "process_count": v.map_or(0, |v| v.process_count),
            "send_indeterminate": v.is_some_and(|v| v.send_indeterminate),
            "verdicts": v.map_or(Value::Array(vec![]), |v| serde_json::to_value(&v.verdicts).unwrap_or(Value::Null)),
            "hops": self.hops.iter().map(PathHop::to_json).collect::<Vec<_>>(),
        })
    }
}

/// The paths and the time they were judged at, as `query --format json` writes them.
pub fn paths_json(paths: &[MessagePath], at: JudgedAt) -> Value {
    json!({
        "messages": paths.iter().map(MessagePath::to_json).collect::<Vec<_>>(),
        "judged_at": rfc3339_ms(at.ns),
        "judged_at_from": at.from,
    })
}

impl PathHop {
    /// `{hop, name, service, time, start_ns, end_ns, outcome, role,
    /// evidence_for, trace_id, span_id, attributes}`.
    pub fn to_json(&self) -> Value {
        let r = &self.span;
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
            "start_ns": r.start_ns,
            "end_ns": r.end_ns,
            "outcome": outcome(r),
            "role": self.role,
            "evidence_for": self.evidence_for,
            "trace_id": r.trace_id,
            "span_id": r.span_id,
            "attributes": attributes,
        })
    }
}

/// `ok`, `error`, or `error: <error.type>`.
pub fn outcome(r: &SpanRecord) -> String {
    match (&r.error_type, r.is_error()) {
        (Some(t), _) => format!("error: {t}"),
        (None, true) => "error".into(),
        (None, false) => "ok".into(),
    }
}

/// RFC 3339 with microseconds.
pub fn time_text(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = (ns % 1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| ns.to_string())
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
