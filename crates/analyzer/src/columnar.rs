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
