use super::*;
use crate::evidence::Globals;
use crate::facts::WindowFacts;
use lasthop_vocab::{AttrValue, Attribute, StatusCode};
use proptest::prelude::*;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_763_700_000 * S;

struct B(SpanRecord);

fn span(id: &str, hop: Hop, t: u64) -> B {
    B(SpanRecord {
        trace_id: "ab".repeat(16),
        span_id: format!("{id}-{}-{t}", hop.as_str()),
        message_id: Some(id.into()),
        hop: Some(hop),
        keys: vec![format!("ORDER_{id}")],
        topic: Some("order_paid".into()),
        start_ns: T0 + t,
        end_ns: T0 + t + 1000,
        ..Default::default()
    })
}

fn range(hop: Hop, broker: &str, epoch: u64, start: u64, end: u64, t: u64) -> B {
    B(SpanRecord {
        span_id: format!("{}-{epoch}-{end}-{t}", hop.as_str()),
        hop: Some(hop),
        broker: Some(broker.into()),
        epoch: Some(epoch),
        range_start: Some(start),
        range_end: Some(end),
        start_ns: T0 + t,
        end_ns: T0 + t + 1000,
        ..Default::default()
    })
}

impl B {
    fn at(mut self, broker: &str, epoch: u64, offset: u64, size: u64) -> B {
        self.0.broker = Some(broker.into());
        self.0.epoch = Some(epoch);
        self.0.commitlog_offset = Some(offset);
        self.0.commitlog_size = Some(size);
        self
    }
    fn queue(mut self, q: u32, qo: u64) -> B {
        self.0.queue_id = Some(q);
        self.0.queue_offset = Some(qo);
        self
    }
    fn group(mut self, g: &str) -> B {
        self.0.group = Some(g.into());
        self
    }
    fn error(mut self, e: &str) -> B {
        self.0.status = StatusCode::Error;
        self.0.error_type = Some(e.into());
        self
    }
    fn attr(mut self, k: &str, v: AttrValue) -> B {
        self.0.attributes.push(Attribute::new(k, v));
        self
    }
    fn no_message(mut self) -> B {
        self.0.message_id = None;
        self
    }
    fn s(self) -> SpanRecord {
        self.0
    }
}

fn ok_send(id: &str, t: u64, offset: u64) -> SpanRecord {
    span(id, Hop::Send, t)
        .at("broker-a", 1, offset, 0)
        .queue(0, offset / 100)
        .attr(attr::SEND_STATUS, AttrValue::Str("SEND_OK".into()))
        .s()
}

fn store(id: &str, t: u64, offset: u64, qo: u64) -> SpanRecord {
    span(id, Hop::Store, t)
        .at("broker-a", 1, offset, 100)
        .queue(0, qo)
        .s()
}

fn settle(group: &str, next: u64, epoch: u64, t: u64) -> SpanRecord {
    let mut s = span("x", Hop::Settle, t)
        .group(group)
        .no_message()
        .queue(0, next)
        .s();
    s.broker = Some("broker-a".into());
    s.epoch = Some(epoch);
    s
}

/// The broker's delivery to red-packet of queue 0's offsets `start..end` (epoch 1).
fn delivery(broker: &str, start: u64, end: u64, t: u64) -> SpanRecord {
    let mut d = range(Hop::Receive, broker, 1, start, end, t)
        .group("red-packet")
        .s();
    d.topic = Some("order_paid".into());
    d.queue_id = Some(0);
    d
}

fn opts() -> Options {
    Options {
        grace_ns: 30 * S,
        now_ns: T0 + 3600 * S,
        groups: vec![],
    }
}

fn judge_one(spans: &[SpanRecord], id: &str) -> MessageVerdicts {
    let e = Evidence::new(spans);
    analyze(&e, &opts())
        .into_iter()
        .find(|m| m.message_id == id)
        .expect("message judged")
}

fn only(m: &MessageVerdicts) -> &GroupVerdict {
    assert_eq!(m.verdicts.len(), 1, "{:?}", m.verdicts);
    &m.verdicts[0]
}

#[test]
fn delivered_when_the_group_processed_it() {
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 0),
        span("M1", Hop::Process, 5).group("red-packet").s(),
    ];
    let m = judge_one(&spans, "M1");
    assert_eq!(
        (only(&m).verdict, m.process_count, m.send_indeterminate),
        (Verdict::Delivered, 1, false)
    );
}

#[test]
fn duplicates_show_in_process_count() {
    let p = span("M1", Hop::Process, 5).group("red-packet").s();
    let mut p2 = p.clone();
    p2.span_id.push_str("-again");
    let m = judge_one(&[ok_send("M1", 0, 0), p, p2], "M1");
    assert_eq!((only(&m).verdict, m.process_count), (Verdict::Delivered, 2));
}

#[test]
fn every_attempt_failed_is_lost_at_send() {
    let spans = vec![
        span("M1", Hop::Send, 0).error("timeout").s(),
        span("M1", Hop::Send, 10).error("connection_lost").s(),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.hop.as_deref()),
        (Verdict::LostAtSend, Some("send"))
    );
    assert_eq!(v.evidence.len(), 2);
    assert!(
        v.explanation.contains("every send attempt failed"),
        "{}",
        v.explanation
    );
    assert!(v.fix.unwrap().contains("retries"));
}

#[test]
fn a_timed_out_send_that_was_stored_is_indeterminate_not_lost() {
    let spans = vec![
        span("M1", Hop::Send, 0).error("timeout").s(),
        store("M1", 1, 0, 0),
        span("M1", Hop::Process, 5).group("red-packet").s(),
    ];
    let m = judge_one(&spans, "M1");
    assert!(m.send_indeterminate);
    assert_eq!(only(&m).verdict, Verdict::Delivered);
}

#[test]
fn power_loss_below_an_unflushed_message_is_lost_at_flush() {
    let spans = vec![
        ok_send("M1", 0, 81_234),
        store("M1", 1, 81_234, 7),
        range(Hop::Flush, "broker-a", 1, 0, 80_000, 2).s(),
        range(Hop::Recover, "broker-a", 2, 0, 80_000, 10)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("power_loss".into()))
            .s(),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.hop.as_deref()),
        (Verdict::LostAtFlush, Some("flush"))
    );
    assert!(
        v.explanation.contains("log ending at 80000"),
        "{}",
        v.explanation
    );
    assert!(
        v.explanation.contains("flushed up to 80000"),
        "{}",
        v.explanation
    );
}

#[test]
fn the_producers_witness_places_a_message_whose_store_span_died_with_the_broker() {
    let spans = vec![
        ok_send("M1", 0, 81_234),
        range(Hop::Recover, "broker-a", 2, 0, 80_000, 10)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("power_loss".into()))
            .s(),
    ];
    assert_eq!(only(&judge_one(&spans, "M1")).verdict, Verdict::LostAtFlush);
}

#[test]
fn a_flushed_message_under_a_lost_disk_is_lost_at_replication() {
    let spans = vec![
        ok_send("M1", 0, 500),
        store("M1", 1, 500, 5),
        range(Hop::Flush, "broker-a", 1, 0, 600, 2).s(),
        range(Hop::Recover, "broker-a", 2, 0, 0, 10)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("disk_lost".into()))
            .s(),
    ];
    assert_eq!(
        only(&judge_one(&spans, "M1")).verdict,
        Verdict::LostAtReplication
    );
}

#[test]
fn a_failover_below_an_unreplicated_message_is_lost_at_replication() {
    let spans = vec![
        ok_send("M1", 0, 500),
        store("M1", 1, 500, 5),
        range(Hop::Replicate, "broker-a", 1, 0, 400, 2).s(),
        range(Hop::Failover, "broker-a", 2, 0, 400, 10)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("disk_lost".into()))
            .s(),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.hop.as_deref()),
        (Verdict::LostAtReplication, Some("replicate"))
    );
    assert!(
        v.explanation.contains("acknowledged up to 400"),
        "{}",
        v.explanation
    );
}

#[test]
fn a_surviving_message_is_not_lost_by_a_restart() {
    let spans = vec![
        ok_send("M1", 0, 100),
        store("M1", 1, 100, 1),
        range(Hop::Recover, "broker-a", 2, 0, 5000, 10)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("crash".into()))
            .s(),
        settle("red-packet", 1, 1, 3),
    ];
    // The group committed offset 1 (the message is queue offset 1): not past it.
    assert_eq!(only(&judge_one(&spans, "M1")).verdict, Verdict::InFlight);
}

#[test]
fn auto_commit_before_a_crash_is_committed_before_processed() {
    let mut delivery = range(Hop::Receive, "broker-a", 1, 0, 32, 3)
        .group("red-packet")
        .s();
    delivery.topic = Some("order_paid".into());
    delivery.queue_id = Some(0);
    let on_receipt = B(settle("red-packet", 32, 1, 4))
        .attr(attr::SETTLE_ON_RECEIVE, AttrValue::Bool(true))
        .s();
    // The group came back and went on with later messages.
    let later = span("M2", Hop::Process, 9).group("red-packet").s();
    let spans = vec![
        ok_send("M1", 0, 700),
        store("M1", 1, 700, 7),
        delivery.clone(),
        on_receipt.clone(),
        later,
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.cause),
        (
            Verdict::LostAtConsumer,
            Some(Cause::CommittedBeforeProcessed)
        )
    );
    // Without the consumer saying it committed on receipt, or without the group
    // going on afterwards, a missing process span is missing evidence.
    let spans = vec![
        ok_send("M1", 0, 700),
        store("M1", 1, 700, 7),
        delivery.clone(),
        settle("red-packet", 32, 1, 4),
    ];
    assert_eq!(
        only(&judge_one(&spans, "M1")).verdict,
        Verdict::IncompleteTrace
    );
    let spans = vec![
        ok_send("M1", 0, 700),
        store("M1", 1, 700, 7),
        delivery,
        on_receipt,
    ];
    assert_eq!(
        only(&judge_one(&spans, "M1")).verdict,
        Verdict::IncompleteTrace
    );
}

#[test]
fn a_swallowed_exception_followed_by_an_ack_is_failed_but_acked() {
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 0),
        span("M1", Hop::Process, 3)
            .group("red-packet")
            .error("RedPacketServiceUnavailable")
            .s(),
        settle("red-packet", 1, 1, 4),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.cause, v.hop.as_deref()),
        (
            Verdict::LostAtConsumer,
            Some(Cause::FailedButAcked),
            Some("process")
        )
    );
    assert!(v.explanation.contains("RedPacketServiceUnavailable"));
}

#[test]
fn a_consumer_that_skipped_ahead_skipped_it() {
    // The broker delivered offsets 0..3 and 4..10, never 3; the group committed 10.
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 3),
        delivery("broker-a", 0, 3, 2),
        delivery("broker-a", 4, 10, 3),
        settle("red-packet", 10, 1, 4),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.cause),
        (Verdict::LostAtConsumer, Some(Cause::Skipped))
    );
}

#[test]
fn offsets_on_another_broker_do_not_count() {
    // Topic order_paid has queue 0 on broker-a and on broker-b; the group's
    // offsets are per broker. broker-b's queue 0 went to 10 while M1 waits
    // on broker-a's queue 0 at 3.
    let mut settled_on_b = settle("red-packet", 10, 1, 4);
    settled_on_b.broker = Some("broker-b".into());
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 3),
        delivery("broker-b", 0, 10, 2),
        settled_on_b,
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(v.verdict, Verdict::InFlight, "{}", v.explanation);

    // The same commit on broker-a: past the message, never delivered there.
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 3),
        delivery("broker-a", 0, 3, 2),
        settle("red-packet", 10, 1, 4),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.cause),
        (Verdict::LostAtConsumer, Some(Cause::Skipped))
    );
}

#[test]
fn offsets_of_another_epoch_do_not_count() {
    // After a restart the queue offsets are reused: a commit in epoch 2 says nothing of epoch 1's message.
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 3),
        settle("red-packet", 10, 2, 4),
    ];
    assert_eq!(only(&judge_one(&spans, "M1")).verdict, Verdict::InFlight);
}

#[test]
fn retries_then_dead_letter() {
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 0),
        span("M1", Hop::Process, 2)
            .group("red-packet")
            .error("JsonParseError")
            .s(),
        span("M1", Hop::Retry, 3).group("red-packet").s(),
        span("M1", Hop::Process, 4)
            .group("red-packet")
            .error("JsonParseError")
            .s(),
        span("M1", Hop::Dlq, 5)
            .group("red-packet")
            .attr(attr::RECONSUME_COUNT, AttrValue::Int(2))
            .s(),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.hop.as_deref()),
        (Verdict::DeadLettered, Some("dlq"))
    );
    assert!(v.explanation.contains("2 times"), "{}", v.explanation);
}

#[test]
fn rollback_versus_half_pending() {
    let prepare = |id: &str| span(id, Hop::TxPrepare, 0).at("broker-a", 1, 0, 10).s();
    let rolled = vec![
        prepare("M1"),
        span("M1", Hop::TxEnd, 2)
            .at("broker-a", 1, 0, 10)
            .attr(attr::TX_STATE, AttrValue::Str("rollback".into()))
            .s(),
    ];
    assert_eq!(only(&judge_one(&rolled, "M1")).verdict, Verdict::RolledBack);
    let pending = vec![prepare("M2")];
    assert_eq!(
        only(&judge_one(&pending, "M2")).verdict,
        Verdict::HalfPending
    );
    assert!(!Verdict::RolledBack.is_lost() && !Verdict::HalfPending.is_lost());
}

#[test]
fn an_intent_without_a_send_is_never_sent() {
    let intent = span("x", Hop::Intent, 0).no_message().s();
    let mut order = span("M9", Hop::Receive, 0).group("g").s();
    order.keys = vec!["ORDER_x".into()];
    // The message id exists only through a span that names the same key.
    let m = judge_one(&[intent, order], "M9");
    assert_eq!(m.verdicts[0].verdict, Verdict::NeverSent);
}

#[test]
fn third_party_spans_without_broker_hops_are_lost_in_transit() {
    let mut spans = vec![span("M1", Hop::Send, 0).s()];
    let mut later = span("M2", Hop::Send, 60 * S).s();
    later.span_id = "later-send".into();
    spans.push(later);
    spans.push(span("M2", Hop::Process, 61 * S).group("red-packet").s());
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(v.verdict, Verdict::LostInTransit);
    assert!(
        v.explanation
            .contains("flush, replication and recovery spans"),
        "{}",
        v.explanation
    );
}

#[test]
fn missing_evidence_is_incomplete_not_lost() {
    let spans = vec![span("M1", Hop::Receive, 0).s()];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(v.verdict, Verdict::IncompleteTrace);
    assert!(v.explanation.contains("no store span"));
}

/// A varied history: deliveries, losses of every kind, ranges.
fn history() -> Vec<SpanRecord> {
    let mut delivery = range(Hop::Receive, "broker-a", 1, 0, 32, 3)
        .group("red-packet")
        .s();
    delivery.topic = Some("order_paid".into());
    delivery.queue_id = Some(0);
    vec![
        ok_send("D", 0, 0),
        store("D", 1, 0, 0),
        span("D", Hop::Process, 5).group("red-packet").s(),
        ok_send("F", 0, 90_000),
        store("F", 1, 90_000, 8),
        range(Hop::Flush, "broker-a", 1, 0, 80_000, 2).s(),
        range(Hop::Recover, "broker-a", 2, 0, 80_000, 10)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("power_loss".into()))
            .s(),
        ok_send("C", 0, 300),
        store("C", 1, 300, 3),
        delivery,
        B(settle("red-packet", 32, 1, 4))
            .attr(attr::SETTLE_ON_RECEIVE, AttrValue::Bool(true))
            .s(),
        span("S", Hop::Send, 0).error("timeout").s(),
    ]
}

/// `spans` in an order drawn from `seed` (xorshift, Fisher-Yates).
fn shuffled(spans: &[SpanRecord], seed: u64) -> Vec<SpanRecord> {
    let mut out = spans.to_vec();
    let mut s = seed | 1;
    for i in (1..out.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.swap(i, (s % (i as u64 + 1)) as usize);
    }
    out
}

proptest! {
    /// The order spans arrive in never changes a verdict.
    #[test]
    fn shuffling_spans_changes_nothing(seed in any::<u64>()) {
        let spans = history();
        prop_assert_eq!(analyze(&Evidence::new(&spans), &opts()), analyze(&Evidence::new(&shuffled(&spans, seed)), &opts()));
    }

    /// Losing spans never turns a delivered message into a lost one.
    #[test]
    fn deleting_spans_never_turns_delivered_into_lost(mask in any::<u16>()) {
        let spans = history();
        let full = analyze(&Evidence::new(&spans), &opts());
        let kept: Vec<SpanRecord> = spans.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| s.clone()).collect();
        let partial = analyze(&Evidence::new(&kept), &opts());
        for m in &partial {
            let Some(before) = full.iter().find(|f| f.message_id == m.message_id) else { continue };
            for v in &m.verdicts {
                let was = before.verdicts.iter().find(|b| b.group == v.group).map(|b| b.verdict);
                if was == Some(Verdict::Delivered) {
                    prop_assert!(!v.verdict.is_lost(), "{} became {:?}", m.message_id, v.verdict);
                }
            }
        }
    }
}

#[test]
fn a_restart_before_the_message_was_stored_cannot_have_lost_it() {
    // Another broker of the same name restarted earlier: not this message's loss.
    let spans = vec![
        range(Hop::Recover, "broker-a", 2, 0, 0, 0)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("power_loss".into()))
            .s(),
        ok_send("M1", 10, 500),
        store("M1", 11, 500, 5),
        span("M1", Hop::Process, 20)
            .group("red-packet")
            .error("Timeout")
            .s(),
        settle("red-packet", 6, 1, 21),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.cause),
        (Verdict::LostAtConsumer, Some(Cause::FailedButAcked))
    );
}

/// A history with several groups, topics and processing times.
fn busy_history() -> Vec<SpanRecord> {
    let mut spans = history();
    for (i, id) in ["P1", "P2", "P3", "P4", "P5", "P6"].iter().enumerate() {
        let t = i as u64;
        spans.push(ok_send(id, t, 1000 * (t + 1)));
        spans.push(store(id, t + 1, 1000 * (t + 1), t + 1));
        let group = if i % 2 == 0 {
            "red-packet"
        } else {
            "inventory"
        };
        let mut process = span(id, Hop::Process, t + 20 - 2 * t).group(group);
        if i == 4 {
            process = process.error("StockServiceTimeout");
        }
        spans.push(process.s());
    }
    for s in spans.iter_mut().filter(|s| s.topic.is_none()) {
        s.topic = Some("order_paid".into());
    }
    spans
}

#[test]
fn window_facts_from_columns_match_those_from_records() {
    let spans = busy_history();
    let mut from_records = Globals::default();
    from_records.absorb(&Evidence::new(&spans));
    let mut from_columns = Globals::default();
    from_columns.absorb_facts(&WindowFacts::of_records(&spans));
    assert_eq!(from_columns, from_records);
    assert_ne!(from_columns, Globals::default());
}

#[test]
fn judging_by_shares_gives_the_verdicts_of_the_whole() {
    use lasthop_collector::Share;
    let spans = busy_history();
    let whole = analyze(&Evidence::new(&spans), &opts());
    for of in [2, 3, 5] {
        let share = |index| -> Vec<SpanRecord> {
            let share = Share { index, of };
            spans
                .iter()
                .filter(|s| share.holds(s.message_id.as_deref()))
                .cloned()
                .collect()
        };
        let mut globals = Globals::default();
        for index in 0..of {
            let part = share(index);
            globals.absorb_facts(&WindowFacts::of_records(&part));
        }
        let mut judged: Vec<MessageVerdicts> = (0..of)
            .flat_map(|index| {
                let part = share(index);
                analyze(&Evidence::with_globals(&part, &globals), &opts())
            })
            .collect();
        judged.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        assert_eq!(judged, whole, "{of} shares");
    }
}

/// The busy history with messages delivered to both groups, flushed or not,
/// and one failed once before it was processed.
fn plain_history() -> Vec<SpanRecord> {
    let mut spans = busy_history();
    // Received and processed by some of the busy history's messages.
    for (id, group) in [
        ("P1", "red-packet"),
        ("P2", "inventory"),
        ("P5", "red-packet"),
    ] {
        spans.push(span(id, Hop::Receive, 15).group(group).s());
    }
    // Delivered to both groups, one flushed, one not (still in memory).
    for (id, offset) in [("V", 1_000), ("U", 500_000)] {
        spans.push(ok_send(id, 30, offset));
        spans.push(store(id, 31, offset, 9));
        for group in ["red-packet", "inventory"] {
            spans.push(span(id, Hop::Receive, 32).group(group).s());
            spans.push(span(id, Hop::Process, 33).group(group).s());
        }
    }
    // Failed for one group before it was processed by both: still delivered.
    spans.push(ok_send("W", 40, 600_000));
    spans.push(store("W", 41, 600_000, 10));
    spans.push(span("W", Hop::Receive, 42).group("inventory").s());
    spans.push(
        span("W", Hop::Process, 43)
            .group("inventory")
            .error("StockServiceTimeout")
            .s(),
    );
    for group in ["red-packet", "inventory"] {
        spans.push(span("W", Hop::Process, 44).group(group).s());
    }
    for s in spans.iter_mut().filter(|s| s.topic.is_none()) {
        s.topic = Some("order_paid".into());
    }
    spans
}

#[test]
fn plainly_delivered_from_columns_gives_the_report_of_the_rules() {
    use crate::facts::PlainVerdicts;
    use crate::report::{ReportBuilder, Window, build};
    use lasthop_collector::{MessageKey, message_key};
    use polars::prelude::PlHashSet;
    let spans = plain_history();
    let whole = build(&analyze(&Evidence::new(&spans), &opts()), Window::default()).unwrap();

    let facts = WindowFacts::of_records(&spans);
    let mut globals = Globals::default();
    globals.absorb_facts(&facts);
    let plain = PlainVerdicts::find(&facts, &globals, &opts().groups);
    let plainly: PlHashSet<MessageKey> = ["U", "V", "W"].into_iter().map(message_key).collect();
    let others: PlHashSet<MessageKey> = spans
        .iter()
        .filter_map(|s| s.message_id.as_deref().map(message_key))
        .filter(|k| !plainly.contains(k))
        .collect();
    // D was processed by one of the topic's two groups only: judged by the rules.
    assert_eq!((plain.messages, &plain.others), (3, &others));
    assert_eq!(plain.funnel, [3, 3, 1, 0, 3, 3]);
    let rest: Vec<SpanRecord> = spans
        .iter()
        .filter(|s| {
            s.message_id
                .as_deref()
                .is_none_or(|id| plain.others.contains(&message_key(id)))
        })
        .cloned()
        .collect();
    let mut builder = ReportBuilder::new();
    builder.add_plain(&plain);
    builder
        .add(&analyze(&Evidence::with_globals(&rest, &globals), &opts()))
        .unwrap();
    assert_eq!(builder.finish(Window::default()), whole);
}

/// The facts a store's fast fields give, several segments and shares, are
/// those of the same records.
#[test]
fn facts_from_a_store_match_facts_from_records() {
    use crate::facts::PlainVerdicts;
    use crate::facts::WindowShares;
    use lasthop_collector::{Pipeline, PipelineOptions};
    let spans = plain_history();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::open(dir.path(), PipelineOptions::default()).unwrap();
    // Two commits, sends and stores first: every message spans two segments.
    let (first, second): (Vec<SpanRecord>, Vec<SpanRecord>) = spans
        .iter()
        .cloned()
        .partition(|s| matches!(s.hop, Some(Hop::Send | Hop::Store)));
    for half in [first, second] {
        let lsn = pipeline.accept_blocking(half).unwrap();
        assert!(pipeline.wait_indexed(lsn, std::time::Duration::from_secs(30)));
    }
    let store = pipeline.store();
    store.reload().unwrap();
    assert!(store.segment_count() >= 2);

    let expected = WindowFacts::of_records(&spans);
    let mut globals = Globals::default();
    globals.absorb_facts(&expected);
    let plain = PlainVerdicts::find(&expected, &globals, &opts().groups);
    assert_eq!(plain.messages, 3);
    // One pass, handed out in shares (spilled to a file past one): every
    // share knows every topic's groups, the shares' messages are the
    // window's, split, and together they judge as the whole does.
    for (of, memoized) in [(1, false), (1, true), (2, false), (3, true), (5, false)] {
        let memo = lasthop_collector::KeyMemo::default();
        let memo = memoized.then_some(&memo);
        let spill_dir = tempfile::tempdir().unwrap();
        let read = std::sync::atomic::AtomicU64::new(0);
        let progress = |n| {
            read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let mut shares = WindowShares::read(
            store,
            (0, u64::MAX),
            (of, spill_dir.path()),
            memo,
            &progress,
        )
        .unwrap();
        assert_eq!(shares.of(), of);
        assert_eq!(
            read.into_inner(),
            spans.len() as u64,
            "every span read once"
        );
        let mut from_store = Globals::default();
        let mut others = polars::prelude::PlHashSet::default();
        let (mut messages, mut verdicts, mut spans_counted, mut funnel) = (0, 0, 0, [0; 6]);
        let mut largest_share = 0;
        for index in 0..of {
            let facts = shares.share(index).unwrap();
            let mut alone = Globals::default();
            alone.absorb_facts(&facts);
            assert_eq!(
                alone.groups_by_topic, globals.groups_by_topic,
                "{of} shares"
            );
            assert_eq!(
                alone.last_processing, globals.last_processing,
                "{of} shares"
            );
            from_store.absorb_facts(&facts);
            let p = PlainVerdicts::find(&facts, &globals, &opts().groups);
            largest_share = largest_share.max(p.messages + p.others.len() as u64);
            others.extend(p.others);
            messages += p.messages;
            verdicts += p.delivered + p.in_flight;
            spans_counted += p.spans;
            funnel.iter_mut().zip(p.funnel).for_each(|(a, b)| *a += b);
        }
        let all = plain.messages + plain.others.len() as u64;
        if of > 1 {
            assert!(
                largest_share < all,
                "{of} shares: one share holds every message"
            );
        }
        assert_eq!(from_store, globals, "{of} shares");
        assert_eq!(others, plain.others, "{of} shares");
        assert_eq!(
            (messages, verdicts, spans_counted, funnel),
            (
                plain.messages,
                plain.delivered + plain.in_flight,
                plain.spans,
                plain.funnel
            ),
            "{of} shares"
        );
    }
    pipeline.shutdown();
}

#[test]
fn two_brokers_started_under_one_name_and_epoch_name_no_hop() {
    // Two processes both called broker-a started at epoch 1; one of them then
    // lost power. Which one stored M1 cannot be told from the spans.
    let spans = vec![
        ok_send("M1", 0, 81_234),
        store("M1", 1, 81_234, 7),
        range(Hop::Recover, "broker-a", 1, 0, 0, 0)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("clean".into()))
            .s(),
        B(SpanRecord {
            span_id: "the-other-broker-a".into(),
            ..range(Hop::Recover, "broker-a", 1, 0, 0, 0).s()
        })
        .s(),
        range(Hop::Recover, "broker-a", 2, 0, 80_000, 10)
            .attr(attr::RECOVER_CAUSE, AttrValue::Str("power_loss".into()))
            .s(),
    ];
    let v = only(&judge_one(&spans, "M1")).clone();
    assert_eq!(
        (v.verdict, v.hop.as_deref()),
        (Verdict::IncompleteTrace, None)
    );
    assert!(
        v.explanation
            .contains("2 brokers named broker-a started at epoch 1"),
        "{}",
        v.explanation
    );
    assert!(v.explanation.contains("brokerName"), "{}", v.explanation);

    // The same recover span twice (a resent export) is one start: the loss stands.
    let mut resent = spans.clone();
    resent.retain(|s| s.span_id != "the-other-broker-a");
    resent.push(resent[2].clone());
    assert_eq!(
        only(&judge_one(&resent, "M1")).verdict,
        Verdict::LostAtFlush
    );
}

#[test]
fn a_span_stored_twice_counts_once() {
    // An exporter resent a request the collector had already acknowledged.
    let process = span("M1", Hop::Process, 5).group("red-packet").s();
    let spans = vec![
        ok_send("M1", 0, 0),
        store("M1", 1, 0, 0),
        process.clone(),
        process,
    ];
    let m = judge_one(&spans, "M1");
    assert_eq!(m.process_count, 1, "not a duplicate processing");
    assert_eq!(only(&m).verdict, Verdict::Delivered);
    // A second processing is a different span: a real duplicate.
    let mut again = span("M1", Hop::Process, 9).group("red-packet").s();
    again.span_id = "second-processing".into();
    let mut spans = spans;
    spans.push(again);
    assert_eq!(judge_one(&spans, "M1").process_count, 2);
}

#[path = "rules/third_party_tests.rs"]
mod third_party;
