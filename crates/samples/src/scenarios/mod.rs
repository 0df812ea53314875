//! The scenarios: each pays orders through a real broker, with a real fault,
//! and returns what the ledgers say.

mod broker_faults;
mod consumer_faults;
mod network_faults;
mod reliable;
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use lasthop_analyzer::Verdict;

use crate::plan::Plan;

/// A scenario: its name, what it injects, and the verdict its losses must get.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub injected: &'static str,
    pub expected: Option<Verdict>,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "power-loss",
        injected: "an ASYNC_FLUSH broker acknowledges orders from memory, then loses power before its next flush",
        expected: Some(Verdict::LostAtFlush),
    },
    Scenario {
        name: "swallowed-exception",
        injected: "the red-packet service fails on one order; its consumer had committed on receipt, so the failure is swallowed",
        expected: Some(Verdict::LostAtConsumer),
    },
    Scenario {
        name: "consumer-crash",
        injected: "the red-packet consumer commits each batch on receipt and is killed (kill -9) mid-batch; it comes back and goes on",
        expected: Some(Verdict::LostAtConsumer),
    },
    Scenario {
        name: "disk-loss",
        injected: "an ASYNC_MASTER acknowledges orders its (frozen) slave has not copied, then its disk is destroyed and the slave is promoted",
        expected: Some(Verdict::LostAtReplication),
    },
    Scenario {
        name: "network-flap",
        injected: "a fault proxy between the order service and the broker drops one send request and one send response; the producer has no retries and the service ignores the failure",
        expected: Some(Verdict::LostAtSend),
    },
    Scenario {
        name: "poison",
        injected: "the red-packet service can never process one order: it is retried with growing delays, then dead-lettered",
        expected: Some(Verdict::DeadLettered),
    },
    Scenario {
        name: "tx-check-back",
        injected: "transactional sends: one half message's response is lost, one commit is lost; the broker's check-back settles both",
        expected: None,
    },
    Scenario {
        name: "reliable",
        injected: "the safe configuration (transactional sends with retries, SYNC_FLUSH, SYNC_MASTER with a slave, ack after processing) under every fault above in one run: a lost half-message response and a lost commit, the consumer killed mid-batch, a processing failure, a power loss, a destroyed disk and a promoted slave; nothing may be lost",
        expected: None,
    },
];

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

/// What the ledgers say after a scenario.
#[derive(Debug, Clone, Default)]
pub struct Story {
    pub paid: BTreeSet<String>,
    /// What the consuming service did: packets granted or stock deducted.
    pub granted: BTreeSet<String>,
}

/// Runs the scenario of `env.plan` and returns what the ledgers say.
pub async fn run(env: &Env) -> std::io::Result<Story> {
    std::fs::create_dir_all(&env.dir)?;
    let (paid, granted) = support::ledgers(env)?;
    match env.plan.scenario {
        "power-loss" => broker_faults::power_loss(env, &paid, &granted).await?,
        "swallowed-exception" => consumer_faults::swallowed_exception(env, &paid, &granted).await?,
        "reliable" => reliable::reliable(env, &paid, &granted).await?,
        "network-flap" => network_faults::network_flap(env, &paid, &granted).await?,
        "disk-loss" => broker_faults::disk_loss(env, &paid, &granted).await?,
        "consumer-crash" => consumer_faults::consumer_crash(env, &paid, &granted).await?,
        "poison" => consumer_faults::poison(env, &paid, &granted).await?,
        "tx-check-back" => network_faults::tx_check_back(env, &paid, &granted).await?,
        other => return Err(std::io::Error::other(format!("no scenario {other:?}"))),
    }
    Ok(Story {
        paid: paid.orders(),
        granted: granted.orders(),
    })
}
