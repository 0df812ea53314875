//! The broker process: a TCP server over a [`MessageStore`].
//!
//! Start: open the store (recovering it and advancing the epoch), emit a
//! `recover` span saying what survived and why, start the flusher and the
//! offset persister, then listen. Stop: refuse new connections, finish
//! requests in flight, flush, persist offsets, close the store cleanly.

mod connection;
pub mod flush;
mod handlers;
mod metrics;
mod replication;
mod retry;
mod send_path;
mod transaction;

use lasthop_telemetry::int;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use lasthop_vocab::attr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{BrokerConfig, BrokerRole, ConfigError};
use crate::store::{MessageStore, StoreConfig, StoreError};
use flush::FlushService;

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or recovered.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// State every connection shares.
#[derive(Debug)]
pub(crate) struct Broker {
    pub config: BrokerConfig,
    pub store: Arc<MessageStore>,
    pub flush: FlushService,
    /// The commit log's end, for long-polling pulls.
    pub appended: watch::Sender<u64>,
    pub next_queue: AtomicU32,
    pub stopping: watch::Receiver<bool>,
    /// The current role: a slave becomes a master when promoted.
    pub role: std::sync::Mutex<BrokerRole>,
    pub replication: replication::Replication,
    pub transactions: transaction::Transactions,
    /// What `--metrics` counts as the broker serves.
    pub counters: metrics::BrokerCounters,
}

impl Broker {
    pub fn role(&self) -> BrokerRole {
        *self.role.lock().expect("role lock")
    }

    /// The commit log now reaches `end`: wakes long-polling pulls.
    pub fn appended_to(&self, end: u64) {
        self.appended.send_if_modified(|e| {
            let grew = end > *e;
            *e = (*e).max(end);
            grew
        });
    }
}

/// A broker that is serving.
#[derive(Debug)]
pub struct RunningBroker {
    pub addr: SocketAddr,
    broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Opens the store, reports the recovery, and starts serving.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
    config.validate()?;
    let store_config = StoreConfig {
        segment_bytes: config.mapped_file_size_commit_log,
        simulate_power_loss: config.simulate_power_loss,
        ..StoreConfig::new(config.store_path_root_dir.clone())
    };
    let store = tokio::task::spawn_blocking(move || MessageStore::open(&store_config))
        .await
        .expect("store open task")?;
    let store = Arc::new(store);
    report_recovery(&config.log_owner(config.broker_role), &store);
    let transactions = transaction::Transactions::load(&store)?;
    let addr = config.listen_addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BrokerError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| BrokerError::Bind { addr, source })?;
    let (stop, stopping) = watch::channel(false);
    let flush = FlushService::start(
        store.clone(),
        config.log_owner(config.broker_role),
        config.flush_interval(),
    );
    let broker = Arc::new(Broker {
        appended: watch::channel(store.end()).0,
        store,
        flush,
        next_queue: AtomicU32::new(0),
        stopping: stopping.clone(),
        role: std::sync::Mutex::new(config.broker_role),
        replication: replication::Replication::new(),
        transactions,
        counters: metrics::BrokerCounters::default(),
        config,
    });
    let mut tasks = vec![
        tokio::spawn(connection::accept_loop(broker.clone(), listener)),
        tokio::spawn(persist_offsets(broker.clone())),
    ];
    if broker.role() == BrokerRole::Slave {
        tasks.push(tokio::spawn(replication::run_slave(broker.clone())));
    } else {
        tasks.push(tokio::spawn(retry::run_scheduler(broker.clone())));
        tasks.push(tokio::spawn(transaction::run_checker(broker.clone())));
    }
    tracing::info!(broker = %broker.config.broker_name, %addr, epoch = broker.store.epoch(), "broker listening");
    Ok(RunningBroker {
        addr,
        broker,
        stop,
        tasks,
    })
}

fn report_recovery(name: &str, store: &MessageStore) {
    let r = store.recovery();
    let span = tracing::info_span!(
        "recover",
        { attr::HOP } = "recover",
        { attr::BROKER } = name,
        { attr::BROKER_EPOCH } = int(r.epoch),
        { attr::RECOVER_CAUSE } = r.cause.as_str(),
        { attr::RANGE_START } = int(0u64),
        { attr::RANGE_END } = int(r.surviving_end),
        "lasthop.recover.truncated_bytes" = int(r.truncated_bytes),
        "lasthop.recover.messages" = int(r.messages),
    );
    drop(span);
    if r.truncated_bytes > 0 {
        tracing::warn!(
            broker = name,
            bytes = r.truncated_bytes,
            corrupt = r.truncated_corrupt,
            end = r.surviving_end,
            "commit log tail cut at recovery"
        );
    }
    tracing::info!(
        broker = name,
        epoch = r.epoch,
        cause = r.cause.as_str(),
        end = r.surviving_end,
        messages = r.messages,
        "store recovered"
    );
}

/// Persists committed offsets every second (and once more at shutdown).
async fn persist_offsets(broker: Arc<Broker>) {
    let mut stopping = broker.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let store = broker.store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.persist_offsets()).await {
            tracing::error!(error = %e, "cannot persist consumer offsets");
        }
    }
}

impl RunningBroker {
    pub fn name(&self) -> &str {
        &self.broker.config.broker_name
    }

    pub fn epoch(&self) -> u64 {
        self.broker.store.epoch()
    }

    /// Serves Prometheus metrics at `http://{addr}/metrics` until the broker
    /// stops; returns the address bound.
    pub async fn serve_metrics(&mut self, addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BrokerError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| BrokerError::Bind { addr, source })?;
        let mut stopping = self.broker.stopping.clone();
        let stop = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        self.tasks.push(tokio::spawn(metrics::serve(
            self.broker.clone(),
            listener,
            stop,
        )));
        Ok(bound)
    }

    /// What opening the store found.
    pub fn recovery(&self) -> &crate::store::Recovery {
        self.broker.store.recovery()
    }

    pub fn role(&self) -> BrokerRole {
        self.broker.role()
    }

    /// Stops serving, finishes requests in flight, flushes and closes the store.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let broker = self.broker;
        tokio::task::spawn_blocking(move || {
            broker.flush.stop();
            broker.store.close()
        })
        .await
        .expect("store close task")
    }
}
