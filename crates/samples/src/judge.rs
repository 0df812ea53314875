//! The ledgers against lasthop's verdicts: for every order a scenario paid,
//! what the ledgers say became of it and what the analyzer said.

use std::collections::{BTreeMap, BTreeSet};

use lasthop_analyzer::{Evidence, MessageVerdicts, Options, Verdict};
use lasthop_collector::{SpanQuery, SpanStore};
use lasthop_vocab::attr;

use crate::scenarios::{Env, Scenario, Story};

/// What lasthop said about one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub order: String,
    pub message_id: String,
    pub verdict: Verdict,
    pub hop: Option<String>,
    pub explanation: String,
    pub fix: Option<String>,
}

/// One scenario run's result: ledgers against verdicts.
#[derive(Debug, Clone)]
pub struct ScenarioOutcome {
    pub name: String,
    pub injected: String,
    pub paid: usize,
    /// Paid but not processed (no packet granted, no stock deducted), by the ledgers.
    pub lost: BTreeSet<String>,
    /// What lasthop said of every order it called lost or the ledgers lost.
    pub found: Vec<Finding>,
    /// Lost, and found at the injected hop.
    pub attributed: BTreeSet<String>,
    /// Called lost though the ledger shows the order processed.
    pub false_lost: BTreeSet<String>,
    /// Lost by the ledgers, not called lost.
    pub missed: BTreeSet<String>,
    /// The verdict this scenario's losses must get (`None`: nothing may be lost).
    pub expected: Option<Verdict>,
    /// Lost, and called lost, but at another hop than the injected one.
    pub misattributed: BTreeSet<String>,
    /// What lasthop said of each order, by order.
    pub verdicts: BTreeMap<String, Finding>,
    /// The run's broker stores and ledgers.
    pub dir: std::path::PathBuf,
}

impl ScenarioOutcome {
    /// Whether lasthop and the ledgers agree.
    pub fn agrees(&self) -> bool {
        self.false_lost.is_empty() && self.missed.is_empty() && self.misattributed.is_empty()
    }
}

/// The group's verdict on each order of this run's topic.
fn verdicts_by_order(store: &SpanStore, env: &Env) -> Result<BTreeMap<String, Finding>, String> {
    let query = SpanQuery {
        tags: vec![(attr::MESSAGING_DESTINATION_NAME.into(), env.topic.clone())],
        limit: 1_000_000,
        ..SpanQuery::default()
    };
    let spans = store
        .find(&query)
        .and_then(|s| store.with_context(s))
        .map_err(|e| e.to_string())?;
    let options = Options {
        grace_ns: 0,
        groups: vec![env.group.clone()],
        ..Options::default()
    };
    let messages = lasthop_analyzer::analyze(&Evidence::new(&spans), &options);
    let mut by_order = BTreeMap::new();
    for m in messages
        .iter()
        .filter(|m| m.topic.as_deref() == Some(env.topic.as_str()))
    {
        let Some(finding) = finding(m, &env.group) else {
            continue;
        };
        for order in &m.keys {
            // A retried send may leave two messages for one order: a loss
            // verdict on one of them must not hide behind the other.
            let keep = by_order
                .get(order)
                .is_none_or(|f: &Finding| !f.verdict.is_lost() || finding.verdict.is_lost());
            if keep {
                by_order.insert(
                    order.clone(),
                    Finding {
                        order: order.clone(),
                        ..finding.clone()
                    },
                );
            }
        }
    }
    Ok(by_order)
}

fn finding(m: &MessageVerdicts, group: &str) -> Option<Finding> {
    let v = m
        .verdicts
        .iter()
        .find(|v| v.group.as_deref() == Some(group))
        .or(m.verdicts.first())?;
    Some(Finding {
        order: String::new(),
        message_id: m.message_id.clone(),
        verdict: v.verdict,
        hop: v.hop.clone(),
        explanation: v.explanation.clone(),
        fix: v.fix.clone(),
    })
}

/// Compares the ledgers of a finished run with the analyzer's verdicts over
/// the spans in `store`.
pub fn judge(
    store: &SpanStore,
    scenario: &Scenario,
    env: &Env,
    story: &Story,
) -> Result<ScenarioOutcome, String> {
    let verdicts = verdicts_by_order(store, env)?;
    let lost: BTreeSet<String> = story.paid.difference(&story.granted).cloned().collect();
    let expected = scenario.expected;
    let verdict_of = |order: &String| verdicts.get(order).map(|f| f.verdict);
    let found: Vec<Finding> = verdicts
        .values()
        .filter(|f| f.verdict.is_lost() || (lost.contains(&f.order) && Some(f.verdict) == expected))
        .cloned()
        .collect();
    let false_lost = found
        .iter()
        .filter(|f| f.verdict.is_lost() && story.granted.contains(&f.order))
        .map(|f| f.order.clone())
        .collect();
    let at_injected = |o: &&String| expected.is_some() && verdict_of(o) == expected;
    let attributed = lost.iter().filter(at_injected).cloned().collect();
    let missed = lost
        .iter()
        .filter(|o| !at_injected(o) && verdict_of(o).is_none_or(|v| !v.is_lost()))
        .cloned()
        .collect();
    let misattributed = lost
        .iter()
        .filter(|o| !at_injected(o) && verdict_of(o).is_some_and(Verdict::is_lost))
        .cloned()
        .collect();
    Ok(ScenarioOutcome {
        name: scenario.name.to_owned(),
        injected: scenario.injected.to_owned(),
        expected,
        paid: story.paid.len(),
        lost,
        found,
        attributed,
        false_lost,
        missed,
        misattributed,
        verdicts,
        dir: env.dir.clone(),
    })
}
