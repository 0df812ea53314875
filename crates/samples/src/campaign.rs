//! `lasthop campaign`: many scenario runs, each drawn from its own seed
//! (`seed + i`), judged against the ledgers and tallied: what the ledgers
//! lost, how much of it lasthop put at the injected hop, at another hop, or
//! not at all, and what it called lost that arrived.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::judge::ScenarioOutcome;
use crate::plan::Plan;
use crate::scenarios::SCENARIOS;
use crate::session::Session;

#[derive(Debug, Clone)]
pub struct CampaignOptions {
    /// The `lasthop` executable, to start brokers and consumers as processes.
    pub exe: PathBuf,
    pub data: PathBuf,
    pub runs: u64,
    /// Run `i` is drawn from seed `seed + i`.
    pub seed: u64,
    /// Orders per run (drawn when `None`).
    pub messages: Option<u32>,
}

/// Counts over runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub runs: u64,
    /// Orders the ledgers show paid and never processed.
    pub lost: u64,
    /// Lost, and found at the injected hop.
    pub attributed: u64,
    /// Lost, and called lost at another hop.
    pub misattributed: u64,
    /// Lost, and not called lost.
    pub missed: u64,
    /// Called lost though the ledgers show them processed.
    pub false_lost: u64,
}

impl Tally {
    fn add(&mut self, o: &ScenarioOutcome) {
        self.runs += 1;
        self.lost += o.lost.len() as u64;
        self.attributed += o.attributed.len() as u64;
        self.misattributed += o.misattributed.len() as u64;
        self.missed += o.missed.len() as u64;
        self.false_lost += o.false_lost.len() as u64;
    }
}

/// An order on which lasthop and the ledgers disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Replays the run: `lasthop campaign --runs 1 --seed SEED`.
    pub seed: u64,
    pub scenario: String,
    pub order: String,
    /// `None` when lasthop saw no message for the order.
    pub message_id: Option<String>,
    pub expected: String,
    pub got: String,
}

/// A run that could not be carried out (a broker that did not start, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunError {
    pub seed: u64,
    pub scenario: String,
    pub error: String,
}

/// The campaign's totals, per fault class, and every disagreement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CampaignResult {
    pub seed: u64,
    #[serde(flatten)]
    pub totals: Tally,
    pub by_fault: BTreeMap<String, Tally>,
    pub failures: Vec<Failure>,
    pub errors: Vec<RunError>,
}

impl CampaignResult {
    /// Whether every run ran and lasthop agreed with the ledgers on every order.
    pub fn clean(&self) -> bool {
        self.failures.is_empty() && self.errors.is_empty()
    }

    fn record(&mut self, seed: u64, o: &ScenarioOutcome) {
        self.totals.add(o);
        self.by_fault.entry(o.name.clone()).or_default().add(o);
        let expected_loss = o
            .expected
            .map_or("not lost (safe configuration)", |v| v.as_str());
        let got = |order: &String| {
            o.verdicts
                .get(order)
                .map_or("no verdict".to_owned(), |f| f.verdict.as_str().to_owned())
        };
        let mut fail = |order: &String, expected: &str| {
            self.failures.push(Failure {
                seed,
                scenario: o.name.clone(),
                order: order.clone(),
                message_id: o.verdicts.get(order).map(|f| f.message_id.clone()),
                expected: expected.to_owned(),
                got: got(order),
            })
        };
        for order in o.missed.iter().chain(&o.misattributed) {
            fail(order, expected_loss);
        }
        for order in &o.false_lost {
            fail(order, "delivered");
        }
        // In the safe configuration a loss is a failure even when lasthop found it.
        if o.expected.is_none() {
            for order in o
                .lost
                .iter()
                .filter(|l| !o.missed.contains(*l) && !o.misattributed.contains(*l))
            {
                fail(order, expected_loss);
            }
        }
    }
}

/// One finished run, as the campaign goes.
#[derive(Debug)]
pub struct RunReport<'a> {
    pub index: u64,
    pub seed: u64,
    pub plan: &'a str,
    pub outcome: &'a Result<ScenarioOutcome, String>,
}

/// Runs the campaign; `progress` hears about every run as it finishes.
pub async fn run(
    options: CampaignOptions,
    mut progress: impl FnMut(RunReport<'_>),
) -> Result<CampaignResult, String> {
    let session = Session::start(options.exe.clone(), options.data.clone()).await?;
    let mut result = CampaignResult {
        seed: options.seed,
        ..CampaignResult::default()
    };
    for index in 0..options.runs {
        let seed = options.seed.wrapping_add(index);
        let plan = Plan::draw(SCENARIOS, seed, options.messages);
        let (scenario, described) = (plan.scenario.name, plan.describe());
        let outcome = session.run(plan, index).await;
        match &outcome {
            Ok(o) => result.record(seed, o),
            Err(e) => {
                result.totals.runs += 1;
                result.errors.push(RunError {
                    seed,
                    scenario: scenario.to_owned(),
                    error: e.clone(),
                });
            }
        }
        progress(RunReport {
            index,
            seed,
            plan: &described,
            outcome: &outcome,
        });
    }
    session.finish().await?;
    Ok(result)
}
