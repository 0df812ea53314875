//! The rules on other people's telemetry (`rules/unplaced.rs`): histories
//! without broker offsets, with application log lines beside the spans.

use super::*;

/// Other people's telemetry: no broker offsets, a queue as the group,
/// application log lines beside the spans.
fn third_party_history() -> Vec<SpanRecord> {
    let third = |id: &str, hop: Hop, t: u64| {
        let mut b = span(id, hop, t);
        b.0.topic = Some("red-packet".into());
        if hop != Hop::Send {
            b.0.group = Some("red-packet".into());
        }
        b
    };
    let log = |b: B| b.attr(attr::SOURCE, AttrValue::Str("log".into()));
    vec![
        // Processed; the log says so too.
        third("P1", Hop::Send, 0).s(),
        third("P1", Hop::Process, 10).s(),
        log(third("P1", Hop::Process, 500)).s(),
        // Swallowed: the trace saw success, the log the failure.
        third("P2", Hop::Send, 0).s(),
        third("P2", Hop::Process, 20).s(),
        log(third("P2", Hop::Process, 500).error("Timeout")).s(),
        // Failed once, redelivered, processed; the log tells both.
        third("P3", Hop::Send, 0).s(),
        third("P3", Hop::Process, 30).error("Timeout").s(),
        log(third("P3", Hop::Process, 500).error("Timeout")).s(),
        third("P3", Hop::Process, 3 * S).s(),
        log(third("P3", Hop::Process, 3 * S + 500)).s(),
        // Accepted, never received.
        third("P4", Hop::Send, 40).s(),
        // Later messages: the group went on.
        third("P5", Hop::Send, 90 * S).s(),
        third("P5", Hop::Process, 91 * S).s(),
    ]
}

proptest! {
    /// The order records arrive in never changes a verdict, for other
    /// people's telemetry too.
    #[test]
    fn shuffling_third_party_records_changes_nothing(seed in any::<u64>()) {
        let spans = third_party_history();
        prop_assert_eq!(analyze(&Evidence::new(&spans), &opts()), analyze(&Evidence::new(&shuffled(&spans, seed)), &opts()));
    }

    /// As long as the records that show a message delivered survive, losing
    /// any others (log lines of other attempts, other messages, its sends)
    /// never makes it lost.
    #[test]
    fn deleting_third_party_records_never_turns_delivered_into_lost(mask in any::<u16>()) {
        let spans = third_party_history();
        let full = analyze(&Evidence::new(&spans), &opts());
        let kept: Vec<SpanRecord> = spans.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| s.clone()).collect();
        let partial = analyze(&Evidence::new(&kept), &opts());
        for m in &partial {
            let Some(before) = full.iter().find(|f| f.message_id == m.message_id) else { continue };
            for v in &m.verdicts {
                let Some(was) = before.verdicts.iter().find(|b| b.group == v.group) else { continue };
                let delivering = kept.iter().any(|s| was.evidence.last() == Some(&s.span_id));
                if was.verdict == Verdict::Delivered && delivering {
                    prop_assert!(!v.verdict.is_lost(), "{} became {:?}: {}", m.message_id, v.verdict, v.explanation);
                }
            }
        }
    }
}

#[test]
fn third_party_verdicts_from_spans_and_logs_together() {
    let verdicts = analyze(&Evidence::new(&third_party_history()), &opts());
    let of = |id: &str| {
        let m = verdicts.iter().find(|m| m.message_id == id).unwrap();
        (m.verdicts[0].verdict, m.verdicts[0].cause, m.process_count)
    };
    assert_eq!(
        of("P1"),
        (Verdict::Delivered, None, 1),
        "one processing, told twice"
    );
    assert_eq!(
        of("P2"),
        (Verdict::LostAtConsumer, Some(Cause::FailedButAcked), 0)
    );
    assert_eq!(
        of("P3").0,
        Verdict::Delivered,
        "the redelivery's success stands"
    );
    assert_eq!(of("P4").0, Verdict::LostInTransit);
    assert_eq!(of("P5").0, Verdict::Delivered);
}

#[test]
fn a_message_received_by_a_span_that_ends_before_the_handler_is_not_called_lost() {
    // kafka-python's consumer span ends as the record is handed over: no
    // processing is traced, so nothing may be concluded from its absence.
    let mut send = span("K1", Hop::Send, 0).s();
    send.topic = Some("orders".into());
    let mut receive = span("K1", Hop::Receive, 10).group("orders").s();
    receive.topic = Some("orders".into());
    let verdicts = analyze(&Evidence::new(&[send, receive]), &opts());
    let v = &verdicts[0].verdicts[0];
    assert_eq!(v.verdict, Verdict::IncompleteTrace, "{}", v.explanation);
    assert!(v.explanation.contains("received it"), "{}", v.explanation);
}
