//! The two ends of lasthop's own OTLP path tested against each other: what
//! `encode_request` writes for a process's spans, the collector's one-pass
//! protobuf reader (`otlp/proto.rs`) reads back as the same span records as
//! the generic path (prost into opentelemetry-proto's structs, then
//! normalization), with lasthop's fields where the analyzer looks for them.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use lasthop_collector::normalize::normalize_request;
use lasthop_collector::otlp::proto::decode_request;
use lasthop_telemetry::encode_request;
use lasthop_vocab::{Hop, StatusCode};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;

fn span(n: u64, attributes: Vec<KeyValue>, status: Status, kind: SpanKind) -> SpanData {
    let mut events = SpanEvents::default();
    if status != Status::Ok {
        events.events.push(Event::new(
            "exception",
            UNIX_EPOCH + Duration::from_millis(n * 10 + 5),
            vec![KeyValue::new("exception.type", "RedPacketServiceTimeout")],
            0,
        ));
    }
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x5b8e_fff7_9803_8103_d269_b633_813f_c60c_u128 + u128::from(n)),
            SpanId::from(0xeee1_9b7e_c3c1_b174 + n),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: kind,
        name: Cow::Owned(format!("order_paid {n}")),
        start_time: UNIX_EPOCH + Duration::from_millis(1_763_700_000_000 + n * 10),
        end_time: UNIX_EPOCH + Duration::from_millis(1_763_700_000_000 + n * 10 + 7),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: InstrumentationScope::builder("lasthop").build(),
    }
}

fn keys(values: &[&str]) -> Value {
    Value::Array(Array::String(
        values.iter().map(|v| v.to_string().into()).collect(),
    ))
}

/// A producer's send, a broker's store and a consumer's failed process, as
/// lasthop's own processes make them (integers as i64, keys as a string array).
fn spans() -> Vec<SpanData> {
    vec![
        span(
            1,
            vec![
                KeyValue::new("lasthop.hop", "send"),
                KeyValue::new("messaging.message.id", "M1"),
                KeyValue::new("messaging.rocketmq.message.keys", keys(&["ORDER_42"])),
                KeyValue::new("messaging.destination.name", "order_paid"),
                KeyValue::new("lasthop.send.status", "SEND_OK"),
                KeyValue::new("lasthop.send.attempt", 1_i64),
                KeyValue::new("lasthop.broker", "broker-a"),
                KeyValue::new("lasthop.broker.epoch", 3_i64),
                KeyValue::new("lasthop.commitlog.offset", 81_234_i64),
            ],
            Status::Ok,
            SpanKind::Producer,
        ),
        span(
            2,
            vec![
                KeyValue::new("lasthop.hop", "store"),
                KeyValue::new("messaging.message.id", "M1"),
                KeyValue::new("messaging.destination.partition.id", 2_i64),
                KeyValue::new("lasthop.queue.offset", 17_i64),
                KeyValue::new("lasthop.commitlog.size", 312_i64),
            ],
            Status::Unset,
            SpanKind::Server,
        ),
        span(
            3,
            vec![
                KeyValue::new("lasthop.hop", "process"),
                KeyValue::new("messaging.message.id", "M1"),
                KeyValue::new("messaging.consumer.group.name", "red-packet"),
                KeyValue::new("error.type", "RedPacketServiceTimeout"),
            ],
            Status::error("the red-packet service timed out"),
            SpanKind::Consumer,
        ),
    ]
}

fn encoded() -> Vec<u8> {
    let resource = Resource::builder_empty()
        .with_attribute(KeyValue::new("service.name", "order-service"))
        .build();
    let mut out = Vec::new();
    encode_request(&spans(), &resource, &mut out);
    out
}

#[test]
fn the_collector_reads_what_the_encoder_writes_as_lasthop_records() {
    let decoded = decode_request(&encoded()).expect("the encoder writes valid OTLP");
    assert_eq!(decoded.rejected, 0);
    let [send, store, process] = decoded.records.as_slice() else {
        panic!("three spans in, three records out: {:?}", decoded.records);
    };
    assert_eq!(send.trace_id, "5b8efff798038103d269b633813fc60d");
    assert_eq!(send.span_id, "eee19b7ec3c1b175");
    assert_eq!(send.service, "order-service");
    assert_eq!(send.hop, Some(Hop::Send));
    assert_eq!(send.message_id.as_deref(), Some("M1"));
    assert_eq!(send.keys, vec!["ORDER_42".to_owned()]);
    assert_eq!(send.topic.as_deref(), Some("order_paid"));
    assert_eq!(send.broker.as_deref(), Some("broker-a"));
    assert_eq!(send.epoch, Some(3));
    assert_eq!(send.commitlog_offset, Some(81_234));
    assert_eq!(send.start_ns, 1_763_700_000_010_000_000);
    assert_eq!(send.end_ns, 1_763_700_000_017_000_000);
    assert_eq!(store.hop, Some(Hop::Store));
    assert_eq!((store.queue_id, store.queue_offset), (Some(2), Some(17)));
    assert_eq!(store.commitlog_size, Some(312));
    assert_eq!(process.hop, Some(Hop::Process));
    assert_eq!(process.group.as_deref(), Some("red-packet"));
    assert_eq!(process.status, StatusCode::Error);
    assert_eq!(
        process.error_type.as_deref(),
        Some("RedPacketServiceTimeout")
    );
    assert_eq!(process.events.len(), 1, "the exception event is kept");
}

#[test]
fn the_one_pass_reader_and_the_generic_path_agree_on_encoded_spans() {
    let bytes = encoded();
    let fast = decode_request(&bytes).expect("one-pass reader");
    let request = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("prost decodes it");
    let generic = normalize_request(request);
    assert_eq!(fast.records, generic.records);
    assert_eq!(fast.rejected, generic.rejected);
}
