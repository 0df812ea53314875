//! The safe configuration under every fault of the other scenarios, one
//! after another in one run: transactional sends with retries through a
//! proxy that drops a half message's response and a commit, a SYNC_FLUSH,
//! SYNC_MASTER broker with a slave, a consumer that commits after
//! processing and is killed mid-batch, a processing failure, a power loss,
//! then a destroyed disk and a promoted slave. Nothing may be lost.

use lasthop_broker::client::AckMode;
use lasthop_broker::fault_proxy::{Fault, RequestKind};

use super::Env;
use super::consumer_faults::ServiceProcess;
use super::network_faults::{OrderTransactions, proxy};
use super::support::{
    Failing, Service, destroy_master_and_promote, drain_from, start_broker_in, until,
};
use crate::ledger::Ledger;

/// Every paid order has been processed.
fn all_granted(paid: &Ledger, granted: &Ledger) -> bool {
    let granted = granted.orders();
    paid.orders().iter().all(|o| granted.contains(o))
}

pub(super) async fn reliable(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let plan = &env.plan;
    let safe = [
        "--flush",
        "sync",
        "--replication",
        "sync",
        "--simulate-power-loss",
    ];
    let toml = "transactionTimeOut = 300\ntransactionCheckInterval = 50\nmessageDelayLevel = \"20ms 20ms 40ms 80ms 160ms\"\n";
    let (master_spec, master) = start_broker_in(env, "master", &safe, Some(toml))?;
    let slave_flags = [
        "--role",
        "slave",
        "--master",
        master.addr.as_str(),
        "--flush",
        "sync",
    ];
    let (_, slave) = start_broker_in(env, "slave", &slave_flags, Some(toml))?;
    let proxy = proxy(&master.addr).await?;
    let orders = OrderTransactions::start(&proxy.addr.to_string(), 3);

    // The network: a lost half-message response and a lost commit, retried
    // and checked back. The consumer process is killed after its first order.
    let crashing = ServiceProcess::start(env, &master.addr, "after-process", granted)?;
    for i in 1..=plan.messages {
        if i == plan.fault_at {
            proxy.inject(Fault::DropResponse(RequestKind::SendHalf));
        }
        if i == plan.second_fault_at {
            proxy.inject(Fault::DropRequest(RequestKind::EndTransaction));
        }
        orders.pay(env, paid, i).await;
    }
    until(|| crashing.processed() >= 1).await;
    crashing.kill9();

    // The service comes back and takes over what the dead process had not committed.
    let service = Service::start(
        env,
        &master.addr,
        granted,
        AckMode::AfterProcess,
        Failing::Never,
    );
    until(|| all_granted(paid, granted)).await;
    service.stop().await;

    // A power loss: the master restarts from what it had synced. Then the
    // service's first try of the order paid just before fails.
    let extra = plan.messages + 1;
    orders.pay(env, paid, extra).await;
    master.kill9();
    let master = master_spec.start()?;
    let failing = Failing::Once(env.order(extra));
    let service = Service::start(env, &master.addr, granted, AckMode::AfterProcess, failing);
    until(|| all_granted(paid, granted)).await;
    service.stop().await;

    // The master's disk is destroyed; the slave is promoted.
    orders.pay(env, paid, extra + 1).await;
    destroy_master_and_promote(env, master, &slave).await?;
    drain_from(env, &slave.addr, granted, || all_granted(paid, granted)).await?;
    drop(orders);
    slave.stop();
    Ok(())
}
