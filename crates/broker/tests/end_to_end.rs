//! A broker on a free loopback port, a producer and a consumer over TCP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lasthop_broker::client::{
    self, AckMode, ConsumerConfig, Message, ProcessOutcome, Producer, ProducerConfig,
};
use lasthop_broker::protocol::{Request, Response, SendStatus};
use lasthop_broker::{BrokerConfig, FlushDiskType, server};
use tokio::sync::watch;

fn config(dir: &std::path::Path, flush: FlushDiskType) -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        store_path_root_dir: dir.to_owned(),
        flush_disk_type: flush,
        flush_interval_commit_log: 50,
        max_message_size: 1024,
        ..BrokerConfig::default()
    }
}

fn order(i: u32) -> Message {
    Message {
        topic: "order_paid".into(),
        keys: vec![format!("ORDER_{i}")],
        body: format!("paid {i}").into_bytes(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_messages_are_consumed_once_and_offsets_committed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = server::start(config(dir.path(), FlushDiskType::SyncFlush))
        .await
        .unwrap();
    let addr = broker.addr.to_string();
    let producer = Producer::new(ProducerConfig::new(addr.clone()));
    let mut ids = Vec::new();
    for i in 0..40 {
        let r = producer.send(order(i)).await.unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(r.broker, "broker-a");
        ids.push(r.msg_id);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop) = watch::channel(false);
    let handler_seen = seen.clone();
    let handler: client::Handler = Arc::new(move |m| {
        handler_seen.lock().unwrap().push(m.msg_id.clone());
        ProcessOutcome::Ok
    });
    let consumer = tokio::spawn(client::consumer::run(
        ConsumerConfig::new(addr.clone(), "red-packet", "order_paid"),
        handler,
        stop,
    ));
    wait_until(|| seen.lock().unwrap().len() >= 40).await;
    stop_tx.send(true).unwrap();
    assert_eq!(consumer.await.unwrap().unwrap(), 40);
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "each message once");

    // The group's progress: committed offsets reached every queue's end.
    let conn = client::Connection::connect(&addr, Duration::from_secs(1))
        .await
        .unwrap();
    let progress = conn
        .request(
            &Request::GroupProgress {
                group: "red-packet".into(),
                topic: "order_paid".into(),
            },
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    let Response::Progress(queues) = progress else {
        panic!("{progress:?}")
    };
    assert_eq!(queues.iter().map(|q| q.broker_offset).sum::<u64>(), 40);
    assert!(
        queues
            .iter()
            .all(|q| q.consumer_offset == Some(q.broker_offset)),
        "{queues:?}"
    );
    let found = conn
        .request(
            &Request::FindMessages {
                msg_id: None,
                key: Some("ORDER_7".into()),
            },
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    let Response::Messages(found) = found else {
        panic!()
    };
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body, b"paid 7");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_process_retries_a_failed_message_and_on_receive_skips_it() {
    for (ack, expect_retried) in [(AckMode::AfterProcess, true), (AckMode::OnReceive, false)] {
        let dir = tempfile::tempdir().unwrap();
        let broker = server::start(BrokerConfig {
            default_topic_queue_nums: 1,
            message_delay_level: "10ms".into(),
            ..config(dir.path(), FlushDiskType::AsyncFlush)
        })
        .await
        .unwrap();
        let addr = broker.addr.to_string();
        let producer = Producer::new(ProducerConfig::new(addr.clone()));
        for i in 0..3 {
            producer.send(order(i)).await.unwrap();
        }
        // The second message fails the first time it is processed.
        let attempts = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(Mutex::new(Vec::new()));
        let (a, o) = (attempts.clone(), ok.clone());
        let handler: client::Handler = Arc::new(move |m| {
            if m.keys[0] == "ORDER_1" && a.fetch_add(1, Ordering::SeqCst) == 0 {
                return ProcessOutcome::Failed("RedPacketServiceUnavailable".into());
            }
            o.lock().unwrap().push(m.keys[0].clone());
            ProcessOutcome::Ok
        });
        let mut cfg = ConsumerConfig::new(addr.clone(), "red-packet", "order_paid");
        cfg.ack = ack;
        cfg.retry_delay = Duration::from_millis(10);
        let (stop_tx, stop) = watch::channel(false);
        let consumer = tokio::spawn(client::consumer::run(cfg, handler, stop));
        let want = if expect_retried { 3 } else { 2 };
        wait_until(|| ok.lock().unwrap().len() >= want).await;
        // Give a wrong retry the chance to show up before stopping.
        wait_committed(&addr, 3).await;
        stop_tx.send(true).unwrap();
        consumer.await.unwrap().unwrap();
        let ok = ok.lock().unwrap().clone();
        assert_eq!(
            ok.contains(&"ORDER_1".to_string()),
            expect_retried,
            "{ack:?}: {ok:?}"
        );
        broker.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_with_a_clear_status() {
    let dir = tempfile::tempdir().unwrap();
    let broker = server::start(config(dir.path(), FlushDiskType::AsyncFlush))
        .await
        .unwrap();
    let producer = Producer::new(ProducerConfig {
        retries: 0,
        ..ProducerConfig::new(broker.addr.to_string())
    });
    let err = producer
        .send(Message {
            topic: "t".into(),
            body: vec![0; 2048],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeds maxMessageSize 1024"),
        "{err}"
    );
    assert!(
        producer.send(order(1)).await.is_ok(),
        "the connection keeps serving"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reconnects_to_a_restarted_broker_and_goes_on_from_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), FlushDiskType::SyncFlush);
    config.default_topic_queue_nums = 1;
    let broker = server::start(config.clone()).await.unwrap();
    let addr = broker.addr.to_string();
    let send = |keys: std::ops::Range<u32>| {
        let addr = addr.clone();
        async move {
            let producer = Producer::new(ProducerConfig::new(addr));
            for i in keys {
                producer.send(order(i)).await.unwrap();
            }
        }
    };
    send(0..2).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler_seen = seen.clone();
    let handler: client::Handler = Arc::new(move |m| {
        handler_seen.lock().unwrap().push(m.keys[0].clone());
        ProcessOutcome::Ok
    });
    let (stop_tx, stop) = watch::channel(false);
    let mut consumer_config = ConsumerConfig::new(addr.clone(), "red-packet", "order_paid");
    consumer_config.poll_wait = Duration::from_millis(50);
    let consumer = tokio::spawn(client::consumer::run(consumer_config, handler, stop));
    wait_committed(&addr, 2).await;

    // The broker goes away and comes back on the same port and store.
    broker.shutdown().await.unwrap();
    config.listen_port = addr.rsplit(':').next().unwrap().parse().unwrap();
    let broker = server::start(config).await.unwrap();
    send(2..4).await;
    wait_until(|| seen.lock().unwrap().len() >= 4).await;
    stop_tx.send(true).unwrap();
    assert_eq!(consumer.await.unwrap().unwrap(), 4);
    assert_eq!(
        *seen.lock().unwrap(),
        ["ORDER_0", "ORDER_1", "ORDER_2", "ORDER_3"],
        "each once, in order"
    );
    broker.shutdown().await.unwrap();
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until group `red-packet` has committed `offset` on queue 0 of `order_paid`.
async fn wait_committed(addr: &str, offset: u64) {
    let conn = client::Connection::connect(addr, Duration::from_secs(1))
        .await
        .unwrap();
    let q = Request::QueryOffset {
        group: "red-packet".into(),
        topic: "order_paid".into(),
        queue_id: 0,
    };
    wait_until_async(|| async {
        conn.request(&q, Duration::from_secs(1)).await.unwrap() == Response::Offset(Some(offset))
    })
    .await;
}

async fn wait_until_async<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
