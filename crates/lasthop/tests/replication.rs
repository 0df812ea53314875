//! Master/slave replication with real processes: the master's store is
//! destroyed (disk lost) and the slave promoted.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use lasthop_broker::client::{Connection, Message, Producer, ProducerConfig};
use lasthop_broker::protocol::{Request, Response, SendResult, SendStatus};
use lasthop_collector::{CollectorConfig, server};
use lasthop_vocab::Hop;
use support::{BrokerProcess, TOPIC, stored_ids};

async fn request(addr: &str, r: Request) -> Response {
    let c = Connection::connect(addr, Duration::from_secs(3))
        .await
        .unwrap();
    c.request(&r, Duration::from_secs(5)).await.unwrap()
}

/// The master's view: put offset and the slave's acked offset.
async fn replication(master: &str) -> (u64, Option<u64>) {
    match request(master, Request::ReplicationStatus).await {
        Response::Replication {
            put_offset,
            replicas,
            ..
        } => (put_offset, replicas.first().map(|r| r.acked_offset)),
        other => panic!("{other:?}"),
    }
}

/// Polls the master until `done` holds for its replication status.
async fn wait_replication(master: &str, done: impl Fn(u64, Option<u64>) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (put, acked) = replication(master).await;
        if done(put, acked) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replication did not reach the state (put {put}, acked {acked:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn send(addr: &str, keys: std::ops::Range<u32>) -> Vec<SendResult> {
    let producer = Producer::new(ProducerConfig {
        retries: 0,
        ..ProducerConfig::new(addr)
    });
    let mut out = Vec::new();
    for i in keys {
        let m = Message {
            topic: TOPIC.into(),
            keys: vec![format!("ORDER_{i}")],
            body: b"paid".to_vec(),
            ..Default::default()
        };
        out.push(producer.send(m).await.unwrap());
    }
    out
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

/// A collector in this process and an ASYNC_MASTER (store `dir/master`)
/// exporting its spans to it; returns the collector, its OTLP URL and the master.
fn traced_async_master(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) -> (server::RunningCollector, String, BrokerProcess) {
    let mut config = CollectorConfig::ephemeral(dir.join("collector"));
    config.pipeline.commit_interval = Duration::from_millis(100);
    let collector = rt.block_on(server::start(config)).unwrap();
    let otlp = format!("http://{}", collector.grpc_addr);
    let master = BrokerProcess::start(
        &dir.join("master"),
        &["--replication", "async", "--otlp", otlp.as_str()],
    );
    (collector, otlp, master)
}

/// The flags of a slave of `master` exporting its spans to `otlp`.
fn traced_slave<'a>(master: &'a str, otlp: &'a str) -> [&'a str; 6] {
    ["--role", "slave", "--master", master, "--otlp", otlp]
}

fn disk_lost(master: BrokerProcess, store: &std::path::Path) {
    master.kill9();
    std::fs::remove_dir_all(store).unwrap();
}

#[test]
fn sync_master_loses_no_acknowledged_message_when_its_disk_is_lost() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (mstore, sstore) = (dir.path().join("master"), dir.path().join("slave"));
    let master = BrokerProcess::start(&mstore, &["--replication", "sync"]);
    let maddr = master.addr.to_string();
    let slave = BrokerProcess::start(&sstore, &["--role", "slave", "--master", maddr.as_str()]);
    let saddr = slave.addr.to_string();
    rt.block_on(wait_replication(&maddr, |_, acked| acked.is_some()));
    let sent = rt.block_on(send(&maddr, 0..30));
    assert!(
        sent.iter().all(|r| r.status == SendStatus::SendOk),
        "{:?}",
        sent.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let master_epoch = master.epoch();
    disk_lost(master, &mstore);

    let Response::Promoted { epoch, .. } = rt.block_on(request(
        &saddr,
        Request::Promote {
            cause: "disk_lost".into(),
        },
    )) else {
        panic!("promotion refused")
    };
    assert!(
        epoch > master_epoch,
        "the promoted slave continues after its master's epoch"
    );
    let stored = rt.block_on(stored_ids(&saddr));
    let acked: BTreeSet<String> = sent.into_iter().map(|r| r.msg_id).collect();
    assert!(
        acked.is_subset(&stored),
        "acknowledged but lost: {:?}",
        acked.difference(&stored).take(3).collect::<Vec<_>>()
    );
    // The promoted slave takes writes.
    let after = rt.block_on(send(&saddr, 30..31));
    assert_eq!(
        (after[0].status, after[0].epoch),
        (SendStatus::SendOk, epoch)
    );
    slave.terminate();
}

#[test]
fn async_master_loses_only_what_the_slave_had_not_acked_and_failover_says_so() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (collector, otlp, master) = traced_async_master(&rt, dir.path());
    let (mstore, sstore) = (dir.path().join("master"), dir.path().join("slave"));
    let maddr = master.addr.to_string();
    let slave = BrokerProcess::start(&sstore, &traced_slave(&maddr, &otlp));
    let saddr = slave.addr.to_string();

    let replicated = rt.block_on(send(&maddr, 0..10));
    rt.block_on(wait_replication(&maddr, |put, acked| acked == Some(put)));
    let (put, _) = rt.block_on(replication(&maddr));
    // The master's replicate span for it has reached the collector.
    let pipeline = collector.pipeline().clone();
    let max_replicated = || {
        let spans = pipeline.store().by_time_range(0, u64::MAX, 10_000).unwrap();
        spans
            .into_iter()
            .filter(|s| s.hop == Some(Hop::Replicate))
            .filter_map(|s| s.range_end)
            .max()
    };
    support::eventually("a replicate span up to the put offset", || {
        (max_replicated() == Some(put)).then_some(())
    });
    signal(slave.process.id(), "-STOP"); // the slave falls behind
    let unreplicated = rt.block_on(send(&maddr, 10..20));
    assert!(
        unreplicated.iter().all(|r| r.status == SendStatus::SendOk),
        "an async master acknowledges at once"
    );
    disk_lost(master, &mstore);
    signal(slave.process.id(), "-CONT");

    let Response::Promoted { epoch, end } = rt.block_on(request(
        &saddr,
        Request::Promote {
            cause: "disk_lost".into(),
        },
    )) else {
        panic!("promotion refused")
    };
    let stored = rt.block_on(stored_ids(&saddr));
    let acked_by_slave: BTreeSet<String> = replicated.iter().map(|r| r.msg_id.clone()).collect();
    assert!(
        acked_by_slave.is_subset(&stored),
        "everything the slave acknowledged survives"
    );
    // A pull answer already on its way to the frozen slave may still land: the
    // loss is bounded by what the slave had not acknowledged, not equal to it.
    let lost: Vec<&SendResult> = unreplicated
        .iter()
        .filter(|r| !stored.contains(&r.msg_id))
        .collect();
    assert!(
        !lost.is_empty(),
        "an async master acknowledged messages that died with its disk"
    );
    assert_eq!(
        stored.len() + lost.len(),
        replicated.len() + unreplicated.len(),
        "nothing else appeared or vanished"
    );
    assert!(
        lost.iter().all(|r| r.commitlog_offset >= end),
        "every lost message lies past the surviving offset"
    );
    slave.terminate();

    let failover = support::eventually("the failover span", || {
        let spans = pipeline.store().by_time_range(0, u64::MAX, 10_000).unwrap();
        spans.into_iter().find(|s| s.hop == Some(Hop::Failover))
    });
    assert_eq!(
        (failover.epoch, failover.range_end),
        (Some(epoch), Some(end))
    );
    assert_eq!(
        failover
            .attr("lasthop.recover.cause")
            .and_then(|v| v.as_str()),
        Some("disk_lost")
    );
    assert_eq!(
        failover.attr("lasthop.replica").and_then(|v| v.as_str()),
        Some("broker-a/1")
    );
    let acked = max_replicated().unwrap();
    assert!(acked <= end, "what the master saw acknowledged survived");
    assert!(
        lost.iter().all(|r| r.commitlog_offset >= acked),
        "no lost message had been acknowledged by the slave"
    );
    drop(pipeline);
    rt.block_on(collector.shutdown());
}

#[test]
fn a_restarted_slave_catches_up() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (mstore, sstore) = (dir.path().join("master"), dir.path().join("slave"));
    let master = BrokerProcess::start(&mstore, &["--replication", "async"]);
    let maddr = master.addr.to_string();
    let slave_args = ["--role", "slave", "--master", maddr.as_str()];
    let slave = BrokerProcess::start(&sstore, &slave_args);
    rt.block_on(send(&maddr, 0..10));
    rt.block_on(wait_replication(&maddr, |put, acked| acked == Some(put)));
    slave.kill9();
    rt.block_on(send(&maddr, 10..25));
    let slave = BrokerProcess::start(&sstore, &slave_args);
    rt.block_on(wait_replication(&maddr, |put, acked| acked == Some(put)));
    let on_master = rt.block_on(stored_ids(&maddr));
    let on_slave = rt.block_on(stored_ids(&slave.addr.to_string()));
    assert_eq!(on_master.len(), 25);
    assert_eq!(
        on_slave, on_master,
        "the slave holds everything the master does"
    );
    slave.terminate();
    master.terminate();
}

#[test]
fn a_slave_that_restarts_behind_its_master_is_not_read_as_the_master_losing_messages() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (collector, otlp, master) = traced_async_master(&rt, dir.path());
    let sstore = dir.path().join("slave");
    let maddr = master.addr.to_string();
    let slave_args = traced_slave(&maddr, &otlp);
    let slave = BrokerProcess::start(&sstore, &slave_args);
    rt.block_on(send(&maddr, 0..5));
    rt.block_on(wait_replication(&maddr, |put, acked| acked == Some(put)));
    slave.kill9();
    // Stored on the master while its slave is down: past the slave's log.
    let behind = rt.block_on(send(&maddr, 5..10));
    let slave = BrokerProcess::start(&sstore, &slave_args);

    let pipeline = collector.pipeline().clone();
    let spans = || pipeline.store().by_time_range(0, u64::MAX, 10_000).unwrap();
    // The slave's restart, reported under its own name with its own epoch.
    let slave_recover = support::eventually("the restarted slave's recover span", || {
        spans()
            .into_iter()
            .find(|s| s.hop == Some(Hop::Recover) && s.epoch == Some(2))
    });
    assert_eq!(slave_recover.broker.as_deref(), Some("broker-a/1"));
    assert!(
        slave_recover.range_end.unwrap() <= behind[0].commitlog_offset,
        "the slave came back behind the messages it missed"
    );
    assert!(
        spans()
            .iter()
            .filter(|s| s.hop == Some(Hop::Recover) && s.broker.as_deref() == Some("broker-a"))
            .all(|s| s.epoch == Some(1)),
        "the master itself never restarted"
    );
    support::eventually("the store spans of the messages the slave missed", || {
        behind
            .iter()
            .all(|r| {
                let spans = pipeline.store().by_message_id(&r.msg_id).unwrap();
                spans.iter().any(|s| s.hop == Some(Hop::Store))
            })
            .then_some(())
    });
    let options = lasthop_analyzer::Options {
        grace_ns: 0,
        ..Default::default()
    };
    for r in &behind {
        let spans = pipeline
            .store()
            .with_context(pipeline.store().by_message_id(&r.msg_id).unwrap())
            .unwrap();
        let verdicts =
            lasthop_analyzer::analyze(&lasthop_analyzer::Evidence::new(&spans), &options);
        let judged = verdicts.iter().find(|m| m.message_id == r.msg_id).unwrap();
        assert_eq!(
            judged.verdicts[0].verdict,
            lasthop_analyzer::Verdict::InFlight,
            "the master still holds it: {:?}",
            judged.verdicts
        );
    }
    drop(pipeline);
    slave.terminate();
    master.terminate();
    rt.block_on(collector.shutdown());
}
