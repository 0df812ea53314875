//! What every scenario uses: the order service's send, the consuming
//! service, brokers with the plan's configuration, and conditions awaited on
//! the broker or the ledgers (never fixed sleeps).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lasthop_broker::client::{self, AckMode, ConsumerConfig, Message, ProcessOutcome, Producer};
use lasthop_broker::protocol::{Request, Response};
use tokio::sync::watch;

use super::Env;
use crate::cluster::{BrokerProcess, BrokerSpec};
use crate::ledger::Ledger;

/// How long a scenario waits for a condition before going on: the ledgers
/// then tell what happened. Every condition holds in a run that works, so a
/// long patience costs nothing there; 20 s ran out once on a loaded machine
/// (the demo took 69 s instead of 10) before a redelivery was processed.
const PATIENCE: Duration = Duration::from_secs(60);

/// The order service: after the plan's pause, pays order `i`, then sends
/// `order_paid`. The order is paid (ledger) whatever becomes of the message.
pub(super) async fn pay(env: &Env, producer: &Producer, paid: &Ledger, i: u32) {
    tokio::time::sleep(env.plan.pause()).await;
    let order = env.order(i);
    paid.record(&order);
    let _ = producer.send(order_paid(env, &order)).await;
}

/// The `order_paid` message of an order (key = order id).
pub(super) fn order_paid(env: &Env, order: &str) -> Message {
    Message {
        topic: env.topic.clone(),
        keys: vec![order.to_owned()],
        body: format!("{{\"order\":\"{order}\"}}").into_bytes(),
        ..Default::default()
    }
}

/// Waits until `done` holds (checked every 20 ms), at most [`PATIENCE`].
pub(super) async fn until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The order service's ledger and the consuming service's.
pub(super) fn ledgers(env: &Env) -> std::io::Result<(Ledger, Ledger)> {
    Ok((
        Ledger::create(&env.dir.join("paid-orders.txt"))?,
        Ledger::create(&env.dir.join(env.plan.workload.ledger()))?,
    ))
}

/// Orders the consuming service fails on.
#[derive(Debug, Clone, Default)]
pub(super) enum Failing {
    #[default]
    Never,
    /// Every delivery of this order fails (a poison message).
    Always(String),
    /// The first delivery of this order fails; a redelivery succeeds.
    Once(String),
}

/// The consuming service (red packets or stock) as a task of this process.
pub(super) struct Service {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Starts consuming the topic from `addr`; each processed order goes to `ledger`.
    pub(super) fn start(
        env: &Env,
        addr: &str,
        ledger: &Ledger,
        ack: AckMode,
        failing: Failing,
    ) -> Service {
        let (stop, stopped) = watch::channel(false);
        let ledger = ledger.clone();
        let failure = env.plan.workload.failure();
        let deliveries: Mutex<HashMap<String, u32>> = Mutex::default();
        let handler: client::Handler = Arc::new(move |m| {
            let order = m.keys.first().cloned().unwrap_or_default();
            let n = {
                let mut seen = deliveries.lock().expect("deliveries lock");
                let n = seen.entry(order.clone()).or_default();
                *n += 1;
                *n
            };
            let fails = match &failing {
                Failing::Never => false,
                Failing::Always(o) => *o == order,
                Failing::Once(o) => *o == order && n == 1,
            };
            if fails {
                return ProcessOutcome::Failed(failure.into());
            }
            ledger.record(&order);
            ProcessOutcome::Ok
        });
        let mut config = ConsumerConfig::new(addr.to_owned(), env.group.clone(), env.topic.clone());
        config.ack = ack;
        config.poll_wait = Duration::from_millis(100);
        let task = tokio::spawn(async move {
            if let Err(e) = client::consumer::run(config, handler, stopped).await {
                tracing::warn!(error = %e, "consuming service stopped");
            }
        });
        Service { stop, task }
    }

    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The broker settings a plan draws (queue count), then `toml`, as a file.
fn config_toml(env: &Env, toml: Option<&str>) -> String {
    let mut config = String::new();
    if let Some(q) = env.plan.queues {
        config.push_str(&format!("defaultTopicQueueNums = {q}\n"));
    }
    config.push_str(toml.unwrap_or_default());
    config
}

/// Starts a broker of this scenario with its store in `store` (under the
/// scenario's directory), the plan's settings plus `toml`, and `flags`;
/// returns it and how to start it again.
pub(super) fn start_broker_in(
    env: &Env,
    store: &str,
    flags: &[&str],
    toml: Option<&str>,
) -> std::io::Result<(BrokerSpec, BrokerProcess)> {
    let config = env.dir.join(format!("{store}.toml"));
    std::fs::write(&config, config_toml(env, toml))?;
    let config = config.display().to_string();
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["--config", config.as_str()]);
    let spec = BrokerSpec::new(
        &env.exe,
        env.dir.join(store),
        &env.otlp,
        &env.broker_args(&args),
    )?;
    let broker = spec.start()?;
    Ok((spec, broker))
}

/// Starts this scenario's single broker (store `broker/`).
pub(super) fn start_broker(
    env: &Env,
    flags: &[&str],
    toml: Option<&str>,
) -> std::io::Result<(BrokerSpec, BrokerProcess)> {
    start_broker_in(env, "broker", flags, toml)
}

/// One request to a broker on a fresh connection.
pub(super) async fn request(addr: &str, request: Request) -> std::io::Result<Response> {
    let c = client::Connection::connect(addr, Duration::from_secs(2))
        .await
        .map_err(std::io::Error::other)?;
    c.request(&request, Duration::from_secs(5))
        .await
        .map_err(std::io::Error::other)
}

/// Asks `addr` every 20 ms, at most [`PATIENCE`], until `done` accepts the answer.
pub(super) async fn ask_until(
    addr: &str,
    ask: Request,
    done: impl Fn(&Response) -> bool,
) -> std::io::Result<bool> {
    let connection = client::Connection::connect(addr, Duration::from_secs(2))
        .await
        .map_err(std::io::Error::other)?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if connection
            .request(&ask, Duration::from_secs(5))
            .await
            .is_ok_and(|answer| done(&answer))
        {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(false)
}

/// Waits until the master's slave has acknowledged everything the master holds.
pub(super) async fn slave_caught_up(master: &str) -> std::io::Result<bool> {
    ask_until(master, Request::ReplicationStatus, |answer| {
        matches!(answer, Response::Replication { put_offset, replicas, .. } if replicas.first().is_some_and(|r| r.acked_offset == *put_offset))
    })
    .await
}

/// Waits until the group has consumed everything the broker holds for the topic.
pub(super) async fn drained(env: &Env, addr: &str) -> std::io::Result<bool> {
    let progress = Request::GroupProgress {
        group: env.group.clone(),
        topic: env.topic.clone(),
    };
    ask_until(addr, progress, |answer| {
        matches!(answer, Response::Progress(queues) if queues.iter().all(|q| q.consumer_offset.unwrap_or(0) >= q.broker_offset))
    })
    .await
}

/// Waits until the group's dead-letter queue holds a message.
pub(super) async fn dead_lettered(env: &Env, addr: &str) -> std::io::Result<bool> {
    let list = Request::ListDeadLetters {
        group: env.group.clone(),
    };
    ask_until(
        addr,
        list,
        |answer| matches!(answer, Response::Messages(m) if !m.is_empty()),
    )
    .await
}

/// The order service's producer against `addr`.
pub(super) fn producer(addr: &str, retries: u32, timeout: Duration) -> Producer {
    Producer::new(client::ProducerConfig {
        retries,
        timeout,
        ..client::ProducerConfig::new(addr.to_owned())
    })
}

/// The master's disk is lost: `kill -9`, its store destroyed; the slave (let
/// go if it was frozen) is promoted.
pub(super) async fn destroy_master_and_promote(
    env: &Env,
    master: BrokerProcess,
    slave: &BrokerProcess,
) -> std::io::Result<()> {
    master.kill9();
    std::fs::remove_dir_all(env.dir.join("master"))?;
    slave.signal("-CONT");
    request(
        &slave.addr,
        Request::Promote {
            cause: "disk_lost".into(),
        },
    )
    .await?;
    Ok(())
}

/// The service consumes from `addr` until the group has taken everything the
/// broker holds and `done` holds.
pub(super) async fn drain_from(
    env: &Env,
    addr: &str,
    ledger: &Ledger,
    done: impl FnMut() -> bool,
) -> std::io::Result<()> {
    let service = Service::start(env, addr, ledger, AckMode::AfterProcess, Failing::Never);
    drained(env, addr).await?;
    until(done).await;
    service.stop().await;
    Ok(())
}

/// Ends a scenario: once the group has taken everything `broker` holds and
/// `done` holds (or patience runs out), stops the service and the broker.
pub(super) async fn wind_down(
    env: &Env,
    broker: BrokerProcess,
    service: Service,
    done: impl FnMut() -> bool,
) -> std::io::Result<()> {
    drained(env, &broker.addr).await?;
    until(done).await;
    service.stop().await;
    broker.stop();
    Ok(())
}
