//! The spans of a transaction and of a poison message reach a collector over
//! OTLP, carry DESIGN's attributes and join each message's trace.
//! (Its own test binary: it installs the process-wide tracing pipeline.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lasthop_broker::client::{
    self, ConsumerConfig, Message, ProcessOutcome, ProducerConfig, TransactionProducer,
};
use lasthop_broker::protocol::TxState;
use lasthop_broker::{BrokerConfig, server};
use lasthop_collector::{CollectorConfig, Pipeline};
use lasthop_telemetry as telemetry;
use lasthop_vocab::{Hop, SpanRecord};
use tokio::sync::watch;

fn spans_of(pipeline: &Pipeline, key: &str) -> Vec<SpanRecord> {
    pipeline.store().by_key(key).unwrap()
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn transaction_and_retry_spans_join_the_message_trace() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let mut config = CollectorConfig::ephemeral(dir.path().join("collector"));
        config.pipeline.commit_interval = Duration::from_millis(100);
        let collector = lasthop_collector::server::start(config).await.unwrap();
        let otlp = format!("http://{}", collector.grpc_addr);
        let telemetry = telemetry::init("lasthop-test", Some(&otlp), "error").unwrap();
        let broker = server::start(BrokerConfig {
            listen_port: 0,
            store_path_root_dir: dir.path().join("broker"),
            default_topic_queue_nums: 1,
            message_delay_level: "10ms 10ms 10ms".into(),
            max_reconsume_times: 2,
            ..BrokerConfig::default()
        })
        .await
        .unwrap();
        let addr = broker.addr.to_string();

        let producer = TransactionProducer::start(
            ProducerConfig::new(addr.clone()),
            Arc::new(|_| TxState::Commit),
        );
        let message = |key: &str| Message {
            topic: "order_paid".into(),
            keys: vec![key.into()],
            body: b"paid".to_vec(),
            ..Default::default()
        };
        producer
            .send(message("ORDER_TX"), |_| TxState::Commit)
            .await
            .unwrap();
        producer
            .send(message("ORDER_POISON"), |_| TxState::Commit)
            .await
            .unwrap();
        // Sent before the consumer starts, so one pull delivers them together.
        for key in ["ORDER_SLOW_1", "ORDER_SLOW_2"] {
            producer
                .send(message(key), |_| TxState::Commit)
                .await
                .unwrap();
        }

        let handler: client::Handler = Arc::new(|m| {
            if m.keys[0] == "ORDER_POISON" {
                ProcessOutcome::Failed("JsonParseError".into())
            } else if m.keys[0].starts_with("ORDER_SLOW") {
                std::thread::sleep(Duration::from_millis(50)); // the work of a slow handler
                ProcessOutcome::Ok
            } else {
                ProcessOutcome::Ok
            }
        });
        let (stop_tx, stop) = watch::channel(false);
        let consumer = tokio::spawn(client::consumer::run(
            ConsumerConfig::new(addr.clone(), "red-packet", "order_paid"),
            handler,
            stop,
        ));

        let pipeline = collector.pipeline().clone();
        let hops = |key: &str| {
            spans_of(&pipeline, key)
                .into_iter()
                .filter_map(|s| s.hop)
                .collect::<Vec<Hop>>()
        };
        eventually("the dead-letter span", || {
            hops("ORDER_POISON").contains(&Hop::Dlq).then_some(())
        })
        .await;
        eventually("the transaction's process span", || {
            hops("ORDER_TX").contains(&Hop::Process).then_some(())
        })
        .await;
        eventually("the slow messages' process spans", || {
            hops("ORDER_SLOW_2").contains(&Hop::Process).then_some(())
        })
        .await;
        stop_tx.send(true).unwrap();
        consumer.await.unwrap().unwrap();

        let tx = spans_of(&pipeline, "ORDER_TX");
        let count =
            |spans: &[SpanRecord], hop: Hop| spans.iter().filter(|s| s.hop == Some(hop)).count();
        assert_eq!(count(&tx, Hop::TxPrepare), 2, "producer and broker");
        assert_eq!(count(&tx, Hop::TxEnd), 2, "producer and broker");
        assert_eq!(count(&tx, Hop::Store), 1, "the committed message");
        let broker_end = tx
            .iter()
            .find(|s| s.hop == Some(Hop::TxEnd) && s.broker.is_some())
            .unwrap();
        assert_eq!(
            broker_end.attr("lasthop.tx.state").and_then(|v| v.as_str()),
            Some("commit")
        );
        assert_eq!(
            broker_end
                .attr("lasthop.tx.from_check")
                .and_then(|v| v.as_bool()),
            Some(false)
        );
        assert!(broker_end.attr("lasthop.tx.id").is_some());
        let traces: BTreeSet<&str> = tx.iter().map(|s| s.trace_id.as_str()).collect();
        assert_eq!(
            traces.len(),
            1,
            "one trace from tx.prepare to process: {traces:?}"
        );

        let poison = spans_of(&pipeline, "ORDER_POISON");
        let mut retries: Vec<u64> = poison
            .iter()
            .filter(|s| s.hop == Some(Hop::Retry))
            .filter_map(|s| s.attr("lasthop.reconsume.count").and_then(|v| v.as_u64()))
            .collect();
        retries.sort();
        assert_eq!(retries, vec![1, 2], "retried twice");
        let dlq = poison.iter().find(|s| s.hop == Some(Hop::Dlq)).unwrap();
        assert_eq!(dlq.group.as_deref(), Some("red-packet"));
        assert_eq!(
            dlq.attr("lasthop.target.topic").and_then(|v| v.as_str()),
            Some("%DLQ%red-packet")
        );
        let failed = poison
            .iter()
            .filter(|s| {
                s.hop == Some(Hop::Process) && s.error_type.as_deref() == Some("JsonParseError")
            })
            .count();
        assert_eq!(failed, 3, "the first delivery and two retries failed");
        let traces: BTreeSet<&str> = poison.iter().map(|s| s.trace_id.as_str()).collect();
        assert_eq!(
            traces.len(),
            1,
            "retries stay in the message's trace: {traces:?}"
        );

        // The client's `receive` is when the batch arrived: the second slow
        // message was received before the handler finished the first.
        let span = |key: &str, hop: Hop| {
            spans_of(&pipeline, key)
                .into_iter()
                .find(|s| s.hop == Some(hop) && s.group.is_some())
                .unwrap_or_else(|| panic!("no {hop:?} span of {key}"))
        };
        let first_processed = span("ORDER_SLOW_1", Hop::Process);
        let second_received = span("ORDER_SLOW_2", Hop::Receive);
        assert!(
            second_received.start_ns < first_processed.end_ns,
            "receive of the second message at {} ns, after the first was processed at {} ns",
            second_received.start_ns,
            first_processed.end_ns
        );

        // The consumer's own offset commits ("order_paid settle"; the
        // broker's are "settle") name the broker they were made on: a
        // group's offsets are per broker and queue.
        let client_settles = || {
            let spans = pipeline.store().by_time_range(0, u64::MAX, 10_000).unwrap();
            let settles: Vec<SpanRecord> = spans
                .into_iter()
                .filter(|s| s.hop == Some(Hop::Settle) && s.name == "order_paid settle")
                .collect();
            (!settles.is_empty()).then_some(settles)
        };
        let settles = eventually("the consumer's settle spans", client_settles).await;
        assert!(
            settles
                .iter()
                .all(|s| s.broker.as_deref() == Some("broker-a")),
            "{settles:?}"
        );

        drop(pipeline);
        drop(producer);
        broker.shutdown().await.unwrap();
        let report = tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .unwrap();
        assert_eq!(report.dropped + report.failed, 0, "{report}");
        collector.shutdown().await;
    });
}
