//! What one scenario run does: which service consumes, how many orders, where
//! the fault hits, the broker's configuration and the pauses between sends.
//!
//! The demo uses fixed plans (the story as the seeds tell it). A campaign draws
//! every plan from a seed with a ChaCha generator (stable across platforms and
//! releases), so `lasthop campaign --runs 1 --seed S` replays run S: the same
//! scenario, counts, fault positions and pauses. What real processes do with
//! that timing (when a flusher fires, when a kill lands) is up to the machine;
//! the ledgers record what really happened.

use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenarios::SCENARIOS;

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
    pub scenario: &'static str,
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
    fn new(scenario: &'static str, seed: Option<u64>) -> Plan {
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
    pub fn demo(scenario: &'static str) -> Plan {
        let mut plan = Plan::new(scenario, None);
        let (messages, fault_at, second) = match scenario {
            "power-loss" | "disk-loss" => (5, 4, 0),
            "swallowed-exception" => (4, 2, 0),
            "consumer-crash" => (5, 3, 0),
            "network-flap" => (4, 2, 3),
            "poison" => (3, 2, 0),
            "tx-check-back" => (3, 2, 3),
            _ => (5, 3, 4),
        };
        (plan.messages, plan.fault_at, plan.second_fault_at) = (messages, fault_at, second);
        if scenario == "consumer-crash" {
            plan.queues = Some(1);
        }
        plan
    }

    /// A plan drawn from `seed`: the scenario, the service, the counts, the
    /// fault's positions and timing. `messages` overrides the drawn count.
    pub fn draw(seed: u64, messages: Option<u32>) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scenario = SCENARIOS[rng.random_range(0..SCENARIOS.len())].name;
        let mut plan = Plan::new(scenario, Some(seed));
        plan.workload = if rng.random_bool(0.5) {
            Workload::RedPacket
        } else {
            Workload::Inventory
        };
        plan.messages = messages.unwrap_or_else(|| rng.random_range(3..=12)).max(2);
        let m = plan.messages;
        // The consumer-crash kill comes after at least one processed order.
        let first = if scenario == "consumer-crash" { 2 } else { 1 };
        plan.fault_at = rng.random_range(first..=m);
        plan.second_fault_at = loop {
            let j = rng.random_range(1..=m);
            if j != plan.fault_at {
                break j;
            }
        };
        plan.queues = if scenario == "consumer-crash" {
            Some(1)
        } else {
            Some(rng.random_range(1..=4))
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
            self.scenario,
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

    #[test]
    fn a_seed_replays_the_same_plan_and_seeds_differ() {
        let (a, b) = (Plan::draw(42, None), Plan::draw(42, None));
        assert_eq!(a.describe(), b.describe());
        let pauses_a: Vec<_> = (0..5).map(|_| a.pause()).collect();
        let pauses_b: Vec<_> = (0..5).map(|_| b.pause()).collect();
        assert_eq!(pauses_a, pauses_b);
        let distinct: std::collections::BTreeSet<String> =
            (0..50).map(|s| Plan::draw(s, None).describe()).collect();
        assert!(distinct.len() > 40, "{distinct:?}");
    }

    #[test]
    fn drawn_plans_cover_every_scenario_and_respect_their_bounds() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..400 {
            let p = Plan::draw(seed, None);
            seen.insert(p.scenario);
            assert!((1..=p.messages).contains(&p.fault_at), "{}", p.describe());
            assert!((1..=p.messages).contains(&p.second_fault_at));
            assert_ne!(p.fault_at, p.second_fault_at);
            if p.scenario == "consumer-crash" {
                assert!(p.fault_at >= 2);
                assert_eq!(p.queues, Some(1));
            }
        }
        assert_eq!(seen.len(), SCENARIOS.len());
        assert_eq!(Plan::draw(7, Some(30)).messages, 30);
    }
}
