//! The live judge against recordings of real client libraries'
//! instrumentation: spans fed in the order they were made, on a clock that
//! follows them, settle with the verdicts `report` gives the same spans,
//! and each loss the ledger holds is settled as that loss. A late span
//! that changes a settled verdict comes back as a change, not silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lasthop_analyzer::live::{LiveOptions, LiveState, SettleReason, Settled};
use lasthop_analyzer::{Evidence, Options, Verdict, analyze};
use lasthop_collector::ingest::read_file;
use lasthop_vocab::{Hop, SpanRecord, StatusCode};
use serde_json::Value;

const S: u64 = 1_000_000_000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Recording {
    spans: Vec<SpanRecord>,
    ledger: Value,
    grace: Duration,
}

fn load(dir: &str, files: &[&str]) -> Recording {
    let dir = repo().join(dir);
    let ledger: Value =
        serde_json::from_slice(&std::fs::read(dir.join("ledger.json")).unwrap()).unwrap();
    let mut spans = Vec::new();
    for f in files {
        read_file(&dir.join(f), None, &Default::default(), |r| spans.extend(r)).unwrap();
    }
    spans.sort_by_key(|s| s.start_ns);
    let grace = Duration::from_secs(ledger["grace_seconds"].as_u64().unwrap());
    Recording {
        spans,
        ledger,
        grace,
    }
}

type Verdicts = BTreeMap<(String, Option<String>), Verdict>;

fn verdicts_of(settled: &[Settled]) -> Verdicts {
    settled
        .iter()
        .flat_map(|s| {
            s.message
                .verdicts
                .iter()
                .map(|v| ((s.message.message_id.clone(), v.group.clone()), v.verdict))
        })
        .collect()
}

/// Feeds the spans in the order they started, each at its own start time
/// plus `delay` (as a collector hears them), judging as it goes, then lets
/// the clock run until nothing is open.
fn replay(state: &mut LiveState, spans: &[SpanRecord], delay: u64) -> (Vec<Settled>, u64) {
    let mut settled = Vec::new();
    let none = |_: &str| Vec::new();
    let mut now = 0;
    for chunk in spans.chunk_by(|a, b| b.start_ns - a.start_ns < S / 10) {
        now = chunk.last().unwrap().start_ns + delay;
        state.observe(chunk.to_vec(), now);
        settled.extend(state.judge_due(now, &none));
    }
    for _ in 0..10_000 {
        if state.open_messages() == 0 {
            break;
        }
        now = state.next_due().unwrap_or(now).max(now);
        settled.extend(state.judge_due(now, &none));
    }
    (settled, now)
}

fn check(dir: &str, files: &[&str]) {
    let rec = load(dir, files);
    let mut state = LiveState::new(LiveOptions::with_grace(rec.grace));
    let (settled, end) = replay(&mut state, &rec.spans, S / 100);
    assert_eq!(state.open_messages(), 0, "{dir}: messages left open");
    let live = verdicts_of(&settled);
    // The shortcut for plainly delivered messages changes no verdict.
    let mut by_rules = LiveState::new(LiveOptions {
        read_all: true,
        ..LiveOptions::with_grace(rec.grace)
    });
    let (all_by_rules, _) = replay(&mut by_rules, &rec.spans, S / 100);
    assert_eq!(
        verdicts_of(&all_by_rules),
        live,
        "{dir}: --read-all differs"
    );
    // Losses settle once quiet for the grace period, deliveries at once.
    for s in &settled {
        let v = &s.message.verdicts;
        if v.iter().any(|v| v.verdict.is_lost()) {
            assert_eq!(s.reason, SettleReason::Grace, "{dir}: {v:?}");
        } else if v.iter().all(|v| v.verdict == Verdict::Delivered) {
            assert_eq!(s.reason, SettleReason::Final, "{dir}: {v:?}");
        }
    }

    // The report's verdicts over the same spans, judged when live judging ended.
    let options = Options {
        grace_ns: rec.grace.as_nanos() as u64,
        now_ns: end,
        groups: vec![],
    };
    let report: Verdicts = analyze(&Evidence::new(&rec.spans), &options)
        .into_iter()
        .flat_map(|m| {
            let id = m.message_id.clone();
            m.verdicts
                .into_iter()
                .map(move |v| ((id.clone(), v.group), v.verdict))
        })
        .collect();
    for (key, verdict) in &report {
        if verdict.is_lost() || *verdict == Verdict::Delivered {
            assert_eq!(live.get(key), Some(verdict), "{dir}: {key:?}");
        }
    }
    for (key, verdict) in &live {
        if verdict.is_lost() {
            assert_eq!(
                report.get(key),
                Some(verdict),
                "{dir}: live alone says {key:?} lost"
            );
        }
    }
    // Every loss the ledger holds, settled as that loss.
    let mut losses = 0;
    for (order, e) in rec.ledger["orders"].as_object().unwrap() {
        let expected = e["expected_spans_only"].as_str().unwrap();
        let id = e["message_id"].as_str().unwrap();
        let found: Vec<&str> = (live.iter())
            .filter(|((m, _), _)| m == id)
            .map(|(_, v)| v.as_str())
            .collect();
        if expected.starts_with("lost_") {
            losses += 1;
            assert_eq!(found, vec![expected], "{dir}: {order} ({id})");
        }
    }
    assert!(losses > 0, "{dir}: the recording holds no loss to find");
}

#[test]
fn pika_on_rabbitmq() {
    check("recordings/rabbitmq/pika", &["spans.otlp.jsonl"]);
}

#[test]
fn celery_on_rabbitmq() {
    check("recordings/celery/run", &["spans.otlp.jsonl"]);
}

#[test]
fn confluent_kafka_on_tansu() {
    check("recordings/kafka/confluent", &["spans.otlp.jsonl"]);
}

#[test]
fn rocketmq_message_traces() {
    check(
        "recordings/rocketmq/traces",
        &["producer.trace", "consumer.trace"],
    );
}

#[test]
fn a_late_successful_processing_changes_a_settled_loss_and_says_so() {
    let rec = load("recordings/rabbitmq/pika", &["spans.otlp.jsonl"]);
    let mut state = LiveState::new(LiveOptions::with_grace(rec.grace));
    let (settled, end) = replay(&mut state, &rec.spans, S / 100);
    let lost = settled
        .iter()
        .find(|s| {
            s.message
                .verdicts
                .iter()
                .any(|v| v.verdict == Verdict::LostAtConsumer)
        })
        .expect("the pika recording holds a consumer loss");
    let id = lost.message.message_id.clone();
    // The same consumer processes it again, successfully (a redelivery).
    let failed = rec
        .spans
        .iter()
        .find(|s| s.message_id.as_deref() == Some(&id) && s.hop == Some(Hop::Process))
        .expect("its processing span")
        .clone();
    let mut again = failed.clone();
    again.span_id = "00000000000000aa".into();
    again.status = StatusCode::Ok;
    again.error_type = None;
    again.start_ns = end + S;
    again.end_ns = end + S + 1000;
    let now = end + S;
    state.observe(vec![again], now);
    // Its earlier spans come back from the store.
    let store: Vec<SpanRecord> = (rec.spans.iter())
        .filter(|s| s.message_id.as_deref() == Some(&id))
        .cloned()
        .collect();
    let earlier = |m: &str| {
        assert_eq!(m, id);
        store.clone()
    };
    let mut rejudged = Vec::new();
    let mut t = now;
    while state.open_messages() > 0 {
        t = state.next_due().unwrap().max(t);
        rejudged.extend(state.judge_due(t, &earlier));
    }
    assert_eq!(rejudged.len(), 1);
    let again = &rejudged[0];
    assert_eq!(again.message.message_id, id);
    assert_eq!(again.message.verdicts[0].verdict, Verdict::Delivered);
    let previous = again.previous.as_ref().expect("the verdict it had");
    assert_eq!(previous[0].1, Verdict::LostAtConsumer);
}

#[test]
fn open_messages_stay_within_their_bound() {
    let rec = load("recordings/rabbitmq/pika", &["spans.otlp.jsonl"]);
    let options = LiveOptions {
        max_open: 3,
        ..LiveOptions::with_grace(rec.grace)
    };
    let mut state = LiveState::new(options);
    for s in &rec.spans {
        state.observe(vec![s.clone()], s.start_ns);
        assert!(state.open_messages() <= 3);
    }
    assert!(state.counters.evicted > 0);
}
