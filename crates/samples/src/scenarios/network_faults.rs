//! Faults between the order service and the broker: a fault proxy drops
//! chosen requests or responses. Without retries a dropped send is lost; a
//! transactional send is settled by the broker's check-back.

use std::time::Duration;

use lasthop_broker::client::{AckMode, LocalTransactions, ProducerConfig, TransactionProducer};
use lasthop_broker::fault_proxy::{Fault, FaultProxy, RequestKind};
use lasthop_broker::protocol::TxState;

use super::Env;
use super::support::{Failing, Service, order_paid, pay, producer, start_broker, until, wind_down};
use crate::ledger::Ledger;

/// A proxy in front of the broker at `addr`.
pub(super) async fn proxy(addr: &str) -> std::io::Result<FaultProxy> {
    FaultProxy::start(addr.parse().map_err(std::io::Error::other)?).await
}

/// The producer has no retries and the order service ignores a failed send:
/// the request of order `fault_at` is dropped (never stored) and the
/// response of order `second_fault_at` (stored; the producer never hears).
pub(super) async fn network_flap(
    env: &Env,
    paid: &Ledger,
    granted: &Ledger,
) -> std::io::Result<()> {
    let plan = &env.plan;
    let (_, broker) = start_broker(env, &[], None)?;
    let proxy = proxy(&broker.addr).await?;
    let orders = producer(&proxy.addr.to_string(), 0, Duration::from_millis(500));
    let service = Service::start(
        env,
        &broker.addr,
        granted,
        AckMode::AfterProcess,
        Failing::Never,
    );
    for i in 1..=plan.messages {
        if i == plan.fault_at {
            proxy.inject(Fault::DropRequest(RequestKind::Send)); // never reaches the broker
        }
        if i == plan.second_fault_at {
            proxy.inject(Fault::DropResponse(RequestKind::Send)); // stored; the producer never hears
        }
        pay(env, &orders, paid, i).await;
    }
    wind_down(env, broker, service, || {
        granted.orders().len() + 1 >= plan.messages as usize
    })
    .await
}

/// The order service's transactional producer and its record of local
/// transactions, which the broker's check-backs read.
pub(super) struct OrderTransactions {
    producer: TransactionProducer,
    local: LocalTransactions,
}

impl OrderTransactions {
    pub(super) fn start(addr: &str, retries: u32) -> OrderTransactions {
        let local = LocalTransactions::default();
        let producer = TransactionProducer::start(
            ProducerConfig {
                retries,
                timeout: Duration::from_millis(500),
                group: "order-tx".into(),
                ..ProducerConfig::new(addr.to_owned())
            },
            local.listener(TxState::Rollback),
        );
        OrderTransactions { producer, local }
    }

    /// Pays order `i` in the local transaction of its half message: the order
    /// is paid only if the half message was stored.
    pub(super) async fn pay(&self, env: &Env, paid: &Ledger, i: u32) {
        tokio::time::sleep(env.plan.pause()).await;
        let order = env.order(i);
        let (local, paid) = (self.local.clone(), paid.clone());
        let message = order_paid(env, &order);
        let _ = self
            .producer
            .send(message, move |msg_id| {
                paid.record(&order);
                local.record(msg_id, TxState::Commit);
                TxState::Commit
            })
            .await;
    }
}

/// Transactional sends through the proxy: the response to the half message
/// of order `fault_at` is lost (the order is not paid; check-back rolls it
/// back) and the commit of order `second_fault_at` is lost (check-back
/// commits it).
pub(super) async fn tx_check_back(
    env: &Env,
    paid: &Ledger,
    granted: &Ledger,
) -> std::io::Result<()> {
    let plan = &env.plan;
    let toml = "transactionTimeOut = 300\ntransactionCheckInterval = 50\n";
    let (_, broker) = start_broker(env, &[], Some(toml))?;
    let proxy = proxy(&broker.addr).await?;
    let orders = OrderTransactions::start(&proxy.addr.to_string(), 0);
    let service = Service::start(
        env,
        &broker.addr,
        granted,
        AckMode::AfterProcess,
        Failing::Never,
    );
    for i in 1..=plan.messages {
        if i == plan.fault_at {
            proxy.inject(Fault::DropResponse(RequestKind::SendHalf));
        }
        if i == plan.second_fault_at {
            proxy.inject(Fault::DropRequest(RequestKind::EndTransaction));
        }
        orders.pay(env, paid, i).await;
    }
    until(|| paid.orders().iter().all(|o| granted.orders().contains(o))).await;
    service.stop().await;
    drop(orders);
    broker.stop();
    Ok(())
}
