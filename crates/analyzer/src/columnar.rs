//! The report's counts over judged messages, with polars: group-bys over
//! one row per message and group.
//!
//! The per-message facts of a whole window are not here but in `facts.rs`,
//! a dense fold by dictionary ordinal: polars over the span columns (string
//! columns, group-bys, a join of first sends to processing) took 18 s for 10
//! million spans where DuckDB takes 0.7 s; the fold takes 0.6 s.
//!
//! The eager group-by aggregations are deprecated in favour of the lazy API,
//! but polars 0.53's lazy group-by needs its streaming engine even when run
//! in memory (it panics without the `new_streaming` feature), which would
//! double polars' build time: the eager ones are used on purpose.
#![allow(deprecated)]

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::model::MessageVerdicts;

fn strings(name: &str, values: impl Iterator<Item = Option<impl AsRef<str>>>) -> Column {
    let values: Vec<Option<String>> = values.map(|v| v.map(|s| s.as_ref().to_owned())).collect();
    StringChunked::from_iter_options(name.into(), values.into_iter()).into_column()
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
