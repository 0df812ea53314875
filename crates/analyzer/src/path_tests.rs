use super::*;
use crate::Verdict;
use lasthop_vocab::{AttrValue, Attribute, attr};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_763_700_000 * S;

fn span(id: Option<&str>, hop: Hop, t: u64) -> SpanRecord {
    SpanRecord {
        trace_id: "ab".repeat(16),
        span_id: format!("{}-{}-{t}", id.unwrap_or("x"), hop.as_str()),
        message_id: id.map(str::to_owned),
        hop: Some(hop),
        keys: id.map(|i| vec![format!("ORDER_{i}")]).unwrap_or_default(),
        topic: Some("order_paid".into()),
        start_ns: T0 + t * S,
        end_ns: T0 + t * S + 1000,
        ..Default::default()
    }
}

fn placed(mut s: SpanRecord, epoch: u64, offset: u64, qo: u64) -> SpanRecord {
    s.broker = Some("broker-a".into());
    s.epoch = Some(epoch);
    s.commitlog_offset = Some(offset);
    s.commitlog_size = Some(100);
    s.queue_id = Some(0);
    s.queue_offset = Some(qo);
    s
}

fn range(hop: Hop, epoch: u64, start: u64, end: u64, t: u64) -> SpanRecord {
    SpanRecord {
        span_id: format!("{}-{epoch}-{start}-{end}-{t}", hop.as_str()),
        hop: Some(hop),
        broker: Some("broker-a".into()),
        epoch: Some(epoch),
        range_start: Some(start),
        range_end: Some(end),
        start_ns: T0 + t * S,
        end_ns: T0 + t * S + 1000,
        ..Default::default()
    }
}

fn options() -> Options {
    Options {
        grace_ns: 30 * S,
        now_ns: T0 + 3600 * S,
        groups: vec!["red-packet".into()],
    }
}

fn sent(id: &str, t: u64, offset: u64, qo: u64) -> SpanRecord {
    let mut s = placed(span(Some(id), Hop::Send, t), 1, offset, qo);
    s.attributes.push(Attribute::new(
        attr::SEND_STATUS,
        AttrValue::Str("SEND_OK".into()),
    ));
    s
}

#[test]
fn an_unflushed_message_shows_the_flush_that_stopped_short_and_the_restart_that_took_it() {
    let spans = vec![
        sent("M1", 0, 81_234, 7),
        placed(span(Some("M1"), Hop::Store, 1), 1, 81_234, 7),
        range(Hop::Flush, 1, 0, 80_000, 2),
        // Another broker's flush covering the same offset is not this message's.
        SpanRecord {
            broker: Some("broker-b".into()),
            span_id: "other-flush".into(),
            ..range(Hop::Flush, 1, 80_000, 90_000, 3)
        },
        {
            let mut r = range(Hop::Recover, 2, 0, 80_000, 10);
            r.attributes.push(Attribute::new(
                attr::RECOVER_CAUSE,
                AttrValue::Str("power_loss".into()),
            ));
            r
        },
        sent("M2", 20, 90_000, 8),
    ];
    let found = paths(&spans, &Lookup::Key("ORDER_M1".into()), &options());
    assert_eq!(found.len(), 1, "only M1 has the key");
    let p = &found[0];
    let v = &p.verdicts.as_ref().expect("judged").verdicts[0];
    assert_eq!(v.verdict, Verdict::LostAtFlush);
    let roles: Vec<(Option<Hop>, Role)> = p.hops.iter().map(|h| (h.span.hop, h.role)).collect();
    assert_eq!(
        roles,
        vec![
            (Some(Hop::Send), Role::Own),
            (Some(Hop::Store), Role::Own),
            (Some(Hop::Recover), Role::BrokerEvent),
        ],
        "in time order; the flush below it does not cover it"
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n == "no flush span of broker-a (epoch 1) covers offset 81234"),
        "{:?}",
        p.notes
    );
    let recover = &p.hops[2];
    assert_eq!(recover.evidence_for, vec![Some("red-packet".to_string())]);
    let json = p.to_json();
    assert_eq!(json["hops"][2]["role"], "broker_event");
    assert_eq!(json["hops"][2]["evidence_for"][0], "red-packet");
    assert_eq!(json["stored"]["offset"], 81_234);
}

#[test]
fn a_delivered_message_shows_its_flush_batch_delivery_and_the_commit_past_it() {
    let group = |mut s: SpanRecord| {
        s.group = Some("red-packet".into());
        s
    };
    let mut delivery = group(range(Hop::Receive, 1, 5, 10, 3));
    delivery.topic = Some("order_paid".into());
    delivery.queue_id = Some(0);
    let mut early = group(span(None, Hop::Settle, 4));
    early.queue_id = Some(0);
    early.queue_offset = Some(7);
    let mut past = group(span(None, Hop::Settle, 6));
    past.queue_id = Some(0);
    past.queue_offset = Some(8);
    let mut later = group(span(None, Hop::Settle, 9));
    later.span_id = "later".into();
    later.queue_id = Some(0);
    later.queue_offset = Some(12);
    let spans = vec![
        sent("M1", 0, 81_234, 7),
        placed(span(Some("M1"), Hop::Store, 1), 1, 81_234, 7),
        range(Hop::Flush, 1, 80_000, 82_000, 2),
        delivery,
        group(span(Some("M1"), Hop::Receive, 4)),
        group(span(Some("M1"), Hop::Process, 5)),
        early,
        past.clone(),
        later,
    ];
    let found = paths(&spans, &Lookup::MessageId("M1".into()), &options());
    let p = &found[0];
    assert_eq!(
        p.verdicts.as_ref().expect("judged").verdicts[0].verdict,
        Verdict::Delivered
    );
    let roles: Vec<Role> = p.hops.iter().map(|h| h.role).collect();
    assert_eq!(
        roles,
        vec![
            Role::Own,
            Role::Own,
            Role::Covers,
            Role::Delivery,
            Role::Own,
            Role::Own,
            Role::Commit,
        ],
        "{:#?}",
        p.hops
    );
    assert_eq!(
        p.hops[6].span.span_id, past.span_id,
        "the first commit past it"
    );
    assert_eq!(
        p.notes,
        vec!["no replicate span of broker-a (epoch 1) covers offset 81234".to_string()]
    );
}
