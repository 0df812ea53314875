//! What one scenario run is: the [`Scenario`] (what it injects, what it
//! expects, its code), the [`Plan`] (which service consumes, how many
//! orders, where the fault hits, the broker's configuration and the pauses
//! between sends) and the [`Env`] it runs in. The table of scenarios is
//! `scenarios::SCENARIOS`.
//!
//! The demo uses fixed plans (the story as the seeds tell it). A campaign draws
//! every plan from a seed with a ChaCha generator (stable across platforms and
//! releases), so `lasthop campaign --runs 1 --seed S` replays run S: the same
//! scenario, counts, fault positions and pauses. What real processes do with
//! that timing (when a flusher fires, when a kill lands) is up to the machine;
//! the ledgers record what really happened.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lasthop_analyzer::Verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ledger::Ledger;

/// A scenario run: the scenario's code, given where it runs and the two
/// services' ledgers (the order service's "paid", the consuming service's).
pub type RunScenario = for<'a> fn(
    &'a Env,
    &'a Ledger,
    &'a Ledger,
) -> Pin<Box<dyn Future<Output = io::Result<()>> + 'a>>;

/// A scenario: its name, what it injects, the verdict its losses must get,
/// how the demo runs it and how a campaign may draw it, and its code. One
/// entry in [`SCENARIOS`] is all a new scenario needs besides its function.
#[derive(Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub injected: &'static str,
    pub expected: Option<Verdict>,
    /// The demo's fixed plan: the story as the README tells it.
    pub demo: DemoPlan,
    /// Whether the fault needs an order processed first (a campaign then
    /// draws its position from the second order on).
    pub fault_after_first: bool,
    /// `defaultTopicQueueNums` the scenario needs (`None`: a campaign draws it).
    pub queues: Option<u32>,
    pub run: RunScenario,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The counts of a scenario's demo run.
#[derive(Debug, Clone, Copy)]
pub struct DemoPlan {
    /// Orders paid.
    pub messages: u32,
    /// The order (1-based) the fault hits, or before which it strikes.
    pub fault_at: u32,
    /// A second order, for scenarios with two faults.
    pub second_fault_at: u32,
}

/// Where a scenario runs.
#[derive(Debug, Clone)]
pub struct Env {
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub otlp: String,
    pub topic: String,
    pub group: String,
    /// What this run does: counts, fault positions, pauses.
    pub plan: Arc<Plan>,
    /// Orders of this scenario are ORDER_{base + i}, unique across scenarios.
    pub base: u64,
    pub broker_name: String,
    /// Whether the collector has indexed a process span of this order.
    pub processed: Witness,
}

/// A question to the collector, asked while a scenario runs.
#[derive(Clone)]
pub struct Witness(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Witness")
    }
}

impl Env {
    /// This scenario's broker name: brokers of different scenarios are different brokers.
    pub fn broker_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--name", self.broker_name.as_str()];
        args.extend_from_slice(extra);
        args
    }

    pub fn order(&self, i: u32) -> String {
        format!("ORDER_{}", self.base + u64::from(i))
    }
}

/// The business service that consumes `order_paid`, with its own ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Grants a red packet per paid order.
    RedPacket,
    /// Deducts stock per paid order ("paid but stock not deducted").
    Inventory,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::RedPacket => "red-packet",
            Workload::Inventory => "inventory",
        }
    }

    /// The consumer group of the service.
    pub fn group(self) -> &'static str {
        self.name()
    }

    /// The service's ledger file.
    pub fn ledger(self) -> &'static str {
        match self {
            Workload::RedPacket => "granted-packets.txt",
            Workload::Inventory => "stock-deductions.txt",
        }
    }

    /// What the service failing on an order throws.
    pub fn failure(self) -> &'static str {
        match self {
            Workload::RedPacket => "RedPacketServiceTimeout",
            Workload::Inventory => "StockServiceTimeout",
        }
    }
}

/// One scenario run.
#[derive(Debug)]
pub struct Plan {
    pub scenario: &'static Scenario,
    /// The seed it was drawn from (`None`: the demo's fixed plan).
    pub seed: Option<u64>,
    pub workload: Workload,
    /// Orders paid before any recovery step (a scenario may pay a few more after it).
    pub messages: u32,
    /// The order (1-based) the fault hits, or before which it strikes.
    pub fault_at: u32,
    /// A second order for scenarios with two faults (network-flap, tx-check-back).
    pub second_fault_at: u32,
    /// `defaultTopicQueueNums` (`None`: the broker's default).
    pub queues: Option<u32>,
    /// `flushIntervalCommitLog` of an ASYNC_FLUSH broker.
    pub flush_interval_ms: u64,
    /// How long the crashing consumer process takes per message.
    pub process_delay_ms: u64,
    /// Longest pause between two sends.
    pub max_pause_ms: u64,
    pauses: Mutex<ChaCha8Rng>,
}

impl Plan {
    fn new(scenario: &'static Scenario, seed: Option<u64>) -> Plan {
        Plan {
            scenario,
            seed,
            workload: Workload::RedPacket,
            messages: 5,
            fault_at: 1,
            second_fault_at: 2,
            queues: None,
            flush_interval_ms: 600_000,
            process_delay_ms: 1000,
            max_pause_ms: 0,
            pauses: Mutex::new(ChaCha8Rng::seed_from_u64(seed.unwrap_or(0))),
        }
    }

    /// The demo's plan for a scenario: the story as told in the README.
    pub fn demo(scenario: &'static Scenario) -> Plan {
        let mut plan = Plan::new(scenario, None);
        let demo = scenario.demo;
        (plan.messages, plan.fault_at, plan.second_fault_at) =
            (demo.messages, demo.fault_at, demo.second_fault_at);
        plan.queues = scenario.queues;
        plan
    }

    /// A plan drawn from `seed`: the scenario (one of `scenarios`), the service, the counts, the
    /// fault's positions and timing. `messages` overrides the drawn count.
    pub fn draw(scenarios: &'static [Scenario], seed: u64, messages: Option<u32>) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scenario = &scenarios[rng.random_range(0..scenarios.len())];
        let mut plan = Plan::new(scenario, Some(seed));
        plan.workload = if rng.random_bool(0.5) {
            Workload::RedPacket
        } else {
            Workload::Inventory
        };
        plan.messages = messages.unwrap_or_else(|| rng.random_range(3..=12)).max(2);
        let m = plan.messages;
        // The consumer-crash kill comes after at least one processed order.
        let first = if scenario.fault_after_first { 2 } else { 1 };
        plan.fault_at = rng.random_range(first..=m);
        plan.second_fault_at = loop {
            let j = rng.random_range(1..=m);
            if j != plan.fault_at {
                break j;
            }
        };
        plan.queues = match scenario.queues {
            Some(fixed) => Some(fixed),
            None => Some(rng.random_range(1..=4)),
        };
        plan.flush_interval_ms = [50, 200, 1000, 600_000][rng.random_range(0..4)];
        plan.process_delay_ms = rng.random_range(300..=800);
        plan.max_pause_ms = rng.random_range(0..=40);
        plan.pauses = Mutex::new(ChaCha8Rng::seed_from_u64(rng.random()));
        plan
    }

    /// The next pause between two sends (drawn; zero in the demo).
    pub fn pause(&self) -> Duration {
        if self.max_pause_ms == 0 {
            return Duration::ZERO;
        }
        let ms = self
            .pauses
            .lock()
            .expect("plan lock")
            .random_range(0..=self.max_pause_ms);
        Duration::from_millis(ms)
    }

    /// One line that says what this run does.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}): {} orders, fault at order {} (second {}), queues {}, flush interval {} ms, max pause {} ms",
            self.scenario.name,
            self.workload.name(),
            self.messages,
            self.fault_at,
            self.second_fault_at,
            self.queues.map_or("default".into(), |q| q.to_string()),
            self.flush_interval_ms,
            self.max_pause_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::SCENARIOS;

    #[test]
    fn a_seed_replays_the_same_plan_and_seeds_differ() {
        let (a, b) = (
            Plan::draw(SCENARIOS, 42, None),
            Plan::draw(SCENARIOS, 42, None),
        );
        assert_eq!(a.describe(), b.describe());
        let pauses_a: Vec<_> = (0..5).map(|_| a.pause()).collect();
        let pauses_b: Vec<_> = (0..5).map(|_| b.pause()).collect();
        assert_eq!(pauses_a, pauses_b);
        let distinct: std::collections::BTreeSet<String> = (0..50)
            .map(|s| Plan::draw(SCENARIOS, s, None).describe())
            .collect();
        assert!(distinct.len() > 40, "{distinct:?}");
    }

    #[test]
    fn drawn_plans_cover_every_scenario_and_respect_their_bounds() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..400 {
            let p = Plan::draw(SCENARIOS, seed, None);
            seen.insert(p.scenario.name);
            assert!((1..=p.messages).contains(&p.fault_at), "{}", p.describe());
            assert!((1..=p.messages).contains(&p.second_fault_at));
            assert_ne!(p.fault_at, p.second_fault_at);
            if p.scenario.name == "consumer-crash" {
                assert!(p.fault_at >= 2);
                assert_eq!(p.queues, Some(1));
            }
        }
        assert_eq!(seen.len(), SCENARIOS.len());
        assert_eq!(Plan::draw(SCENARIOS, 7, Some(30)).messages, 30);
    }
}
