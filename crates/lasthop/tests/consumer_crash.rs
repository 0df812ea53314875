//! A consumer process killed mid-batch: with `--ack on-receive` the group's
//! offset is already past messages it never processed; with
//! `--ack after-process` they are delivered again.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use lasthop_broker::client::{Connection, Message, Producer, ProducerConfig};
use lasthop_broker::protocol::{Request, Response};
use lasthop_broker::{BrokerConfig, server};

const MESSAGES: usize = 20;

/// Starts a consumer, returns it with the keys it reports once `n` are processed.
fn consume(addr: &str, group: &str, ack: &str, n: usize, extra: &[&str]) -> (Child, Vec<String>) {
    let mut child = support::lasthop()
        .args([
            "consume",
            "--topic",
            "order_paid",
            "--broker",
            addr,
            "--group",
            group,
            "--ack",
            ack,
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut keys = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while keys.len() < n {
        let line = lines.next().expect("consumer output").unwrap();
        if let Some(rest) = line.strip_prefix("processed ") {
            keys.push(rest.split_whitespace().next().unwrap().to_owned());
        }
    }
    // Keep reading, so the consumer never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, keys)
}

async fn committed(addr: &str, group: &str) -> u64 {
    let c = Connection::connect(addr, Duration::from_secs(2))
        .await
        .unwrap();
    let q = Request::QueryOffset {
        group: group.into(),
        topic: "order_paid".into(),
        queue_id: 0,
    };
    match c.request(&q, Duration::from_secs(2)).await.unwrap() {
        Response::Offset(o) => o.unwrap_or(0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn on_receive_commits_past_unprocessed_messages_and_after_process_redelivers_them() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        listen_port: 0,
        store_path_root_dir: dir.path().to_owned(),
        default_topic_queue_nums: 1,
        ..BrokerConfig::default()
    };
    let broker = rt.block_on(server::start(config)).unwrap();
    let addr = broker.addr.to_string();
    rt.block_on(async {
        let p = Producer::new(ProducerConfig::new(addr.clone()));
        for i in 0..MESSAGES {
            p.send(Message {
                topic: "order_paid".into(),
                keys: vec![format!("ORDER_{i}")],
                body: b"paid".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });

    // Auto-commit hazard: the whole batch is committed on receipt, then the consumer dies.
    let (mut child, processed) =
        consume(&addr, "hasty", "on-receive", 2, &["--process-delay", "100"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let offset = rt.block_on(committed(&addr, "hasty"));
    assert_eq!(
        offset as usize, MESSAGES,
        "the whole batch was committed on receipt"
    );
    assert!(
        processed.len() < MESSAGES,
        "yet only {} were processed",
        processed.len()
    );
    // A restarted consumer of the group never sees the rest.
    let c = rt
        .block_on(Connection::connect(&addr, Duration::from_secs(2)))
        .unwrap();
    let pull = Request::Pull {
        group: "hasty".into(),
        topic: "order_paid".into(),
        queue_id: 0,
        offset,
        max: 32,
        wait_ms: 0,
    };
    let Response::Pulled { messages, .. } = rt
        .block_on(c.request(&pull, Duration::from_secs(2)))
        .unwrap()
    else {
        panic!()
    };
    assert!(messages.is_empty());

    // Ack after process: killed mid-batch, the group resumes at the first unprocessed message.
    let (mut child, first) = consume(
        &addr,
        "careful",
        "after-process",
        2,
        &["--process-delay", "100"],
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let offset = rt.block_on(committed(&addr, "careful"));
    assert!(
        offset as usize <= first.len(),
        "committed {offset} but processed only {}",
        first.len()
    );
    let remaining = MESSAGES - offset as usize;
    let count = remaining.to_string();
    let (mut child, second) = consume(
        &addr,
        "careful",
        "after-process",
        remaining,
        &["--count", count.as_str()],
    );
    assert!(child.wait().unwrap().success());
    let all: BTreeSet<String> = first.into_iter().chain(second).collect();
    assert_eq!(all.len(), MESSAGES, "every message processed at least once");
    rt.block_on(broker.shutdown()).unwrap();
}
