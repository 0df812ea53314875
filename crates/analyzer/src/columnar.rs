//! The analyzer's columnar work, with polars: what the consumer groups did
//! over a whole window, gathered from one share's fast-field columns at a
//! time (filters, group-bys, and a join of each message's first send to its
//! successful processing by message id), and the report's counts over judged
//! messages (group-bys over verdict rows).
//!
//! These are the facts judging one message needs about all the others; the
//! per-message rules run on records, in parallel (rayon).
//!
//! The eager group-by aggregations are deprecated in favour of the lazy API,
//! but polars 0.53's lazy group-by needs its streaming engine even when run
//! in memory (it panics without the `new_streaming` feature), which would
//! double polars' build time: the eager ones are used on purpose.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lasthop_collector::FactColumns;
use polars::prelude::*;

use crate::evidence::Globals;
use crate::model::MessageVerdicts;

fn strings(name: &str, values: impl Iterator<Item = Option<impl AsRef<str>>>) -> Column {
    let values: Vec<Option<String>> = values.map(|v| v.map(|s| s.as_ref().to_owned())).collect();
    StringChunked::from_iter_options(name.into(), values.into_iter()).into_column()
}

fn arcs<'a>(values: &'a [Option<Arc<str>>]) -> impl Iterator<Item = Option<&'a str>> + 'a {
    values.iter().map(|v| v.as_deref())
}

/// Raises `into[(group, topic)]` to the `value` column of a frame grouped by group and topic.
fn merge_max(
    into: &mut HashMap<(String, String), u64>,
    frame: &DataFrame,
    value: &str,
) -> PolarsResult<()> {
    let groups = frame.column("group")?.str()?;
    let topics = frame.column("topic")?.str()?;
    let values = frame.column(value)?.u64()?;
    for ((g, t), v) in groups.iter().zip(topics).zip(values) {
        if let (Some(g), Some(t), Some(v)) = (g, t, v) {
            let slot = into.entry((g.to_owned(), t.to_owned())).or_default();
            *slot = (*slot).max(v);
        }
    }
    Ok(())
}

impl Globals {
    /// Adds what one share's columns say. Every message must be whole in
    /// one share (its send and its processing), which [`lasthop_collector::Share`] ensures.
    pub fn absorb_columns(&mut self, c: &FactColumns) -> PolarsResult<()> {
        let frame = DataFrame::new_infer_height(vec![
            strings("message_id", arcs(&c.message_id)),
            strings("hop", arcs(&c.hop)),
            strings("group", arcs(&c.group)),
            strings("topic", arcs(&c.topic)),
            Column::new("start_ns".into(), c.start_ns.as_slice()),
            Column::new("ok".into(), c.ok.as_slice()),
        ])?;
        let hop = frame.column("hop")?.str()?;
        let has_group = frame.column("group")?.is_not_null() & frame.column("topic")?.is_not_null();
        let has_id = frame.column("message_id")?.is_not_null();

        let consuming =
            (hop.equal("receive") | hop.equal("process") | hop.equal("settle")) & has_group.clone();
        let pairs = frame.filter(&consuming)?.select(["topic", "group"])?;
        let pairs = pairs.unique_stable(None, UniqueKeepStrategy::Any, None)?;
        let (topics, groups) = (pairs.column("topic")?.str()?, pairs.column("group")?.str()?);
        for (t, g) in topics.iter().zip(groups) {
            if let (Some(t), Some(g)) = (t, g) {
                let known = self.groups_by_topic.entry(t.to_owned()).or_default();
                known.insert(g.to_owned());
            }
        }

        let ok = frame.column("ok")?.bool()?.clone();
        let processed_mask = hop.equal("process") & ok & has_group;
        let processed = frame.filter(&processed_mask)?;
        let last = processed
            .group_by(["group", "topic"])?
            .select(["start_ns"])
            .max()?;
        merge_max(&mut self.last_processing, &last, "start_ns_max")?;

        let processed = frame.filter(&(processed_mask & has_id.clone()))?;
        let sends = frame.filter(&(hop.equal("send") & has_id))?;
        let first_send = sends.group_by(["message_id"])?.select(["start_ns"]).min()?;
        let joined = processed.inner_join(&first_send, ["message_id"], ["message_id"])?;
        let newest = joined
            .group_by(["group", "topic"])?
            .select(["start_ns_min"])
            .max()?;
        merge_max(&mut self.newest_processed, &newest, "start_ns_min_max")
    }
}

/// Counts of judged messages: every verdict by name, and the losses by hop,
/// topic, group and broker.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct VerdictCounts {
    pub by_verdict: BTreeMap<String, u64>,
    pub by_hop: BTreeMap<String, u64>,
    pub by_topic: BTreeMap<String, u64>,
    pub by_group: BTreeMap<String, u64>,
    pub by_broker: BTreeMap<String, u64>,
}

/// Adds the `n_sum` of each `key` of `frame` grouped by `key`.
fn add_counts(into: &mut BTreeMap<String, u64>, frame: &DataFrame, key: &str) -> PolarsResult<()> {
    if frame.height() == 0 {
        return Ok(());
    }
    let counted = frame.group_by([key])?.select(["n"]).sum()?;
    let keys = counted.column(key)?.str()?;
    let sums = counted.column("n_sum")?.u64()?;
    for (k, n) in keys.iter().zip(sums) {
        if let (Some(k), Some(n)) = (k, n) {
            *into.entry(k.to_owned()).or_default() += n;
        }
    }
    Ok(())
}

impl VerdictCounts {
    /// Adds a batch of judged messages: one row per message and group.
    pub(crate) fn add(&mut self, messages: &[MessageVerdicts]) -> PolarsResult<()> {
        let rows = || {
            messages
                .iter()
                .flat_map(|m| m.verdicts.iter().map(move |v| (m, v)))
        };
        let or = |v: Option<&str>, none: &str| Some(v.unwrap_or(none).to_owned());
        let frame = DataFrame::new_infer_height(vec![
            strings("verdict", rows().map(|(_, v)| Some(v.verdict.as_str()))),
            Column::new(
                "lost".into(),
                rows().map(|(_, v)| v.verdict.is_lost()).collect::<Vec<_>>(),
            ),
            strings("hop", rows().map(|(_, v)| or(v.hop.as_deref(), "unknown"))),
            strings(
                "topic",
                rows().map(|(m, _)| or(m.topic.as_deref(), "unknown")),
            ),
            strings(
                "group",
                rows().map(|(_, v)| or(v.group.as_deref(), "(none)")),
            ),
            strings(
                "broker",
                rows().map(|(m, _)| or(m.broker.as_deref(), "unknown")),
            ),
            Column::new("n".into(), rows().map(|_| 1u64).collect::<Vec<_>>()),
        ])?;
        add_counts(&mut self.by_verdict, &frame, "verdict")?;
        let lost = frame.filter(frame.column("lost")?.bool()?)?;
        add_counts(&mut self.by_hop, &lost, "hop")?;
        add_counts(&mut self.by_topic, &lost, "topic")?;
        add_counts(&mut self.by_group, &lost, "group")?;
        add_counts(&mut self.by_broker, &lost, "broker")
    }
}

/// The messages of one share that are plainly delivered, judged from
/// columns without reading their records: every expected group has an ok
/// `process` span of it and none dead-lettered it, it has exactly one
/// placed `store` span, a `receive` span, and one topic. The rules would call
/// each of them `delivered` for every group; everything else is judged from
/// records.
#[derive(Debug, Default, Clone)]
pub struct PlainDelivered {
    pub ids: PlHashSet<Arc<str>>,
    /// Their spans (none of which needs reading).
    pub spans: u64,
    /// (message, group) verdicts, all `delivered`.
    pub verdicts: u64,
    /// Messages that reached send, store, flush, replicate, receive, process.
    pub funnel: [u64; 6],
}

#[derive(Default)]
struct MessageColumns {
    spans: u64,
    send: bool,
    receive: bool,
    topics: std::collections::BTreeSet<Arc<str>>,
    ok_groups: std::collections::BTreeSet<Arc<str>>,
    /// Groups with any process span of it, failed ones too.
    process_groups: std::collections::BTreeSet<Arc<str>>,
    dlq_groups: std::collections::BTreeSet<Arc<str>>,
    stores: Vec<(Arc<str>, u64, u64, u64)>,
    unplaced_store: bool,
}

impl PlainDelivered {
    /// Finds the plainly delivered messages among `c` (one share's columns),
    /// with what the whole window says (`globals`) and the groups expected
    /// besides (`extra_groups`).
    pub fn find(c: &FactColumns, globals: &Globals, extra_groups: &[String]) -> PlainDelivered {
        let mut messages: PlHashMap<&str, MessageColumns> = PlHashMap::new();
        // How far flush and replicate ranges covered each broker's log, per epoch.
        let mut covered: PlHashMap<(&str, &str, u64), u64> = PlHashMap::new();
        let rows = [
            c.message_id.len(),
            c.hop.len(),
            c.group.len(),
            c.topic.len(),
            c.ok.len(),
            c.broker.len(),
            c.epoch.len(),
            c.commitlog_offset.len(),
            c.commitlog_size.len(),
            c.range_end.len(),
        ]
        .into_iter()
        .fold(c.start_ns.len(), usize::min);
        for i in 0..rows {
            let hop = c.hop[i].as_deref();
            if let (Some(h @ ("flush" | "replicate")), Some(b), Some(ep), Some(end)) =
                (hop, c.broker[i].as_deref(), c.epoch[i], c.range_end[i])
            {
                let slot = covered.entry((h, b, ep)).or_default();
                *slot = (*slot).max(end);
            }
            let Some(id) = &c.message_id[i] else { continue };
            if matches!(hop, Some("flush" | "replicate" | "recover" | "failover")) {
                continue;
            }
            let m = messages.entry(id.as_ref()).or_default();
            m.spans += 1;
            if let Some(t) = c.topic[i].as_ref().filter(|t| !t.starts_with('%')) {
                m.topics.insert(t.clone());
            }
            match hop {
                Some("send" | "tx.prepare") => m.send = true,
                Some("receive") => m.receive = true,
                Some("process") => {
                    m.process_groups.extend(c.group[i].clone());
                    if c.ok[i] {
                        m.ok_groups.extend(c.group[i].clone());
                    }
                }
                Some("dlq") => m.dlq_groups.extend(c.group[i].clone()),
                Some("store") => match (&c.broker[i], c.epoch[i], c.commitlog_offset[i]) {
                    (Some(b), Some(ep), Some(off)) => {
                        let end = off + c.commitlog_size[i].unwrap_or(1);
                        m.stores.push((b.clone(), ep, off, end));
                    }
                    _ => m.unplaced_store = true,
                },
                _ => {}
            }
        }
        let mut plain = PlainDelivered::default();
        for (id, m) in messages {
            if m.topics.len() > 1 || m.stores.len() != 1 || m.unplaced_store || !m.receive {
                continue;
            }
            let mut groups: std::collections::BTreeSet<&str> = m
                .topics
                .first()
                .and_then(|t| globals.groups_by_topic.get(t.as_ref()))
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            groups.extend(extra_groups.iter().map(String::as_str));
            groups.extend(
                m.process_groups
                    .iter()
                    .chain(&m.dlq_groups)
                    .map(|g| g.as_ref()),
            );
            let delivered = |g: &&str| {
                m.ok_groups.iter().any(|o| o.as_ref() == *g)
                    && !m.dlq_groups.iter().any(|d| d.as_ref() == *g)
            };
            if groups.is_empty() || !groups.iter().all(delivered) {
                continue;
            }
            let (broker, epoch, _, end) = &m.stores[0];
            let reached = |h: &str| {
                covered
                    .get(&(h, broker.as_ref(), *epoch))
                    .is_some_and(|c| c >= end)
            };
            let stages = [
                m.send,
                true,
                reached("flush"),
                reached("replicate"),
                true,
                true,
            ];
            for (n, yes) in plain.funnel.iter_mut().zip(stages) {
                *n += u64::from(yes);
            }
            plain.verdicts += groups.len() as u64;
            plain.spans += m.spans;
            plain.ids.insert(Arc::from(id));
        }
        plain
    }
}
