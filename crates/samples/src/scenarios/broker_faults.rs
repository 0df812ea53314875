//! Losses inside the broker: power loss before an async flush, and a
//! destroyed disk whose async slave had not copied the tail.

use std::time::Duration;

use lasthop_broker::client::AckMode;

use super::Env;
use super::support::{
    Failing, Service, destroy_master_and_promote, drain_from, pay, producer, slave_caught_up,
    start_broker, start_broker_in, until, wind_down,
};
use crate::ledger::Ledger;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Orders before `fault_at` are paid and granted; the rest are acknowledged
/// by an ASYNC_FLUSH broker from memory, then the power goes (`kill -9` with
/// `--simulate-power-loss`). After the restart one more order is paid and
/// the service drains what the broker still holds.
pub(super) async fn power_loss(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let plan = &env.plan;
    let interval = plan.flush_interval_ms.to_string();
    let flags = [
        "--simulate-power-loss",
        "--flush",
        "async",
        "--flush-interval",
        interval.as_str(),
    ];
    let (spec, broker) = start_broker(env, &flags, None)?;
    let orders = producer(&broker.addr, 2, TIMEOUT);
    let service = Service::start(
        env,
        &broker.addr,
        granted,
        AckMode::AfterProcess,
        Failing::Never,
    );
    for i in 1..plan.fault_at {
        pay(env, &orders, paid, i).await;
    }
    until(|| granted.orders().len() >= (plan.fault_at - 1) as usize).await;
    service.stop().await;
    for i in plan.fault_at..=plan.messages {
        pay(env, &orders, paid, i).await;
    }
    broker.kill9();
    let broker = spec.start()?;
    let service = Service::start(
        env,
        &broker.addr,
        granted,
        AckMode::AfterProcess,
        Failing::Never,
    );
    let orders = producer(&broker.addr, 2, TIMEOUT);
    pay(env, &orders, paid, plan.messages + 1).await;
    wind_down(env, broker, service, || true).await
}

/// An ASYNC_MASTER with a slave: orders before `fault_at` are granted and
/// copied; then the slave freezes, the rest are acknowledged by the master
/// alone, the master's disk is destroyed and the slave is promoted. The
/// service moves to the promoted broker and drains it.
pub(super) async fn disk_loss(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let plan = &env.plan;
    let (_, master) = start_broker_in(env, "master", &["--replication", "async"], None)?;
    let slave_flags = ["--role", "slave", "--master", master.addr.as_str()];
    let (_, slave) = start_broker_in(env, "slave", &slave_flags, None)?;
    let orders = producer(&master.addr, 2, TIMEOUT);
    let service = Service::start(
        env,
        &master.addr,
        granted,
        AckMode::AfterProcess,
        Failing::Never,
    );
    for i in 1..plan.fault_at {
        pay(env, &orders, paid, i).await;
    }
    until(|| granted.orders().len() >= (plan.fault_at - 1) as usize).await;
    slave_caught_up(&master.addr).await?;
    service.stop().await;
    slave.signal("-STOP"); // the slave falls behind; an async master does not wait for it
    for i in plan.fault_at..=plan.messages {
        pay(env, &orders, paid, i).await;
    }
    destroy_master_and_promote(env, master, &slave).await?;
    // The service moves to the promoted broker and takes whatever it holds.
    drain_from(env, &slave.addr, granted, || true).await?;
    slave.stop();
    Ok(())
}
