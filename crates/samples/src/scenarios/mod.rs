//! The scenarios: each pays orders through a real broker, with a real fault,
//! and returns what the ledgers say. [`SCENARIOS`] is the table of them; a
//! new scenario is a function in one of these files and one entry there.

mod broker_faults;
mod consumer_faults;
mod network_faults;
mod reliable;
mod support;

use std::collections::BTreeSet;

use lasthop_analyzer::Verdict;

pub use crate::plan::{DemoPlan, Env, Scenario, Witness};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "power-loss",
        injected: "an ASYNC_FLUSH broker acknowledges orders from memory, then loses power before its next flush",
        expected: Some(Verdict::LostAtFlush),
        demo: DemoPlan {
            messages: 5,
            fault_at: 4,
            second_fault_at: 0,
        },
        fault_after_first: false,
        queues: None,
        run: |env, paid, granted| Box::pin(broker_faults::power_loss(env, paid, granted)),
    },
    Scenario {
        name: "swallowed-exception",
        injected: "the red-packet service fails on one order; its consumer had committed on receipt, so the failure is swallowed",
        expected: Some(Verdict::LostAtConsumer),
        demo: DemoPlan {
            messages: 4,
            fault_at: 2,
            second_fault_at: 0,
        },
        fault_after_first: false,
        queues: None,
        run: |env, paid, granted| {
            Box::pin(consumer_faults::swallowed_exception(env, paid, granted))
        },
    },
    Scenario {
        name: "consumer-crash",
        injected: "the red-packet consumer commits each batch on receipt and is killed (kill -9) mid-batch; it comes back and goes on",
        expected: Some(Verdict::LostAtConsumer),
        demo: DemoPlan {
            messages: 5,
            fault_at: 3,
            second_fault_at: 0,
        },
        fault_after_first: true,
        queues: Some(1),
        run: |env, paid, granted| Box::pin(consumer_faults::consumer_crash(env, paid, granted)),
    },
    Scenario {
        name: "disk-loss",
        injected: "an ASYNC_MASTER acknowledges orders its (frozen) slave has not copied, then its disk is destroyed and the slave is promoted",
        expected: Some(Verdict::LostAtReplication),
        demo: DemoPlan {
            messages: 5,
            fault_at: 4,
            second_fault_at: 0,
        },
        fault_after_first: false,
        queues: None,
        run: |env, paid, granted| Box::pin(broker_faults::disk_loss(env, paid, granted)),
    },
    Scenario {
        name: "network-flap",
        injected: "a fault proxy between the order service and the broker drops one send request and one send response; the producer has no retries and the service ignores the failure",
        expected: Some(Verdict::LostAtSend),
        demo: DemoPlan {
            messages: 4,
            fault_at: 2,
            second_fault_at: 3,
        },
        fault_after_first: false,
        queues: None,
        run: |env, paid, granted| Box::pin(network_faults::network_flap(env, paid, granted)),
    },
    Scenario {
        name: "poison",
        injected: "the red-packet service can never process one order: it is retried with growing delays, then dead-lettered",
        expected: Some(Verdict::DeadLettered),
        demo: DemoPlan {
            messages: 3,
            fault_at: 2,
            second_fault_at: 0,
        },
        fault_after_first: false,
        queues: None,
        run: |env, paid, granted| Box::pin(consumer_faults::poison(env, paid, granted)),
    },
    Scenario {
        name: "tx-check-back",
        injected: "transactional sends: one half message's response is lost, one commit is lost; the broker's check-back settles both",
        expected: None,
        demo: DemoPlan {
            messages: 3,
            fault_at: 2,
            second_fault_at: 3,
        },
        fault_after_first: false,
        queues: None,
        run: |env, paid, granted| Box::pin(network_faults::tx_check_back(env, paid, granted)),
    },
    Scenario {
        name: "reliable",
        injected: "the safe configuration (transactional sends with retries, SYNC_FLUSH, SYNC_MASTER with a slave, ack after processing) under every fault above in one run: a lost half-message response and a lost commit, the consumer killed mid-batch, a processing failure, a power loss, a destroyed disk and a promoted slave; nothing may be lost",
        expected: None,
        demo: DemoPlan {
            messages: 5,
            fault_at: 3,
            second_fault_at: 4,
        },
        fault_after_first: false,
        queues: None,
        run: |env, paid, granted| Box::pin(reliable::reliable(env, paid, granted)),
    },
];

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
    (env.plan.scenario.run)(env, &paid, &granted).await?;
    Ok(Story {
        paid: paid.orders(),
        granted: granted.orders(),
    })
}
