//! The messages judged from facts get the rules' verdicts: random
//! histories, judged as `lasthop report` judges a store (facts first, the
//! others from records) and by the rules alone, give the same report.

use lasthop_vocab::{AttrValue, Attribute, Hop, SpanRecord, StatusCode, attr};
use proptest::prelude::*;

use super::PlainVerdicts;
use crate::evidence::{Evidence, Globals};
use crate::facts::WindowFacts;
use crate::report::{Report, ReportBuilder, Window, build};
use crate::{Options, analyze};

/// A small random source, so that one seed replays a history.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }
}

const GROUPS: [&str; 2] = ["red-packet", "inventory"];

fn span(hop: Hop, message: Option<&str>, t: u64, n: usize) -> SpanRecord {
    SpanRecord {
        trace_id: "ab".repeat(16),
        span_id: format!("{n:016x}"),
        message_id: message.map(str::to_owned),
        hop: Some(hop),
        topic: Some("order_paid".into()),
        start_ns: 1_000 + t,
        end_ns: 1_100 + t,
        ..SpanRecord::default()
    }
}

/// Messages whose spans come and go at random (sends ok or failed, stores
/// placed or not, in one of two queues and epochs, receives, processing
/// ok or failed by either group, dead letters), and the spans that
/// describe many messages: offset commits, broker deliveries, flushes,
/// replication, restarts.
fn history(seed: u64) -> Vec<SpanRecord> {
    let mut d = Dice(seed | 1);
    let mut spans = Vec::new();
    let push = |mut s: SpanRecord, spans: &mut Vec<SpanRecord>| {
        s.span_id = format!("{:016x}", spans.len() + 1);
        spans.push(s);
    };
    for n in 0..8 {
        let id = format!("M{n}");
        let id = Some(id.as_str());
        let t = d.below(50);
        let (broker, epoch) = (d.pick(&["broker-a", "broker-b"]), 1 + d.below(2));
        let (queue, offset) = (d.below(2) as u32, d.below(10));
        // A topic no group consumes, for some.
        let quiet = d.one_in(6);
        let first = spans.len();
        if !d.one_in(4) {
            let mut s = span(Hop::Send, id, t, 0);
            if d.one_in(4) {
                s.status = StatusCode::Error;
            } else if d.one_in(2) {
                s.broker = Some(broker.into());
                s.epoch = Some(epoch);
                s.commitlog_offset = Some(offset * 100);
                s.attributes.push(Attribute::new(
                    attr::SEND_STATUS,
                    AttrValue::Str(d.pick(&["SEND_OK", "FLUSH_DISK_TIMEOUT"]).into()),
                ));
            }
            push(s, &mut spans);
        }
        for _ in 0..[0, 1, 1, 1, 1, 2][d.below(6) as usize] {
            let mut s = span(Hop::Store, id, t + 1, 0);
            s.broker = Some(broker.into());
            if !d.one_in(6) {
                s.epoch = Some(epoch);
                s.commitlog_offset = Some(offset * 100);
                s.commitlog_size = Some(100);
            }
            if !d.one_in(5) {
                s.queue_id = Some(queue);
                s.queue_offset = Some(offset);
            }
            push(s, &mut spans);
        }
        if d.one_in(8) {
            let mut s = span(Hop::Store, id, t + 1, 0);
            s.topic = Some("other".into());
            push(s, &mut spans);
        }
        for group in GROUPS {
            if quiet || d.one_in(3) {
                continue;
            }
            if !d.one_in(3) {
                let mut s = span(Hop::Receive, id, t + 2, 0);
                s.group = Some(group.into());
                push(s, &mut spans);
            }
            for _ in 0..d.below(3) {
                let mut s = span(Hop::Process, id, t + 3 + d.below(5), 0);
                s.group = (!d.one_in(8)).then(|| group.into());
                if d.one_in(6) {
                    s.topic = Some(format!("%RETRY%{group}"));
                } else if d.one_in(10) {
                    s.topic = Some("other".into());
                }
                if d.one_in(2) {
                    s.status = StatusCode::Error;
                    s.error_type = Some("Timeout".into());
                }
                push(s, &mut spans);
            }
            if d.one_in(10) {
                let mut s = span(Hop::Dlq, id, t + 9, 0);
                s.group = Some(group.into());
                push(s, &mut spans);
            }
        }
        for s in spans[first..].iter_mut().filter(|_| quiet) {
            s.topic = Some("quiet".into());
        }
    }
    // Spans of many messages.
    for _ in 0..d.below(6) {
        let mut s = span(Hop::Settle, None, d.below(60), 0);
        s.group = Some(d.pick(&GROUPS).into());
        s.queue_id = Some(d.below(2) as u32);
        s.queue_offset = (!d.one_in(8)).then(|| d.below(12));
        s.epoch = (!d.one_in(3)).then(|| 1 + d.below(2));
        if d.one_in(3) {
            s.attributes.push(Attribute::new(
                attr::SETTLE_ON_RECEIVE,
                AttrValue::Bool(true),
            ));
        }
        push(s, &mut spans);
    }
    for _ in 0..d.below(3) {
        let mut s = span(Hop::Receive, None, d.below(60), 0);
        s.group = Some(d.pick(&GROUPS).into());
        s.queue_id = Some(d.below(2) as u32);
        s.range_start = Some(d.below(5));
        s.range_end = Some(d.below(12));
        s.epoch = Some(1 + d.below(2));
        if d.one_in(2) {
            s.topic = Some("other".into());
        }
        push(s, &mut spans);
    }
    for _ in 0..d.below(4) {
        let hop = [Hop::Flush, Hop::Replicate, Hop::Recover, Hop::Failover][d.below(4) as usize];
        let mut s = span(hop, None, d.below(60), 0);
        s.topic = None;
        s.broker = Some(d.pick(&["broker-a", "broker-b"]).into());
        s.epoch = Some(1 + d.below(3));
        s.range_end = Some(d.below(1000));
        push(s, &mut spans);
    }
    spans
}

fn options(seed: u64) -> Options {
    Options {
        grace_ns: 5,
        now_ns: 10_000,
        groups: match seed % 4 {
            0 => vec!["audit".into()],
            1 => vec!["red-packet".into()],
            _ => vec![],
        },
    }
}

/// The report as `lasthop report` makes it from a store: messages judged
/// from facts, the others from their records; and how many were judged
/// from facts.
fn judged_from_facts(spans: &[SpanRecord], options: &Options) -> (Report, PlainVerdicts) {
    let facts = WindowFacts::of_records(spans);
    let mut globals = Globals::default();
    globals.absorb_facts(&facts);
    let plain = PlainVerdicts::find(&facts, &globals, &options.groups);
    let others: Vec<SpanRecord> = (spans.iter())
        .filter(|s| {
            (s.message_id.as_deref())
                .is_none_or(|id| plain.others.contains(&lasthop_collector::message_key(id)))
        })
        .cloned()
        .collect();
    let mut builder = ReportBuilder::new();
    builder.add_plain(&plain);
    let judged = analyze(&Evidence::with_globals(&others, &globals), options);
    builder.add(&judged).unwrap();
    (builder.finish(Window::default()), plain)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn messages_judged_from_facts_get_the_rules_verdicts(seed in any::<u64>()) {
        let spans = history(seed);
        let options = options(seed);
        let whole = build(&analyze(&Evidence::new(&spans), &options), Window::default()).unwrap();
        let (report, _) = judged_from_facts(&spans, &options);
        prop_assert_eq!(report, whole);
    }
}

/// The property is not vacuous: over many histories, messages of every
/// kind the facts can judge are judged from them.
#[test]
fn random_histories_have_messages_judged_from_facts() {
    let (mut delivered, mut in_flight, mut others) = (0, 0, 0);
    for seed in 0..1000 {
        let spans = history(seed);
        let (_, plain) = judged_from_facts(&spans, &options(seed));
        delivered += plain.delivered;
        in_flight += plain.in_flight;
        others += plain.others.len();
    }
    assert!(
        delivered > 200 && in_flight > 200,
        "{delivered} {in_flight}"
    );
    assert!(others > 2000, "{others}");
}

/// Processing failed, nothing committed past it: in flight, from facts
/// alone; a commit past it, or a later epoch of its broker, sends it to the
/// rules (where the commit makes it lost).
#[test]
fn a_failed_message_with_nothing_past_it_is_in_flight_from_facts() {
    let message = |id: &str| {
        let mut store = span(Hop::Store, Some(id), 1, 0);
        store.broker = Some("broker-a".into());
        (store.epoch, store.commitlog_offset) = (Some(1), Some(0));
        (store.queue_id, store.queue_offset) = (Some(0), Some(5));
        let mut receive = span(Hop::Receive, Some(id), 2, 0);
        receive.group = Some("red-packet".into());
        let mut process = span(Hop::Process, Some(id), 3, 0);
        process.group = Some("red-packet".into());
        process.status = StatusCode::Error;
        vec![span(Hop::Send, Some(id), 0, 0), store, receive, process]
    };
    let mut spans = message("M1");
    let mut commit = span(Hop::Settle, None, 4, 0);
    commit.group = Some("red-packet".into());
    (commit.queue_id, commit.queue_offset, commit.epoch) = (Some(0), Some(5), Some(1));
    spans.push(commit.clone());
    let options = options(2);
    let (report, plain) = judged_from_facts(&spans, &options);
    assert_eq!((plain.in_flight, plain.others.len()), (1, 0));
    assert_eq!(report.totals.by_verdict["in_flight"], 1);
    assert_eq!(plain.funnel, [1, 1, 0, 0, 1, 0]);

    // Committed past it: lost, judged by the rules.
    spans.last_mut().unwrap().queue_offset = Some(6);
    let (report, plain) = judged_from_facts(&spans, &options);
    assert_eq!((plain.in_flight, plain.others.len()), (0, 1));
    assert_eq!(report.totals.by_verdict["lost_at_consumer"], 1);

    // A commit of another epoch does not count; a restart of its broker
    // in a later one sends it to the rules.
    spans.last_mut().unwrap().epoch = Some(2);
    assert_eq!(judged_from_facts(&spans, &options).1.in_flight, 1);
    let mut restart = span(Hop::Recover, None, 9, 0);
    (restart.broker, restart.epoch) = (Some("broker-a".into()), Some(2));
    spans.push(restart);
    assert_eq!(judged_from_facts(&spans, &options).1.others.len(), 1);
}
