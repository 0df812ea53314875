//! Verdicts on recordings of real client libraries against a real broker:
//! pika and Celery on RabbitMQ, confluent-kafka on a Kafka-protocol broker,
//! with their unmodified OpenTelemetry instrumentation, real faults, and
//! each service's own ledger as ground
//! truth (`recordings/`, made by `recordings/record.sh`). Every message's
//! verdict is checked against what its ledger entry says the data allows:
//! from the spans alone, and from the spans with the application's log;
//! through `report --input` and through `ingest` + `query` alike.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{lasthop, succeed};

/// One recording: where it is, its span files, its log files, and the flags
/// its logs need.
struct Recording {
    dir: &'static str,
    spans: &'static [&'static str],
    logs: &'static [&'static str],
    log_pattern: Option<&'static str>,
}

const PIKA: Recording = Recording {
    dir: "recordings/rabbitmq/pika",
    spans: &["spans.otlp.jsonl"],
    logs: &["red-packet.log"],
    log_pattern: None,
};

const CELERY: Recording = Recording {
    dir: "recordings/celery/run",
    spans: &["spans.otlp.jsonl"],
    logs: &["worker.log"],
    log_pattern: Some("recordings/celery/worker-log.pattern"),
};

/// confluent-kafka on tansu (a Kafka-protocol broker): the spans alone (the
/// service's log names ids and keys the spans do not carry).
const KAFKA: Recording = Recording {
    dir: "recordings/kafka/confluent",
    spans: &["spans.otlp.jsonl"],
    logs: &[],
    log_pattern: None,
};

/// RocketMQ message traces as its Java client encodes them (no broker of
/// RocketMQ's runs here): producer and consumer records in separate files.
const ROCKETMQ: Recording = Recording {
    dir: "recordings/rocketmq/traces",
    spans: &["producer.trace", "consumer.trace"],
    logs: &["red-packet.log"],
    log_pattern: None,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the ledger says of each order: message id, expected verdict and cause.
struct Expected {
    order: String,
    message_id: String,
    verdict: String,
    cause: Option<String>,
}

impl Recording {
    fn ledger(&self) -> Value {
        let path = repo().join(self.dir).join("ledger.json");
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    fn grace(&self) -> String {
        self.ledger()["grace_seconds"].as_u64().unwrap().to_string()
    }

    /// The expected verdicts, with the application's log or without it.
    fn expected(&self, with_logs: bool) -> Vec<Expected> {
        let key = if with_logs {
            "expected"
        } else {
            "expected_spans_only"
        };
        let ledger = self.ledger();
        let orders = ledger["orders"].as_object().unwrap();
        let mut out: Vec<Expected> = orders
            .iter()
            .map(|(order, e)| Expected {
                order: order.clone(),
                message_id: e["message_id"].as_str().unwrap().to_owned(),
                verdict: e[key].as_str().unwrap().to_owned(),
                // The cause is that of the verdict with the log; without it only where the verdict agrees.
                cause: (e["expected"] == e[key])
                    .then(|| e["expected_cause"].as_str().map(str::to_owned))
                    .flatten(),
            })
            .collect();
        out.sort_by(|a, b| a.order.cmp(&b.order));
        out
    }

    fn files(&self, with_logs: bool) -> Vec<PathBuf> {
        let names = self
            .spans
            .iter()
            .chain(if with_logs { self.logs } else { &[] });
        names.map(|f| repo().join(self.dir).join(f)).collect()
    }

    /// `--log-pattern` and its pattern, when the logs need one.
    fn reading_flags(&self) -> Vec<String> {
        self.log_pattern.map_or_else(Vec::new, |p| {
            let pattern = std::fs::read_to_string(repo().join(p)).unwrap();
            vec!["--log-pattern".into(), pattern.trim_end().to_owned()]
        })
    }
}

/// `report --input` over the files: the lost messages' (verdict, cause) by
/// message id, and the verdict counts.
fn report(rec: &Recording, with_logs: bool) -> (BTreeMap<String, (String, Option<String>)>, Value) {
    let out = succeed(
        lasthop()
            .args(["report", "--format", "json", "--grace", &rec.grace()])
            .args(rec.reading_flags())
            .arg("--input")
            .args(rec.files(with_logs)),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lost = report["lost_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let cause = m["cause"].as_str().map(str::to_owned);
            let id = m["message_id"].as_str().unwrap().to_owned();
            (id, (m["verdict"].as_str().unwrap().to_owned(), cause))
        })
        .collect();
    (lost, report["totals"]["by_verdict"].clone())
}

/// `ingest` into a store, then `query --msg-id` for each message: its one verdict.
fn query_all(rec: &Recording, with_logs: bool) -> BTreeMap<String, (String, Option<String>)> {
    let dir = tempfile::tempdir().unwrap();
    succeed(
        lasthop()
            .arg("ingest")
            .arg("--data")
            .arg(dir.path())
            .args(rec.reading_flags())
            .args(rec.files(with_logs)),
    );
    let mut verdicts = BTreeMap::new();
    for e in rec.expected(with_logs) {
        let out = succeed(
            lasthop()
                .args(["query", "--format", "json", "--grace", &rec.grace()])
                .arg("--data")
                .arg(dir.path())
                .args(["--msg-id", &e.message_id]),
        );
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            answer["judged_at_from"], "the newest span",
            "history's own now"
        );
        let found = answer["messages"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{}: {answer}", e.order);
        let v = found[0]["verdicts"].as_array().unwrap();
        assert_eq!(v.len(), 1, "{}: one consumer group: {answer}", e.order);
        let cause = v[0]["cause"].as_str().map(str::to_owned);
        let verdict = v[0]["verdict"].as_str().unwrap().to_owned();
        verdicts.insert(e.message_id.clone(), (verdict, cause));
    }
    verdicts
}

fn is_loss(verdict: &str) -> bool {
    verdict.starts_with("lost_")
}

/// Every message gets the verdict its ledger entry expects, through both
/// paths, and the report counts them the same.
fn check(rec: &Recording, with_logs: bool) {
    let expected = rec.expected(with_logs);
    let queried = query_all(rec, with_logs);
    let (lost, counts) = report(rec, with_logs);
    let mut wrong = Vec::new();
    let mut by_verdict: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &expected {
        *by_verdict.entry(e.verdict.as_str()).or_default() += 1;
        let (verdict, cause) = &queried[&e.message_id];
        if *verdict != e.verdict || (e.cause.is_some() && *cause != e.cause) {
            wrong.push(format!(
                "{} ({}): expected {} {:?}, query says {verdict} {cause:?}",
                e.order, e.message_id, e.verdict, e.cause
            ));
        }
        let reported = lost.get(&e.message_id);
        if is_loss(&e.verdict) != reported.is_some()
            || reported.is_some_and(|r| r != &(verdict.clone(), cause.clone()))
        {
            wrong.push(format!(
                "{}: report --input says {reported:?}, query says {verdict} {cause:?}",
                e.order
            ));
        }
    }
    assert!(wrong.is_empty(), "{}:\n{}", rec.dir, wrong.join("\n"));
    for (verdict, n) in by_verdict {
        assert_eq!(
            counts[verdict], n,
            "{}: count of {verdict}: {counts}",
            rec.dir
        );
    }
}

#[test]
fn pika_spans_alone() {
    check(&PIKA, false);
}

#[test]
fn pika_spans_with_the_red_packet_services_log() {
    check(&PIKA, true);
}

#[test]
fn celery_spans_alone() {
    check(&CELERY, false);
}

#[test]
fn celery_spans_with_the_workers_log() {
    check(&CELERY, true);
}

#[test]
fn confluent_kafka_spans() {
    check(&KAFKA, false);
    check(&KAFKA, true);
}

#[test]
fn rocketmq_trace_records_alone() {
    check(&ROCKETMQ, false);
}

#[test]
fn rocketmq_trace_records_with_the_red_packet_services_log() {
    check(&ROCKETMQ, true);
}

#[test]
fn the_recordings_hold_real_losses_at_every_hop_they_cover() {
    // The fixtures must keep testing something: losses at the producer, in
    // transit and at the consumer, and messages that arrived.
    let mut verdicts: Vec<String> = [&PIKA, &CELERY, &KAFKA, &ROCKETMQ]
        .iter()
        .flat_map(|r| r.expected(true))
        .map(|e| e.verdict)
        .collect();
    verdicts.sort();
    verdicts.dedup();
    for v in [
        "delivered",
        "lost_at_send",
        "lost_in_transit",
        "lost_at_consumer",
        "dead_lettered",
        "rolled_back",
        "half_pending",
    ] {
        assert!(verdicts.iter().any(|x| x == v), "no {v} in {verdicts:?}");
    }
}
