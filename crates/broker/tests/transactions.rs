//! Each branch of the half-message protocol, with faults injected by a
//! frame-aware proxy between the producer and the broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lasthop_broker::client::{
    CheckListener, Connection, Message, ProducerConfig, TransactionProducer,
};
use lasthop_broker::fault_proxy::{Fault, FaultProxy, RequestKind};
use lasthop_broker::protocol::{Request, Response, TxState, WireMessage};
use lasthop_broker::{BrokerConfig, RunningBroker, server};

struct Setup {
    broker: RunningBroker,
    proxy: FaultProxy,
    /// The application's own record of its transactions: what check-backs read.
    local: Arc<Mutex<HashMap<String, TxState>>>,
    checks: Arc<AtomicU32>,
    producer: TransactionProducer,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with(15).await
}

async fn setup_with(check_max: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let broker = server::start(BrokerConfig {
        listen_port: 0,
        store_path_root_dir: dir.path().to_owned(),
        default_topic_queue_nums: 1,
        transaction_time_out: 200,
        transaction_check_interval: 50,
        transaction_check_max: check_max,
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let proxy = FaultProxy::start(broker.addr).await.unwrap();
    let local: Arc<Mutex<HashMap<String, TxState>>> = Arc::default();
    let checks = Arc::new(AtomicU32::new(0));
    let (l, c) = (local.clone(), checks.clone());
    let listener: CheckListener = Arc::new(move |check| {
        c.fetch_add(1, Ordering::SeqCst);
        // No record of the transaction: it never ran here, so it did not happen.
        l.lock()
            .unwrap()
            .get(&check.tx_id)
            .copied()
            .unwrap_or(TxState::Rollback)
    });
    let config = ProducerConfig {
        retries: 0,
        timeout: Duration::from_millis(500),
        group: "order-tx".into(),
        ..ProducerConfig::new(proxy.addr.to_string())
    };
    let producer = TransactionProducer::start(config, listener);
    Setup {
        broker,
        proxy,
        local,
        checks,
        producer,
        _dir: dir,
    }
}

fn order(key: &str) -> Message {
    Message {
        topic: "order_paid".into(),
        keys: vec![key.into()],
        body: b"paid".to_vec(),
        ..Default::default()
    }
}

async fn request(addr: &str, r: Request) -> Response {
    let c = Connection::connect(addr, Duration::from_secs(2))
        .await
        .unwrap();
    c.request(&r, Duration::from_secs(2)).await.unwrap()
}

/// What a consumer of the real topic can see.
async fn visible(addr: &str) -> Vec<WireMessage> {
    let pull = Request::Pull {
        group: "red-packet".into(),
        topic: "order_paid".into(),
        queue_id: 0,
        offset: 0,
        max: 100,
        wait_ms: 0,
    };
    match request(addr, pull).await {
        Response::Pulled { messages, .. } => messages,
        other => panic!("{other:?}"),
    }
}

/// The half message's commit-log offset, found by message id.
async fn half_offset(addr: &str, msg_id: &str) -> u64 {
    let Response::Messages(found) = request(
        addr,
        Request::FindMessages {
            msg_id: Some(msg_id.into()),
            key: None,
        },
    )
    .await
    else {
        panic!()
    };
    found
        .iter()
        .find(|m| m.topic == "RMQ_SYS_TRANS_HALF_TOPIC")
        .expect("a half message")
        .commitlog_offset
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_that_cannot_be_written_never_runs_the_local_transaction() {
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = free.local_addr().unwrap().to_string();
    drop(free);
    let producer = TransactionProducer::start(
        ProducerConfig {
            retries: 1,
            timeout: Duration::from_millis(300),
            ..ProducerConfig::new(nowhere)
        },
        Arc::new(|_| TxState::Rollback),
    );
    let ran = AtomicBool::new(false);
    let result = producer.send(order("ORDER_1"), |_| {
        ran.store(true, Ordering::SeqCst);
        TxState::Commit
    });
    let err = result.await.unwrap_err();
    assert_eq!(err.attempts, 2);
    assert!(
        !ran.load(Ordering::SeqCst),
        "the local transaction must not run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_local_transaction_rolls_back_and_nothing_becomes_visible() {
    let s = setup().await;
    let addr = s.broker.addr.to_string();
    let outcome = s
        .producer
        .send(order("ORDER_2"), |_| TxState::Rollback)
        .await
        .unwrap();
    assert_eq!(
        (outcome.state, outcome.end_delivered),
        (TxState::Rollback, true)
    );
    assert!(visible(&addr).await.is_empty());
    // Ended: a late commit cannot resurrect it.
    let again = request(
        &addr,
        Request::EndTransaction {
            group: "order-tx".into(),
            tx_id: outcome.half.msg_id.clone(),
            msg_id: outcome.half.msg_id.clone(),
            half_offset: outcome.half.commitlog_offset,
            state: TxState::Commit,
            from_check: false,
        },
    )
    .await;
    assert_eq!(
        again,
        Response::TxEnded {
            state: TxState::Rollback,
            already: true
        }
    );
    assert!(visible(&addr).await.is_empty());
    assert_eq!(
        s.checks.load(Ordering::SeqCst),
        0,
        "a resolved half is never checked back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_half_response_is_rolled_back_by_the_check_back() {
    let s = setup().await;
    let addr = s.broker.addr.to_string();
    s.proxy.inject(Fault::DropResponse(RequestKind::SendHalf));
    let ran = AtomicBool::new(false);
    let err = s
        .producer
        .send(order("ORDER_3"), |_| {
            ran.store(true, Ordering::SeqCst);
            TxState::Commit
        })
        .await
        .unwrap_err();
    assert!(!ran.load(Ordering::SeqCst));
    // The producer's side: it never got an answer, so the order stays unpaid.
    s.local
        .lock()
        .unwrap()
        .insert(err.msg_id.clone(), TxState::Rollback);
    let half = half_offset(&addr, &err.msg_id).await;
    eventually("the check-back", async || {
        (s.checks.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    let settled = eventually("the rollback", async || {
        let end = Request::EndTransaction {
            group: "order-tx".into(),
            tx_id: err.msg_id.clone(),
            msg_id: err.msg_id.clone(),
            half_offset: half,
            state: TxState::Unknown,
            from_check: false,
        };
        match request(&addr, end).await {
            Response::TxEnded {
                state,
                already: true,
            } => Some(state),
            _ => None,
        }
    })
    .await;
    assert_eq!(settled, TxState::Rollback);
    assert!(visible(&addr).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_is_committed_by_the_check_back_exactly_once() {
    let s = setup().await;
    let addr = s.broker.addr.to_string();
    s.proxy
        .inject(Fault::DropRequest(RequestKind::EndTransaction));
    let local = s.local.clone();
    let outcome = s
        .producer
        .send(order("ORDER_4"), |msg_id| {
            local
                .lock()
                .unwrap()
                .insert(msg_id.to_owned(), TxState::Commit);
            TxState::Commit
        })
        .await
        .unwrap();
    assert_eq!(
        (outcome.state, outcome.end_delivered),
        (TxState::Commit, false)
    );
    assert_eq!(
        s.proxy.applied(),
        vec![Fault::DropRequest(RequestKind::EndTransaction)]
    );
    let seen = eventually("the committed message", async || {
        let v = visible(&addr).await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].msg_id.as_str(), seen[0].keys.as_slice()),
        (outcome.half.msg_id.as_str(), &["ORDER_4".to_string()][..])
    );
    assert!(s.checks.load(Ordering::SeqCst) >= 1);
    // A second answer to the same transaction changes nothing.
    let again = request(
        &addr,
        Request::EndTransaction {
            group: "order-tx".into(),
            tx_id: outcome.half.msg_id.clone(),
            msg_id: outcome.half.msg_id.clone(),
            half_offset: outcome.half.commitlog_offset,
            state: TxState::Commit,
            from_check: true,
        },
    )
    .await;
    assert_eq!(
        again,
        Response::TxEnded {
            state: TxState::Commit,
            already: true
        }
    );
    assert_eq!(visible(&addr).await.len(), 1, "exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_stays_unknown_is_rolled_back_after_its_check_backs() {
    let s = setup_with(2).await;
    let addr = s.broker.addr.to_string();
    let outcome = s
        .producer
        .send(order("ORDER_5"), |msg_id| {
            s.local
                .lock()
                .unwrap()
                .insert(msg_id.to_owned(), TxState::Unknown);
            TxState::Unknown
        })
        .await
        .unwrap();
    assert_eq!(
        (outcome.state, outcome.end_delivered),
        (TxState::Unknown, false)
    );
    let settled = eventually("the rollback after the last check-back", async || {
        let end = Request::EndTransaction {
            group: "order-tx".into(),
            tx_id: outcome.half.msg_id.clone(),
            msg_id: outcome.half.msg_id.clone(),
            half_offset: outcome.half.commitlog_offset,
            state: TxState::Unknown,
            from_check: false,
        };
        match request(&addr, end).await {
            Response::TxEnded {
                state,
                already: true,
            } => Some(state),
            _ => None,
        }
    })
    .await;
    assert_eq!(settled, TxState::Rollback);
    assert_eq!(
        s.checks.load(Ordering::SeqCst),
        2,
        "exactly transactionCheckMax check-backs"
    );
    assert!(visible(&addr).await.is_empty());
}
