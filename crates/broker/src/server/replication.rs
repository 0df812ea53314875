//! Master/slave replication (`brokerRole`).
//!
//! The slave long-polls the master with `ReplicaPull { from }`, where `from`
//! is the slave's durable end: each pull acknowledges everything below it.
//! The master answers with whole commit-log records from `from` on; the slave
//! appends them at the same offsets, flushes, and pulls again.
//!
//! - The master emits a `replicate` span each time a replica's acknowledged
//!   offset advances (the range it newly acknowledged).
//! - `SYNC_MASTER` sends wait for a replica to acknowledge their end.
//! - `Promote` turns a slave into a master: it stops copying, moves to an
//!   epoch above its master's, and emits a `failover` span naming the offset
//!   that survived and why.

use lasthop_telemetry::int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lasthop_vocab::attr;
use tokio::sync::watch;

use super::Broker;
use crate::client::Connection;
use crate::config::BrokerRole;
use crate::protocol::{ErrorCode, ReplicaStatus, Request, Response};

/// A replica not heard from for this long is not available to a SYNC_MASTER.
const REPLICA_ALIVE: Duration = Duration::from_secs(3);
/// Bytes one replica pull returns at most (plus one record).
const PULL_BYTES: u32 = 1 << 20;

/// Replication state of one broker.
#[derive(Debug)]
pub(crate) struct Replication {
    /// Master: the highest offset a replica has acknowledged.
    acked: watch::Sender<u64>,
    /// Master: the replica and when it last pulled.
    replica: std::sync::Mutex<Option<(String, Instant)>>,
    /// Slave: the master's epoch at its last answer.
    master_epoch: AtomicU64,
}

impl Replication {
    pub(crate) fn new() -> Replication {
        Replication {
            acked: watch::channel(0).0,
            replica: std::sync::Mutex::new(None),
            master_epoch: AtomicU64::new(0),
        }
    }

    fn replica_alive(&self) -> bool {
        self.replica
            .lock()
            .expect("replica lock")
            .as_ref()
            .is_some_and(|(_, seen)| seen.elapsed() < REPLICA_ALIVE)
    }

    /// Waits until a replica acknowledged everything below `offset`; false on timeout.
    pub(crate) async fn wait_acked(&self, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.acked.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|a| *a >= offset)).await,
            Ok(Ok(_))
        )
    }

    /// Master: each replica and the offset it has acknowledged.
    pub(crate) fn replicas(&self) -> Vec<(String, u64)> {
        let acked = *self.acked.borrow();
        let replica = self.replica.lock().expect("replica lock");
        replica
            .iter()
            .map(|(name, _)| (name.clone(), acked))
            .collect()
    }

    /// Whether a SYNC_MASTER can wait for a replica at all.
    pub(crate) fn available(&self) -> bool {
        self.replica_alive()
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

/// Master side of a replica's pull.
pub(crate) async fn handle_pull(
    broker: &Broker,
    replica: String,
    from: u64,
    max_bytes: u32,
    wait_ms: u64,
) -> Response {
    if broker.role() == BrokerRole::Slave {
        return error(ErrorCode::WrongRole, "a slave has no replicas");
    }
    let end = broker.store.end();
    if from > end {
        return error(
            ErrorCode::WrongRole,
            format!("replica {replica} is at {from}, past this master's end {end}"),
        );
    }
    let r = &broker.replication;
    *r.replica.lock().expect("replica lock") = Some((replica.clone(), Instant::now()));
    let previous = *r.acked.borrow();
    if from > previous {
        let span = tracing::info_span!(
            "replicate",
            { attr::HOP } = "replicate",
            { attr::BROKER } = broker.config.broker_name.as_str(),
            { attr::BROKER_EPOCH } = int(broker.store.epoch()),
            { attr::REPLICA } = replica.as_str(),
            { attr::COMMITLOG_OFFSET } = int(from),
            { attr::RANGE_START } = int(previous),
            { attr::RANGE_END } = int(from),
        );
        drop(span);
        r.acked.send_if_modified(|a| {
            let grew = from > *a;
            *a = (*a).max(from);
            grew
        });
    }
    if from == end && wait_ms > 0 {
        let mut appended = broker.appended.subscribe();
        let mut stopping = broker.stopping.clone();
        tokio::select! {
            _ = appended.wait_for(|e| *e > from) => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
    }
    match broker.store.read_raw(from, max_bytes as usize) {
        Ok(bytes) => Response::ReplicaData {
            master_epoch: broker.store.epoch(),
            master_end: broker.store.end(),
            bytes,
        },
        Err(e) => error(ErrorCode::StoreError, e.to_string()),
    }
}

/// Slave side: copy the master's log until promoted or stopped.
pub(crate) async fn run_slave(broker: Arc<Broker>) {
    let Some(master) = broker.config.ha_master_address.clone() else {
        return;
    };
    let replica = broker.config.replica_name();
    let mut stopping = broker.stopping.clone();
    let mut warned = false;
    while broker.role() == BrokerRole::Slave && !*stopping.borrow() {
        let connection = match Connection::connect(&master, Duration::from_secs(3)).await {
            Ok(c) => c,
            Err(e) => {
                if !warned {
                    tracing::warn!(%master, error = %e, "cannot reach master; retrying");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                continue;
            }
        };
        warned = false;
        while broker.role() == BrokerRole::Slave && !*stopping.borrow() {
            let from = broker.store.end();
            let pull = Request::ReplicaPull {
                replica: replica.clone(),
                from,
                max_bytes: PULL_BYTES,
                wait_ms: 500,
            };
            let answer = tokio::select! {
                a = connection.request(&pull, Duration::from_secs(5)) => a,
                _ = stopping.wait_for(|s| *s) => return,
            };
            let (master_epoch, bytes) = match answer {
                Ok(Response::ReplicaData {
                    master_epoch,
                    bytes,
                    ..
                }) => (master_epoch, bytes),
                Ok(other) => {
                    tracing::error!(answer = ?other, "unexpected answer from master; replication stopped");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%master, error = %e, "replication connection lost; reconnecting");
                    break;
                }
            };
            broker
                .replication
                .master_epoch
                .store(master_epoch, Ordering::Release);
            if bytes.is_empty() || broker.role() != BrokerRole::Slave {
                continue;
            }
            let store = broker.store.clone();
            let copied = tokio::task::spawn_blocking(move || {
                let end = store.append_replicated(&bytes)?;
                store.flush()?;
                Ok::<u64, crate::store::StoreError>(end)
            })
            .await
            .expect("replica append task");
            match copied {
                Ok(end) => broker.appended_to(end),
                Err(e) => {
                    tracing::error!(error = %e, "cannot apply the master's records; replication stopped");
                    return;
                }
            }
        }
    }
}

/// Turns this slave into the master.
pub(crate) async fn promote(broker: &Broker, cause: &str) -> Response {
    {
        let mut role = broker.role.lock().expect("role lock");
        if *role != BrokerRole::Slave {
            return error(ErrorCode::WrongRole, "only a slave can be promoted");
        }
        *role = BrokerRole::AsyncMaster;
    }
    let at_least = broker.replication.master_epoch.load(Ordering::Acquire);
    let store = broker.store.clone();
    let epoch = match tokio::task::spawn_blocking(move || store.advance_epoch(at_least))
        .await
        .expect("epoch task")
    {
        Ok(epoch) => epoch,
        Err(e) => return error(ErrorCode::StoreError, e.to_string()),
    };
    // From the new epoch on, its log is the master's.
    broker
        .flush
        .set_owner(broker.config.log_owner(BrokerRole::AsyncMaster));
    let end = broker.store.end();
    let span = tracing::info_span!(
        "failover",
        { attr::HOP } = "failover",
        { attr::BROKER } = broker.config.broker_name.as_str(),
        { attr::BROKER_EPOCH } = int(epoch),
        { attr::REPLICA } = broker.config.replica_name().as_str(),
        { attr::RECOVER_CAUSE } = cause,
        { attr::COMMITLOG_OFFSET } = int(end),
        { attr::RANGE_START } = int(0u64),
        { attr::RANGE_END } = int(end),
    );
    drop(span);
    tracing::warn!(broker = %broker.config.broker_name, epoch, end, cause, "promoted to master");
    Response::Promoted { epoch, end }
}

pub(crate) fn status(broker: &Broker) -> Response {
    let role = broker.role();
    let r = &broker.replication;
    let replicas = r
        .replica
        .lock()
        .expect("replica lock")
        .iter()
        .map(|(name, seen)| ReplicaStatus {
            name: name.clone(),
            acked_offset: *r.acked.borrow(),
            last_seen_ms: seen.elapsed().as_millis() as u64,
        })
        .collect();
    Response::Replication {
        role: format!("{role:?}"),
        epoch: broker.store.epoch(),
        put_offset: broker.store.end(),
        replicas,
    }
}
