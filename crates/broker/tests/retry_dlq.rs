//! A poison message: retried with growing delays, dead-lettered after
//! `maxReconsumeTimes`, resent from the dead-letter queue and then consumed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lasthop_broker::client::{
    self, Connection, ConsumerConfig, Message, ProcessOutcome, Producer, ProducerConfig,
};
use lasthop_broker::protocol::{Request, Response};
use lasthop_broker::{BrokerConfig, server};
use tokio::sync::watch;

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
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_retried_with_growing_delays_then_dead_lettered_and_resent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = server::start(BrokerConfig {
        listen_port: 0,
        store_path_root_dir: dir.path().to_owned(),
        default_topic_queue_nums: 1,
        message_delay_level: "10ms 20ms 40ms 80ms 160ms".into(),
        max_reconsume_times: 3,
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let addr = broker.addr.to_string();
    let producer = Producer::new(ProducerConfig::new(addr.clone()));
    let poison = producer
        .send(Message {
            topic: "order_paid".into(),
            keys: vec!["ORDER_POISON".into()],
            body: b"{bad json".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Every delivery of the poison message: when, and its reconsume count.
    let deliveries = Arc::new(Mutex::new(Vec::<(Instant, u32)>::new()));
    let healed = Arc::new(AtomicBool::new(false));
    let (d, h) = (deliveries.clone(), healed.clone());
    let handler: client::Handler = Arc::new(move |m| {
        d.lock().unwrap().push((Instant::now(), m.reconsume_times));
        if h.load(Ordering::SeqCst) {
            ProcessOutcome::Ok
        } else {
            ProcessOutcome::Failed("JsonParseError".into())
        }
    });
    let (stop_tx, stop) = watch::channel(false);
    let consumer = tokio::spawn(client::consumer::run(
        ConsumerConfig::new(addr.clone(), "red-packet", "order_paid"),
        handler,
        stop,
    ));

    let conn = Connection::connect(&addr, Duration::from_secs(2))
        .await
        .unwrap();
    let t = Duration::from_secs(2);
    let dead = eventually("the dead-letter queue", async || {
        match conn
            .request(
                &Request::ListDeadLetters {
                    group: "red-packet".into(),
                },
                t,
            )
            .await
            .unwrap()
        {
            Response::Messages(m) if !m.is_empty() => Some(m),
            _ => None,
        }
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].msg_id.as_str(), dead[0].reconsume_times),
        (poison.msg_id.as_str(), 4)
    );
    assert_eq!(
        dead[0].keys,
        vec!["ORDER_POISON"],
        "keys and id survive every move"
    );

    let seen = deliveries.lock().unwrap().clone();
    let counts: Vec<u32> = seen.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        counts,
        vec![0, 1, 2, 3],
        "the first delivery and three retries"
    );
    // Retry n waits for delay level n + 2: 40 ms, 80 ms, 160 ms.
    for (i, min) in [40u64, 80, 160].into_iter().enumerate() {
        let gap = seen[i + 1].0 - seen[i].0;
        assert!(
            gap >= Duration::from_millis(min),
            "retry {} came after {gap:?}, before its {min} ms delay",
            i + 1
        );
    }

    healed.store(true, Ordering::SeqCst);
    let resent = conn
        .request(
            &Request::ResendDeadLetter {
                group: "red-packet".into(),
                msg_id: poison.msg_id.clone(),
            },
            t,
        )
        .await
        .unwrap();
    assert!(
        matches!(
            resent,
            Response::SentBack {
                reconsume_times: 0,
                ..
            }
        ),
        "{resent:?}"
    );
    eventually("the resent message to be consumed", async || {
        (deliveries.lock().unwrap().len() == 5).then_some(())
    })
    .await;
    stop_tx.send(true).unwrap();
    assert_eq!(
        consumer.await.unwrap().unwrap(),
        1,
        "processed once, after the resend"
    );
    let refused = conn
        .request(
            &Request::Pull {
                group: "x".into(),
                topic: "SCHEDULE_TOPIC_XXXX".into(),
                queue_id: 0,
                offset: 0,
                max: 1,
                wait_ms: 0,
            },
            t,
        )
        .await;
    assert!(refused.is_err(), "internal topics are not for consumers");
    broker.shutdown().await.unwrap();
}
