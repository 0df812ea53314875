use super::*;
use lasthop_vocab::{Hop, StatusCode};
use std::io::Write;

fn format(name: &str) -> InputFormat {
    InputFormat::named(name).expect("a registered format")
}

fn record(fields: &[&str]) -> Vec<u8> {
    let mut r = fields.join("\u{1}").into_bytes();
    r.push(0x02);
    r
}

const OFFSET_MSG_ID: &str = "0A00000100002A9F0000000000013D32"; // 10.0.0.1:10911, offset 81202

#[test]
fn offset_msg_id_decodes_to_store_host_and_offset() {
    assert_eq!(
        rocketmq_trace::decode_offset_msg_id(OFFSET_MSG_ID),
        Some(("10.0.0.1:10911".into(), 81_202))
    );
    assert_eq!(rocketmq_trace::decode_offset_msg_id("xyz"), None);
}

#[test]
fn rocketmq_records_of_every_type() {
    let mut data = Vec::new();
    data.extend(record(&[
        "Pub",
        "1763700000120",
        "DefaultRegion",
        "order-producer",
        "order_paid",
        "MSG1",
        "paid",
        "ORDER_42 USER_7",
        "10.0.0.1:10911",
        "300",
        "5",
        "Normal_Msg",
        OFFSET_MSG_ID,
        "true",
        "10.0.0.9",
    ]));
    data.push(b'\n');
    data.extend(record(&[
        "SubBefore",
        "1763700000200",
        "DefaultRegion",
        "red-packet",
        "REQ1",
        "MSG1",
        "0",
        "ORDER_42 USER_7",
    ]));
    data.extend(record(&[
        "SubAfter",
        "REQ1",
        "MSG1",
        "12",
        "false",
        "ORDER_42 USER_7",
        "1",
        "1763700000210",
        "red-packet",
    ]));
    data.extend(record(&[
        "EndTransaction",
        "1763700000300",
        "DefaultRegion",
        "order-producer",
        "order_paid",
        "MSG2",
        "",
        "ORDER_43",
        "10.0.0.1:10911",
        "Trans_msg_Commit",
        "TX2",
        "COMMIT_MESSAGE",
        "true",
    ]));
    let (spans, bad) = rocketmq_trace::read(&data, "trace.bin");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        spans.len(),
        5,
        "four records, and the retry the failed one implies"
    );
    let send = &spans[0];
    assert_eq!(
        (send.hop, send.message_id.as_deref(), send.topic.as_deref()),
        (Some(Hop::Send), Some("MSG1"), Some("order_paid"))
    );
    assert_eq!(send.keys, vec!["ORDER_42", "USER_7"]);
    assert_eq!(
        (send.broker.as_deref(), send.commitlog_offset),
        (Some("10.0.0.1:10911"), Some(81_202))
    );
    assert_eq!(
        (send.start_ns, send.end_ns),
        (1_763_700_000_120_000_000, 1_763_700_000_125_000_000)
    );
    assert_eq!(send.service, "order-producer");
    assert_eq!(spans[1].hop, Some(Hop::Receive));
    assert_eq!(spans[1].group.as_deref(), Some("red-packet"));
    let process = &spans[2];
    assert_eq!(
        (process.hop, process.status),
        (Some(Hop::Process), StatusCode::Error)
    );
    assert_eq!(process.group.as_deref(), Some("red-packet"));
    assert_eq!(
        process.error_type.as_deref(),
        Some("TIME_OUT"),
        "contextCode 1"
    );
    assert_eq!(
        process.topic.as_deref(),
        Some("order_paid"),
        "the topic of its Pub"
    );
    let retry = &spans[3];
    assert_eq!(
        (
            retry.hop,
            retry.group.as_deref(),
            retry.message_id.as_deref()
        ),
        (Some(Hop::Retry), Some("red-packet"), Some("MSG1"))
    );
    assert_eq!(
        retry
            .attr("lasthop.reconsume.count")
            .and_then(|v| v.as_u64()),
        Some(1)
    );
    let end = &spans[4];
    assert_eq!(end.hop, Some(Hop::TxEnd));
    assert_eq!(
        end.attr("lasthop.tx.state").and_then(|v| v.as_str()),
        Some("commit")
    );
    assert_eq!(
        end.attr("lasthop.tx.from_check").and_then(|v| v.as_bool()),
        Some(true)
    );
    let ids: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), 5, "span ids are unique");
}

#[test]
fn short_records_from_older_clients_are_legal() {
    let mut data = Vec::new();
    // Pub without clientHost and without offsetMsgId/success; SubAfter without time and group.
    data.extend(record(&[
        "Pub",
        "1763700000120",
        "R",
        "order-producer",
        "order_paid",
        "MSG1",
        "",
        "ORDER_1",
        "10.0.0.1:10911",
        "300",
        "5",
    ]));
    data.extend(record(&[
        "SubBefore",
        "1763700000200",
        "R",
        "red-packet",
        "REQ9",
        "MSG1",
        "0",
        "ORDER_1",
    ]));
    data.extend(record(&[
        "SubAfter", "REQ9", "MSG1", "3", "true", "ORDER_1",
    ]));
    let (spans, bad) = rocketmq_trace::read(&data, "old.bin");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(spans[0].broker.as_deref(), Some("10.0.0.1:10911"));
    assert_eq!(spans[0].commitlog_offset, None);
    let process = &spans[2];
    assert_eq!(
        process.group.as_deref(),
        Some("red-packet"),
        "group taken from the SubBefore of the same request"
    );
    assert_eq!(process.start_ns, 1_763_700_000_200_000_000);
}

#[test]
fn malformed_records_are_reported_with_their_line_and_the_rest_is_read() {
    let mut data = Vec::new();
    data.extend(record(&[
        "Pub",
        "1763700000120",
        "R",
        "p",
        "t",
        "MSG1",
        "",
        "K1",
        "h",
        "1",
        "1",
        "Normal_Msg",
        "",
        "true",
    ]));
    data.extend(b"\n\n");
    data.extend(record(&["Pub", "not-a-time", "R", "p", "t", "MSG2"]));
    data.push(b'\n');
    data.extend(record(&["Teleport", "x"]));
    data.push(b'\n');
    data.extend(record(&["SubAfter", "REQ-unknown", "MSG3", "1", "true"]));
    let (spans, bad) = rocketmq_trace::read(&data, "bad.bin");
    assert_eq!(spans.len(), 1);
    let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![3, 4, 5], "{bad:?}");
    assert!(bad[0].reason.contains("time"));
    assert!(bad[1].reason.contains("unknown record type"));
    assert!(bad[2].reason.contains("SubBefore"));
}

#[test]
fn json_lines_with_either_time_form_and_extra_fields() {
    let text = concat!(
        r#"{"time":"2025-11-21T04:40:00.120Z","hop":"send","message_id":"M1","keys":"ORDER_1","topic":"order_paid","service":"order-service","order_amount":42}"#,
        "\n",
        r#"{"time":1763700000300,"hop":"process","keys":["ORDER_1"],"group":"red-packet","outcome":"error","error":"RedPacketServiceUnavailable"}"#,
        "\n",
        "\n",
        r#"{"time":1763700000300,"hop":"teleport","message_id":"M1"}"#,
        "\n",
        r#"{"hop":"send","message_id":"M1"}"#,
        "\n",
        r#"{"time":1,"hop":"send"}"#,
        "\n",
        "not json\n",
    );
    let (spans, bad) = jsonl::read(text, "app.log");
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].start_ns, 1_763_700_000_120_000_000);
    assert_eq!(spans[0].service, "order-service");
    assert_eq!(
        spans[0].attr("order_amount").and_then(|v| v.as_u64()),
        Some(42)
    );
    assert_eq!(
        (spans[1].status, spans[1].error_type.as_deref()),
        (StatusCode::Error, Some("RedPacketServiceUnavailable"))
    );
    assert_eq!(spans[1].group.as_deref(), Some("red-packet"));
    let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![4, 5, 6, 7], "{bad:?}");
}

#[test]
fn formats_are_told_apart_by_content() {
    assert_eq!(
        InputFormat::detect(&record(&["Pub", "1"])),
        format("rocketmq-trace")
    );
    assert_eq!(
        InputFormat::detect(br#"{"resourceSpans":[]}"#),
        format("otlp-json")
    );
    assert_eq!(
        InputFormat::detect(b"{\n  \"resourceSpans\": ["),
        format("otlp-json")
    );
    assert_eq!(
        InputFormat::detect(br#"{"time":1,"hop":"send","message_id":"M"}"#),
        format("jsonl")
    );
}

#[test]
fn read_file_detects_and_reads_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.bin");
    std::fs::write(
        &trace,
        record(&[
            "Pub",
            "1763700000120",
            "R",
            "p",
            "t",
            "MSG1",
            "",
            "K1",
            "h",
            "1",
            "1",
        ]),
    )
    .unwrap();
    let log = dir.path().join("app.jsonl");
    let mut f = std::fs::File::create(&log).unwrap();
    writeln!(
        f,
        r#"{{"time":1763700000300,"hop":"process","message_id":"MSG1","group":"g"}}"#
    )
    .unwrap();
    let mut all = Vec::new();
    let a = read_file(&trace, None, &Default::default(), |r| all.extend(r)).unwrap();
    let b = read_file(&log, None, &Default::default(), |r| all.extend(r)).unwrap();
    assert_eq!(
        (a.format, a.spans, b.format, b.spans),
        (format("rocketmq-trace"), 1, format("jsonl"), 1)
    );
    let ids: Vec<_> = all.iter().map(|s| s.message_id.as_deref()).collect();
    assert_eq!(ids, vec![Some("MSG1"), Some("MSG1")]);
}

#[test]
fn every_format_has_its_own_name_and_parses_back_from_it() {
    let mut names: Vec<&str> = InputFormat::ALL.iter().map(|f| f.name()).collect();
    for &f in InputFormat::ALL {
        assert_eq!(f.name().parse::<InputFormat>(), Ok(f));
        assert!(!f.about().is_empty());
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), InputFormat::ALL.len());
    let unknown = "parquet".parse::<InputFormat>().unwrap_err();
    assert!(
        unknown.contains("otlp-json, rocketmq-trace, jsonl"),
        "{unknown}"
    );
}

#[test]
fn rocketmq_semantics_half_messages_and_the_last_retry() {
    let mut data = Vec::new();
    let pub_half = [
        "Pub",
        "1763700000120",
        "R",
        "order-producer",
        "order_paid",
        "MSG1",
        "",
        "ORDER_1",
        "10.0.0.1:10911",
        "300",
        "5",
        "1",
        OFFSET_MSG_ID,
        "true",
    ];
    data.extend(record(&pub_half));
    // The 16th retry (retryTimes 16) fails: the dead-letter queue.
    data.extend(record(&[
        "SubBefore",
        "1763700001000",
        "R",
        "red-packet",
        "REQ7",
        "MSG2",
        "16",
        "ORDER_2",
    ]));
    data.extend(record(&[
        "SubAfter", "REQ7", "MSG2", "3", "false", "ORDER_2", "2",
    ]));
    let (spans, bad) = rocketmq_trace::read(&data, "t.bin");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        spans[0].hop,
        Some(Hop::TxPrepare),
        "msgType 1 is Trans_Msg_Half"
    );
    let hops: Vec<_> = spans.iter().map(|s| s.hop).collect();
    assert_eq!(
        hops,
        vec![
            Some(Hop::TxPrepare),
            Some(Hop::Receive),
            Some(Hop::Process),
            Some(Hop::Dlq)
        ]
    );
    assert_eq!(spans[2].error_type.as_deref(), Some("EXCEPTION"));
    // With a higher maxReconsumeTimes the 16th retry is not the last.
    let options = ReadOptions {
        max_reconsume_times: Some(20),
        ..ReadOptions::default()
    };
    let (spans, _) = rocketmq_trace::read_with(&data, "t.bin", &options);
    assert_eq!(spans.last().unwrap().hop, Some(Hop::Retry));
}
