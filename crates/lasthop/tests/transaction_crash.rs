//! The broker dies between the half message and the commit: after it
//! restarts, the check-back (with the producer reconnected) commits the
//! transaction and the message becomes visible exactly once.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lasthop_broker::client::{
    CheckListener, Connection, Message, ProducerConfig, TransactionProducer,
};
use lasthop_broker::protocol::{Request, Response, TxState};
use support::BrokerProcess;

#[test]
fn a_commit_lost_with_the_broker_is_completed_by_the_check_back_after_restart() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "defaultTopicQueueNums = 1\ntransactionTimeOut = 200\ntransactionCheckInterval = 50\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let store = dir.path().join("store");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--listen",
        listen.as_str(),
        "--flush",
        "sync",
    ];
    let broker = BrokerProcess::start(&store, &args);

    let local: Arc<Mutex<HashMap<String, TxState>>> = Arc::default();
    let l = local.clone();
    let listener: CheckListener = Arc::new(move |check| {
        l.lock()
            .unwrap()
            .get(&check.tx_id)
            .copied()
            .unwrap_or(TxState::Unknown)
    });
    let outcome = rt.block_on(async {
        let producer = TransactionProducer::start(
            ProducerConfig {
                retries: 0,
                timeout: Duration::from_millis(500),
                group: "order-tx".into(),
                ..ProducerConfig::new(listen.clone())
            },
            listener,
        );
        let message = Message {
            topic: "order_paid".into(),
            keys: vec!["ORDER_9".into()],
            body: b"paid".to_vec(),
            ..Default::default()
        };
        let local = local.clone();
        let outcome = producer
            .send(message, move |msg_id| {
                // The order is paid locally; the broker dies before the commit reaches it.
                local
                    .lock()
                    .unwrap()
                    .insert(msg_id.to_owned(), TxState::Commit);
                broker.kill9();
                TxState::Commit
            })
            .await
            .unwrap();
        (outcome, producer)
    });
    let (outcome, producer) = outcome;
    assert!(!outcome.end_delivered, "the commit could not be delivered");

    let broker = BrokerProcess::start(&store, &args);
    assert!(
        broker.banner.contains("previous run ended: crash"),
        "{}",
        broker.banner
    );
    let seen = support::eventually("the committed message after restart", || {
        rt.block_on(async {
            let c = Connection::connect(&listen, Duration::from_secs(2))
                .await
                .ok()?;
            let pull = Request::Pull {
                group: "red-packet".into(),
                topic: "order_paid".into(),
                queue_id: 0,
                offset: 0,
                max: 10,
                wait_ms: 0,
            };
            match c.request(&pull, Duration::from_secs(2)).await.ok()? {
                Response::Pulled { messages, .. } if !messages.is_empty() => Some(messages),
                _ => None,
            }
        })
    });
    assert_eq!(seen.len(), 1, "exactly once");
    assert_eq!(seen[0].msg_id, outcome.half.msg_id);
    drop(producer);
    broker.terminate();
}
