//! Messages the live judge counts delivered without the rules: the same
//! shortcut `report` takes for messages whose fast fields show them plainly
//! delivered (`facts/plain.rs`), here from the message's own spans, and
//! narrower still. Every other message goes through [`crate::analyze`].
//!
//! Plainly delivered: its spans are only lasthop's own path (send, store,
//! receive, process, settle) with no failed attempt and none from a log;
//! exactly one store, placed on a broker; one topic; a receive span of its
//! own; and every group expected to consume the topic (seen consuming it,
//! given with `--group`, or processing it) has an ok process span of it.
//! The rules give each such group `delivered`; `tests/live_judging.rs`
//! holds the two to each other.

use std::collections::BTreeSet;

use lasthop_vocab::{Hop, SpanRecord, attr};

use crate::{Globals, GroupVerdict, MessageVerdicts, Verdict};

/// The message's verdicts, if its spans show it plainly delivered.
pub(super) fn plainly_delivered(
    id: &str,
    spans: &[SpanRecord],
    globals: &Globals,
    groups: &[String],
) -> Option<MessageVerdicts> {
    let mut topic: Option<&str> = None;
    let mut store = None;
    let mut received = false;
    let mut ok: BTreeSet<&str> = BTreeSet::new();
    for s in spans {
        let simple = matches!(
            s.hop,
            Some(Hop::Send | Hop::Store | Hop::Receive | Hop::Process | Hop::Settle)
        );
        let from_log = s.attr(attr::SOURCE).and_then(|v| v.as_str()) == Some("log");
        if !simple || s.is_error() || from_log {
            return None;
        }
        if let Some(t) = s.topic.as_deref() {
            if topic.is_some_and(|known| known != t) {
                return None;
            }
            topic = Some(t);
        }
        match s.hop {
            Some(Hop::Store) if store.is_some() => return None,
            Some(Hop::Store) => store = Some(s),
            Some(Hop::Receive) => received = true,
            Some(Hop::Process) => {
                ok.insert(s.group.as_deref()?);
            }
            _ => {}
        }
    }
    let (topic, store) = (topic?, store?);
    if !received || store.broker.is_none() || store.commitlog_offset.is_none() {
        return None;
    }
    let seen = globals.groups_by_topic.get(topic);
    let mut expected = seen.into_iter().flatten().map(String::as_str);
    if ok.is_empty() || !expected.all(|g| ok.contains(g)) {
        return None;
    }
    if !groups.iter().all(|g| ok.contains(g.as_str())) {
        return None;
    }
    let mut keys: Vec<String> = spans.iter().flat_map(|s| s.keys.iter().cloned()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut trace_ids: Vec<String> = spans.iter().map(|s| s.trace_id.clone()).collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    let stages = [
        ("send", Hop::Send),
        ("store", Hop::Store),
        ("receive", Hop::Receive),
        ("process", Hop::Process),
    ];
    let reached = (stages.into_iter())
        .filter(|(_, hop)| spans.iter().any(|s| s.hop == Some(*hop)))
        .map(|(name, _)| name)
        .collect();
    let verdicts = ok
        .iter()
        .map(|g| GroupVerdict {
            group: Some((*g).to_owned()),
            verdict: Verdict::Delivered,
            hop: None,
            cause: None,
            explanation: format!("processed by {g}"),
            fix: None,
            evidence: (spans.iter())
                .filter(|s| s.hop == Some(Hop::Process) && s.group.as_deref() == Some(g))
                .map(|s| s.span_id.clone())
                .collect(),
        })
        .collect();
    Some(MessageVerdicts {
        message_id: id.to_owned(),
        broker: store.broker.clone(),
        sent_ns: (spans.iter())
            .filter(|s| s.hop == Some(Hop::Send))
            .map(|s| s.start_ns)
            .min()
            .or(Some(store.start_ns)),
        keys,
        topic: Some(topic.to_owned()),
        trace_ids,
        process_count: ok.len() as u32,
        send_indeterminate: false,
        reached,
        verdicts,
    })
}
