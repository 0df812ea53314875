//! The scenarios: each pays orders through a real broker, with a real fault,
//! and returns what the ledgers say.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lasthop_analyzer::Verdict;
use lasthop_broker::client::{
    self, AckMode, ConsumerConfig, Message, ProcessOutcome, Producer, ProducerConfig,
};
use tokio::sync::watch;

use crate::cluster::BrokerSpec;
use crate::ledger::Ledger;

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
        injected: "SYNC_FLUSH broker, ack after processing, retries: the same workload must lose nothing",
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
    /// Orders of this scenario are ORDER_{base + i}, unique across scenarios.
    pub base: u32,
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
        format!("ORDER_{}", self.base + i)
    }
}

/// What the ledgers say after a scenario.
#[derive(Debug, Clone, Default)]
pub struct Story {
    pub paid: BTreeSet<String>,
    pub granted: BTreeSet<String>,
}

/// The order service: pays an order, then sends `order_paid`. The order is
/// paid (ledger) whatever becomes of the message.
async fn pay(producer: &Producer, paid: &Ledger, topic: &str, order: &str) {
    paid.record(order);
    let message = Message {
        topic: topic.into(),
        keys: vec![order.into()],
        body: format!("{{\"order\":\"{order}\"}}").into_bytes(),
        ..Default::default()
    };
    let _ = producer.send(message).await;
}

async fn run_consumer(
    config: ConsumerConfig,
    handler: client::Handler,
    stop: watch::Receiver<bool>,
) {
    if let Err(e) = client::consumer::run(config, handler, stop).await {
        tracing::warn!(error = %e, "red-packet consumer stopped");
    }
}

/// Waits until `done` holds (checked every 20 ms), at most 20 s.
async fn until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn ledgers(env: &Env) -> std::io::Result<(Ledger, Ledger)> {
    Ok((
        Ledger::create(&env.dir.join("paid-orders.txt"))?,
        Ledger::create(&env.dir.join("granted-packets.txt"))?,
    ))
}

pub async fn run(name: &str, env: &Env) -> std::io::Result<Story> {
    std::fs::create_dir_all(&env.dir)?;
    let (paid, granted) = ledgers(env)?;
    match name {
        "power-loss" => power_loss(env, &paid, &granted).await?,
        "swallowed-exception" => swallowed_exception(env, &paid, &granted).await?,
        "reliable" => reliable(env, &paid, &granted).await?,
        "network-flap" => network_flap(env, &paid, &granted).await?,
        "disk-loss" => disk_loss(env, &paid, &granted).await?,
        "consumer-crash" => consumer_crash(env, &paid, &granted).await?,
        "poison" => poison(env, &paid, &granted).await?,
        "tx-check-back" => tx_check_back(env, &paid, &granted).await?,
        other => return Err(std::io::Error::other(format!("no scenario {other:?}"))),
    }
    Ok(Story {
        paid: paid.orders(),
        granted: granted.orders(),
    })
}

fn consumer_config(env: &Env, addr: &str, ack: AckMode) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(addr.to_owned(), env.group.clone(), env.topic.clone());
    config.ack = ack;
    config.poll_wait = Duration::from_millis(100);
    config
}

fn consume(
    env: &Env,
    addr: &str,
    granted: &Ledger,
    ack: AckMode,
    fail_on: Option<&str>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop_tx, stop) = watch::channel(false);
    let (ledger, fail_on) = (granted.clone(), fail_on.map(str::to_owned));
    let handler: client::Handler = Arc::new(move |m| {
        let order = m.keys.first().cloned().unwrap_or_default();
        if fail_on.as_deref() == Some(order.as_str()) {
            return ProcessOutcome::Failed("RedPacketServiceTimeout".into());
        }
        ledger.record(&order);
        ProcessOutcome::Ok
    });
    let config = consumer_config(env, addr, ack);
    (stop_tx, tokio::spawn(run_consumer(config, handler, stop)))
}

async fn stop_consumer(consumer: (watch::Sender<bool>, tokio::task::JoinHandle<()>)) {
    let _ = consumer.0.send(true);
    let _ = consumer.1.await;
}

async fn power_loss(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let (spec, broker) = start_broker(
        env,
        &[
            "--simulate-power-loss",
            "--flush",
            "async",
            "--flush-interval",
            "600000",
        ],
        None,
    )?;
    let producer = Producer::new(ProducerConfig::new(broker.addr.clone()));
    let consumer = consume(env, &broker.addr, granted, AckMode::AfterProcess, None);
    for i in 1..=3 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    until(|| granted.orders().len() >= 3).await;
    stop_consumer(consumer).await;
    // Acknowledged, not yet flushed: the power goes.
    for i in 4..=5 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    broker.kill9();
    let broker = spec.start()?;
    let consumer = consume(env, &broker.addr, granted, AckMode::AfterProcess, None);
    let producer = Producer::new(ProducerConfig::new(broker.addr.clone()));
    pay(&producer, paid, &env.topic, &env.order(6)).await;
    until(|| granted.orders().contains(&env.order(6))).await;
    stop_consumer(consumer).await;
    broker.stop();
    Ok(())
}

async fn swallowed_exception(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let (_, broker) = start_broker(env, &[], None)?;
    let producer = Producer::new(ProducerConfig::new(broker.addr.clone()));
    let consumer = consume(
        env,
        &broker.addr,
        granted,
        AckMode::OnReceive,
        Some(&env.order(2)),
    );
    for i in 1..=4 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    until(|| granted.orders().len() >= 3).await;
    stop_consumer(consumer).await;
    broker.stop();
    Ok(())
}

async fn reliable(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let (_, broker) = start_broker(env, &["--flush", "sync"], None)?;
    let producer = Producer::new(ProducerConfig {
        retries: 3,
        ..ProducerConfig::new(broker.addr.clone())
    });
    let consumer = consume(env, &broker.addr, granted, AckMode::AfterProcess, None);
    for i in 1..=5 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    until(|| granted.orders().len() >= 5).await;
    stop_consumer(consumer).await;
    broker.stop();
    Ok(())
}

/// Starts this scenario's broker (store `broker/` in its directory), with a
/// configuration file when `toml` is given; returns it and how to restart it.
fn start_broker(
    env: &Env,
    flags: &[&str],
    toml: Option<&str>,
) -> std::io::Result<(BrokerSpec, crate::cluster::BrokerProcess)> {
    let config = toml.map(|t| config_file(env, t)).transpose()?;
    let mut args: Vec<&str> = flags.to_vec();
    if let Some(path) = &config {
        args.extend(["--config", path.as_str()]);
    }
    let spec = BrokerSpec::new(
        &env.exe,
        env.dir.join("broker"),
        &env.otlp,
        &env.broker_args(&args),
    )?;
    let broker = spec.start()?;
    Ok((spec, broker))
}

/// A broker configuration file in the scenario's directory (RocketMQ names).
fn config_file(env: &Env, toml: &str) -> std::io::Result<String> {
    let path = env.dir.join("broker.toml");
    std::fs::write(&path, toml)?;
    Ok(path.display().to_string())
}

async fn network_flap(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    use lasthop_broker::fault_proxy::{Fault, FaultProxy, RequestKind};
    let (_, broker) = start_broker(env, &[], None)?;
    let proxy = FaultProxy::start(broker.addr.parse().map_err(std::io::Error::other)?).await?;
    let producer = Producer::new(ProducerConfig {
        retries: 0,
        timeout: Duration::from_millis(500),
        ..ProducerConfig::new(proxy.addr.to_string())
    });
    let consumer = consume(env, &broker.addr, granted, AckMode::AfterProcess, None);
    pay(&producer, paid, &env.topic, &env.order(1)).await;
    proxy.inject(Fault::DropRequest(RequestKind::Send)); // never reaches the broker
    pay(&producer, paid, &env.topic, &env.order(2)).await;
    proxy.inject(Fault::DropResponse(RequestKind::Send)); // stored; the producer never hears
    pay(&producer, paid, &env.topic, &env.order(3)).await;
    pay(&producer, paid, &env.topic, &env.order(4)).await;
    until(|| {
        [1, 3, 4]
            .iter()
            .all(|i| granted.orders().contains(&env.order(*i)))
    })
    .await;
    stop_consumer(consumer).await;
    broker.stop();
    Ok(())
}

async fn poison(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let (_, broker) = start_broker(
        env,
        &[],
        Some("messageDelayLevel = \"20ms 20ms 40ms 80ms 160ms\"\nmaxReconsumeTimes = 2\n"),
    )?;
    let producer = Producer::new(ProducerConfig::new(broker.addr.clone()));
    let consumer = consume(
        env,
        &broker.addr,
        granted,
        AckMode::AfterProcess,
        Some(&env.order(2)),
    );
    for i in 1..=3 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    let list = lasthop_broker::protocol::Request::ListDeadLetters {
        group: env.group.clone(),
    };
    let dead = ask_until(
        &broker.addr,
        list,
        |answer| matches!(answer, lasthop_broker::protocol::Response::Messages(m) if !m.is_empty()),
    )
    .await?;
    if !dead {
        return Err(std::io::Error::other(
            "the poison message never reached the dead-letter queue",
        ));
    }
    until(|| granted.orders().len() >= 2).await;
    stop_consumer(consumer).await;
    broker.stop();
    Ok(())
}

async fn tx_check_back(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    use lasthop_broker::client::{LocalTransactions, TransactionProducer};
    use lasthop_broker::fault_proxy::{Fault, FaultProxy, RequestKind};
    use lasthop_broker::protocol::TxState;

    let (_, broker) = start_broker(
        env,
        &[],
        Some("transactionTimeOut = 300\ntransactionCheckInterval = 50\n"),
    )?;
    let proxy = FaultProxy::start(broker.addr.parse().map_err(std::io::Error::other)?).await?;
    // The order service's own record of its local transactions, which check-backs read.
    let local = LocalTransactions::default();
    let listener = local.listener(TxState::Rollback);
    let producer = TransactionProducer::start(
        ProducerConfig {
            retries: 0,
            timeout: Duration::from_millis(500),
            group: "order-tx".into(),
            ..ProducerConfig::new(proxy.addr.to_string())
        },
        listener,
    );
    let consumer = consume(env, &broker.addr, granted, AckMode::AfterProcess, None);
    for (i, fault) in [
        (1, None),
        (2, Some(Fault::DropResponse(RequestKind::SendHalf))),
        (3, Some(Fault::DropRequest(RequestKind::EndTransaction))),
    ] {
        if let Some(f) = fault {
            proxy.inject(f);
        }
        let order = env.order(i);
        let message = Message {
            topic: env.topic.clone(),
            keys: vec![order.clone()],
            body: b"{}".to_vec(),
            ..Default::default()
        };
        let (local, paid) = (local.clone(), paid.clone());
        // The local transaction: the order is paid only if the half message was stored.
        let _ = producer
            .send(message, move |msg_id| {
                paid.record(&order);
                local.record(msg_id, TxState::Commit);
                TxState::Commit
            })
            .await;
    }
    until(|| paid.orders().iter().all(|o| granted.orders().contains(o))).await;
    stop_consumer(consumer).await;
    drop(producer);
    broker.stop();
    Ok(())
}

async fn request(
    addr: &str,
    request: lasthop_broker::protocol::Request,
) -> std::io::Result<lasthop_broker::protocol::Response> {
    let c = lasthop_broker::client::Connection::connect(addr, Duration::from_secs(2))
        .await
        .map_err(std::io::Error::other)?;
    c.request(&request, Duration::from_secs(5))
        .await
        .map_err(std::io::Error::other)
}

/// Asks `addr` every 20 ms, at most 20 s, until `done` accepts the answer.
async fn ask_until(
    addr: &str,
    ask: lasthop_broker::protocol::Request,
    done: impl Fn(&lasthop_broker::protocol::Response) -> bool,
) -> std::io::Result<bool> {
    let connection = lasthop_broker::client::Connection::connect(addr, Duration::from_secs(2))
        .await
        .map_err(std::io::Error::other)?;
    for _ in 0..1000 {
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
async fn slave_caught_up(master: &str) -> std::io::Result<bool> {
    use lasthop_broker::protocol::{Request, Response};
    ask_until(master, Request::ReplicationStatus, |answer| {
        matches!(answer, Response::Replication { put_offset, replicas, .. } if replicas.first().is_some_and(|r| r.acked_offset == *put_offset))
    })
    .await
}

/// Waits until the group has consumed everything the broker holds for the topic.
async fn drained(env: &Env, addr: &str) -> std::io::Result<bool> {
    use lasthop_broker::protocol::{Request, Response};
    let progress = Request::GroupProgress {
        group: env.group.clone(),
        topic: env.topic.clone(),
    };
    ask_until(addr, progress, |answer| {
        matches!(answer, Response::Progress(queues) if queues.iter().all(|q| q.consumer_offset.unwrap_or(0) >= q.broker_offset))
    })
    .await
}

async fn disk_loss(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    use lasthop_broker::protocol::Request;
    let master_store = env.dir.join("master");
    let master = BrokerSpec::new(
        &env.exe,
        master_store.clone(),
        &env.otlp,
        &env.broker_args(&["--replication", "async"]),
    )?
    .start()?;
    let slave_args = ["--role", "slave", "--master", master.addr.as_str()];
    let slave = BrokerSpec::new(
        &env.exe,
        env.dir.join("slave"),
        &env.otlp,
        &env.broker_args(&slave_args),
    )?
    .start()?;
    let producer = Producer::new(ProducerConfig::new(master.addr.clone()));
    let consumer = consume(env, &master.addr, granted, AckMode::AfterProcess, None);
    for i in 1..=3 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    until(|| granted.orders().len() >= 3).await;
    slave_caught_up(&master.addr).await?;
    stop_consumer(consumer).await;
    slave.signal("-STOP"); // the slave falls behind; an async master does not wait for it
    for i in 4..=5 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    master.kill9();
    std::fs::remove_dir_all(&master_store)?; // the disk is gone
    slave.signal("-CONT");
    request(
        &slave.addr,
        Request::Promote {
            cause: "disk_lost".into(),
        },
    )
    .await?;
    // The red-packet service moves to the promoted broker and takes whatever it holds.
    let consumer = consume(env, &slave.addr, granted, AckMode::AfterProcess, None);
    drained(env, &slave.addr).await?;
    stop_consumer(consumer).await;
    slave.stop();
    Ok(())
}

async fn consumer_crash(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (_, broker) = start_broker(env, &[], Some("defaultTopicQueueNums = 1\n"))?;
    let producer = Producer::new(ProducerConfig::new(broker.addr.clone()));
    for i in 1..=5 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    // The red-packet service as a process: a second per packet, commits on receipt.
    let mut child = std::process::Command::new(&env.exe)
        .args([
            "consume",
            "--ack",
            "on-receive",
            "--process-delay",
            "1000",
            "--broker",
            &broker.addr,
            "--topic",
            &env.topic,
        ])
        .args(["--group", &env.group, "--otlp", &env.otlp])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let granted_count = Arc::new(AtomicUsize::new(0));
    let (stdout, ledger, count) = (
        child.stdout.take().expect("piped"),
        granted.clone(),
        granted_count.clone(),
    );
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(order) = line
                .strip_prefix("processed ")
                .and_then(|l| l.split_whitespace().next())
            {
                ledger.record(order);
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    until(|| granted_count.load(Ordering::SeqCst) >= 2).await;
    // Its spans for the packets it granted have reached the collector; the third is mid-way.
    let second = env.order(2);
    until(|| (env.processed.0)(&second)).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    // The service comes back (processing after it processes) and orders go on.
    let consumer = consume(env, &broker.addr, granted, AckMode::AfterProcess, None);
    for i in 6..=7 {
        pay(&producer, paid, &env.topic, &env.order(i)).await;
    }
    until(|| {
        [6, 7]
            .iter()
            .all(|i| granted.orders().contains(&env.order(*i)))
    })
    .await;
    stop_consumer(consumer).await;
    broker.stop();
    Ok(())
}
