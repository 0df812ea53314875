use super::*;
use lasthop_vocab::{Hop, StatusCode};

fn one(text: &str) -> SpanRecord {
    let (spans, bad) = read(text, "app.log", None);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(spans.len(), 1, "{spans:?}");
    spans.into_iter().next().unwrap()
}

#[test]
fn the_mdc_layout_of_the_seeds() {
    let s = one(
        "2025-11-15 10:00:01.120 INFO [order-service] [Trace] message sent, traceId=5B8EFFF798038103D269B633813FC60C, msgId=M1, keys=ORDER_42\n",
    );
    assert_eq!(s.hop, Some(Hop::Send));
    assert_eq!(s.service, "order-service");
    assert_eq!(s.message_id.as_deref(), Some("M1"));
    assert_eq!(s.keys, vec!["ORDER_42".to_owned()]);
    assert_eq!(s.trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(s.start_ns, 1_763_200_801_120_000_000);
    assert_eq!(s.status, StatusCode::Unset);
    assert_eq!(s.name, "message sent");
    assert!(s.attributes.iter().any(|a| a.key == attr::SOURCE));
}

#[test]
fn logback_default_layout_with_an_error() {
    let s = one(
        "2025-11-15 10:00:02,004 [ConsumeMessageThread_1] ERROR c.e.RedPacketListener - processing failed, msgId=M1 group=red-packet error=RedPacketServiceTimeout\n",
    );
    assert_eq!(s.hop, Some(Hop::Process));
    assert_eq!(s.status, StatusCode::Error);
    assert_eq!(s.error_type.as_deref(), Some("RedPacketServiceTimeout"));
    assert_eq!(s.group.as_deref(), Some("red-packet"));
    assert_eq!(s.name, "processing failed");
    assert_eq!(s.start_ns % 1_000_000_000, 4_000_000);
}

#[test]
fn ordinary_lines_and_stack_traces_are_passed_over_and_bad_ones_reported() {
    let text = "\
2025-11-15 10:00:01.000 INFO [order-service] started in 2.1 s
2025-11-15 10:00:01.120 INFO [order-service] message sent, msgId=M1 keys=ORDER_1
java.lang.IllegalStateException: boom
\tat com.example.Listener.onMessage(Listener.java:42)
2025-11-15 10:00:01.300 INFO [red-packet] looking at it, msgId=M1
2025-13-45 10:00:01.400 INFO [red-packet] message received, msgId=M1
2025-11-15 10:00:01.500 INFO [red-packet] message processed, msgId=M1 outcome=maybe
2025-11-15 10:00:01.600 INFO [red-packet] red packet granted, msgId=M1
";
    let (spans, bad) = read(text, "app.log", None);
    let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![5, 6, 7], "{bad:?}");
    assert!(bad[0].reason.contains("not what happened"), "{bad:?}");
    assert!(bad[1].reason.contains("not a date"), "{bad:?}");
    assert!(bad[2].reason.contains("neither ok nor error"), "{bad:?}");
    let hops: Vec<_> = spans.iter().map(|s| (s.hop, s.is_error())).collect();
    assert_eq!(
        hops,
        vec![(Some(Hop::Send), false), (Some(Hop::Process), false)],
        "a granted packet is a processing that succeeded"
    );
}

#[test]
fn a_file_of_another_layout_says_so() {
    let (spans, bad) = read("hello\nworld\n", "x.log", None);
    assert!(spans.is_empty());
    assert_eq!(bad.len(), 1);
    assert!(bad[0].reason.contains("--log-pattern"), "{bad:?}");
}

#[test]
fn celery_worker_logs_through_a_pattern() {
    let pattern = LogPattern::new(
        r"^\[(?P<time>[^\]]+?): (?P<level>\w+)/[^\]]+\] Task (?P<service>[\w.]+)\[(?P<msg_id>[0-9a-f-]+)\] (?P<message>.*)$",
    )
    .unwrap();
    let text = "\
[2026-12-04 18:38:35,739: INFO/MainProcess] Task tasks.grant_red_packet[b094e505-64e3-4f56-9e82-d90c30854108] received
[2026-12-04 18:38:35,844: INFO/ForkPoolWorker-1] Task tasks.grant_red_packet[b094e505-64e3-4f56-9e82-d90c30854108] succeeded in 0.0004s: 'ORDER_2'
[2026-12-04 18:38:35,848: ERROR/ForkPoolWorker-1] Task tasks.grant_red_packet[82f8b2b1-1636-44e3-bf6a-c1c022376e0c] raised unexpected: ValueError('red-packet service rejected the order')
[2026-12-04 18:38:37,629: ERROR/MainProcess] Process 'ForkPoolWorker-1' pid:1953 exited with 'signal 9 (SIGKILL)'
";
    let (spans, bad) = read(text, "worker.log", Some(&pattern));
    assert!(bad.is_empty(), "{bad:?}");
    let seen: Vec<_> = spans
        .iter()
        .map(|s| (s.hop, s.is_error(), s.message_id.clone().unwrap()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Some(Hop::Receive),
                false,
                "b094e505-64e3-4f56-9e82-d90c30854108".into()
            ),
            (
                Some(Hop::Process),
                false,
                "b094e505-64e3-4f56-9e82-d90c30854108".into()
            ),
            (
                Some(Hop::Process),
                true,
                "82f8b2b1-1636-44e3-bf6a-c1c022376e0c".into()
            ),
        ]
    );
    assert_eq!(spans[0].service, "tasks.grant_red_packet");
}

#[test]
fn patterns_must_name_a_time_and_a_message() {
    assert!(
        LogPattern::new("(")
            .unwrap_err()
            .contains("regular expression")
    );
    assert!(
        LogPattern::new("(?P<msg_id>.*)")
            .unwrap_err()
            .contains("time")
    );
    assert!(
        LogPattern::new("(?P<time>.*)")
            .unwrap_err()
            .contains("msg_id")
    );
}

#[test]
fn the_layout_is_sniffed() {
    assert_eq!(
        TextLog.sniff(b"2025-11-15 10:00:01.120 INFO x"),
        Sniff::Likely
    );
    assert_eq!(
        TextLog.sniff(b"[2026-12-04 18:38:35,739: INFO/Main] x"),
        Sniff::Likely
    );
    assert_eq!(TextLog.sniff(b"{\"time\": 1}"), Sniff::No);
}
