use super::*;
use opentelemetry_proto::tonic::common::v1::ArrayValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status, span};
use proptest::prelude::*;

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}
fn i(v: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(v)),
    }
}
fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}
fn span_with(attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "order_paid send".into(),
        kind: 4,
        start_time_unix_nano: 10,
        end_time_unix_nano: 20,
        attributes: attrs,
        ..Default::default()
    }
}
fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("order-service")),
                    kv("host.name", s("h1")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn lifts_lasthop_and_current_messaging_attributes() {
    let keys = AnyValue {
        value: Some(any_value::Value::ArrayValue(ArrayValue {
            values: vec![s("ORDER_42")],
        })),
    };
    let span = span_with(vec![
        kv("lasthop.hop", s("store")),
        kv("messaging.message.id", s("M1")),
        kv("messaging.rocketmq.message.keys", keys),
        kv("messaging.destination.name", s("order_paid")),
        kv("messaging.destination.partition.id", s("3")),
        kv("lasthop.broker", s("broker-a")),
        kv("lasthop.broker.epoch", i(2)),
        kv("lasthop.commitlog.offset", i(81234)),
        kv("lasthop.commitlog.size", i(300)),
        kv("lasthop.queue.offset", i(17)),
        kv("custom", s("kept")),
    ]);
    let out = normalize_request(request(vec![span]));
    assert_eq!(out.rejected, 0);
    let r = &out.records[0];
    assert_eq!(r.trace_id, "01".repeat(16));
    assert_eq!(r.span_id, "02".repeat(8));
    assert_eq!(r.service, "order-service");
    assert_eq!(
        r.resource,
        vec![Attribute::new("host.name", AttrValue::Str("h1".into()))]
    );
    assert_eq!(r.kind, SpanKind::Producer);
    assert_eq!(r.hop, Some(Hop::Store));
    assert_eq!(r.message_id.as_deref(), Some("M1"));
    assert_eq!(r.keys, vec!["ORDER_42"]);
    assert_eq!(r.topic.as_deref(), Some("order_paid"));
    assert_eq!(r.queue_id, Some(3));
    assert_eq!(r.broker.as_deref(), Some("broker-a"));
    assert_eq!(
        (
            r.epoch,
            r.commitlog_offset,
            r.commitlog_size,
            r.queue_offset
        ),
        (Some(2), Some(81234), Some(300), Some(17))
    );
    assert_eq!(
        r.attributes,
        vec![Attribute::new("custom", AttrValue::Str("kept".into()))]
    );
}

#[test]
fn understands_older_names() {
    let span = span_with(vec![
        kv("messaging.operation", s("process")),
        kv("messaging.destination", s("order_paid")),
        kv("messaging.message_id", s("M2")),
        kv("messaging.kafka.message.offset", i(99)),
        kv("messaging.rocketmq.client_group", s("red-packet")),
        kv("messaging.kafka.message.key", s("ORDER_7")),
    ]);
    let r = &normalize_request(request(vec![span])).records[0];
    assert_eq!(r.hop, Some(Hop::Process));
    assert_eq!(r.topic.as_deref(), Some("order_paid"));
    assert_eq!(r.message_id.as_deref(), Some("M2"));
    assert_eq!(r.queue_offset, Some(99));
    assert_eq!(r.group.as_deref(), Some("red-packet"));
    assert_eq!(r.keys, vec!["ORDER_7"]);
    // The operation stays visible as an attribute.
    assert_eq!(
        r.attr("messaging.operation").and_then(AttrValue::as_str),
        Some("process")
    );
}

#[test]
fn current_name_wins_over_older_one_which_is_kept() {
    let span = span_with(vec![
        kv("messaging.destination", s("old")),
        kv("messaging.destination.name", s("new")),
    ]);
    let r = &normalize_request(request(vec![span])).records[0];
    assert_eq!(r.topic.as_deref(), Some("new"));
    assert_eq!(
        r.attr("messaging.destination").and_then(AttrValue::as_str),
        Some("old")
    );
}

#[test]
fn unparsable_values_stay_attributes() {
    let mut span = span_with(vec![
        kv("messaging.destination.partition.id", s("abc")),
        kv("lasthop.hop", s("teleport")),
    ]);
    span.kind = 1; // internal, and a name that names no operation: no hop from them either
    span.name = "order_paid".into();
    let r = &normalize_request(request(vec![span])).records[0];
    assert_eq!(r.queue_id, None);
    assert_eq!(r.hop, None);
    assert_eq!(r.attributes.len(), 2);
}

#[test]
fn error_type_falls_back_to_exception_event() {
    let mut span = span_with(vec![kv("messaging.operation.type", s("process"))]);
    span.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    span.events = vec![span::Event {
        name: "exception".into(),
        attributes: vec![kv("exception.type", s("java.lang.IllegalStateException"))],
        ..Default::default()
    }];
    let r = &normalize_request(request(vec![span])).records[0];
    assert_eq!(r.status, StatusCode::Error);
    assert_eq!(r.status_message.as_deref(), Some("boom"));
    assert_eq!(
        r.error_type.as_deref(),
        Some("java.lang.IllegalStateException")
    );
    assert!(r.is_error());
}

#[test]
fn space_separated_keys_are_split() {
    let span = span_with(vec![kv(
        "messaging.rocketmq.message.keys",
        s("ORDER_1  USER_9"),
    )]);
    let r = &normalize_request(request(vec![span])).records[0];
    assert_eq!(r.keys, vec!["ORDER_1", "USER_9"]);
}

#[test]
fn bad_ids_are_rejected_and_counted() {
    let mut short = span_with(vec![]);
    short.trace_id = vec![1; 15];
    let mut zero = span_with(vec![]);
    zero.span_id = vec![0; 8];
    let out = normalize_request(request(vec![short, zero, span_with(vec![])]));
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.rejected, 2);
    assert!(out.first_reason.unwrap().contains("trace id"));
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        ".{0,6}".prop_map(|v| s(&v)),
        any::<i64>().prop_map(i),
        any::<bool>().prop_map(|b| AnyValue {
            value: Some(any_value::Value::BoolValue(b))
        }),
        Just(AnyValue { value: None }),
    ]
}

const LIFTED: &[&str] = &[
    "lasthop.hop",
    "messaging.message.id",
    "messaging.message_id",
    "messaging.destination.name",
    "messaging.destination",
    "messaging.destination.partition.id",
    "lasthop.queue.offset",
    "messaging.kafka.message.offset",
    "messaging.consumer.group.name",
    "messaging.rocketmq.client_group",
    "lasthop.broker",
    "lasthop.broker.epoch",
    "lasthop.commitlog.offset",
    "error.type",
];

proptest! {
    /// Every input attribute is accounted for: lifted into a field, or kept.
    #[test]
    fn no_attribute_is_lost(
        attrs in prop::collection::vec((prop::sample::select(LIFTED.to_vec()), any_value()), 0..8),
        extra in prop::collection::vec(("[a-z]{1,6}", any_value()), 0..4),
    ) {
        let kvs: Vec<KeyValue> = attrs.iter().map(|(k, v)| kv(k, v.clone()))
            .chain(extra.iter().map(|(k, v)| kv(k, v.clone()))).collect();
        let r = normalize_span(span_with(kvs.clone()), "", "svc", &[]).unwrap();
        for a in &r.attributes {
            prop_assert!(kvs.iter().any(|kv| kv.key == a.key));
        }
        // Each attribute that left `attributes` was lifted into its field
        // (a field may also be derived otherwise: the hop from the span's
        // kind, a consumer's group from its destination).
        let count = |key: &str, keys: &mut dyn Iterator<Item = &str>| keys.filter(|k| *k == key).count();
        let mut consumed = 0;
        for key in LIFTED {
            let n = count(key, &mut kvs.iter().map(|k| k.key.as_str()))
                - count(key, &mut r.attributes.iter().map(|a| a.key.as_str()));
            prop_assert!(n <= 1, "{key} lifted {n} times");
            if n == 1 {
                let field = match *key {
                    "lasthop.hop" => r.hop.is_some(),
                    "messaging.message.id" | "messaging.message_id" => r.message_id.is_some(),
                    "messaging.destination.name" | "messaging.destination" => r.topic.is_some(),
                    "messaging.destination.partition.id" => r.queue_id.is_some(),
                    "lasthop.queue.offset" | "messaging.kafka.message.offset" => r.queue_offset.is_some(),
                    "messaging.consumer.group.name" | "messaging.rocketmq.client_group" => r.group.is_some(),
                    "lasthop.broker" => r.broker.is_some(),
                    "lasthop.broker.epoch" => r.epoch.is_some(),
                    "lasthop.commitlog.offset" => r.commitlog_offset.is_some(),
                    _ => r.error_type.is_some(),
                };
                prop_assert!(field, "{key} left the attributes but its field is empty");
            }
            consumed += n;
        }
        prop_assert_eq!(consumed + r.attributes.len(), kvs.len());
    }

    /// A span written with the older names reads as the same record as one
    /// written with the current names.
    #[test]
    fn older_names_normalize_like_current_ones(
        msg in "[A-Z0-9]{1,12}", topic in "[a-z_]{1,10}", offset in 0u64..1 << 40,
        group in "[a-z-]{1,10}", op in prop::sample::select(vec!["publish", "receive", "process"]),
    ) {
        let current = span_with(vec![
            kv("messaging.operation.type", s(op)), kv("messaging.message.id", s(&msg)),
            kv("messaging.destination.name", s(&topic)), kv("messaging.kafka.offset", i(offset as i64)),
            kv("messaging.consumer.group.name", s(&group)),
        ]);
        let older = span_with(vec![
            kv("messaging.operation", s(op)), kv("messaging.message_id", s(&msg)),
            kv("messaging.destination", s(&topic)), kv("messaging.kafka.message.offset", i(offset as i64)),
            kv("messaging.rocketmq.client_group", s(&group)),
        ]);
        let mut a = normalize_span(current, "", "svc", &[]).unwrap();
        let mut b = normalize_span(older, "", "svc", &[]).unwrap();
        prop_assert_eq!(a.attributes.len(), 1);
        prop_assert_eq!(b.attributes.len(), 1);
        a.attributes.clear();
        b.attributes.clear();
        prop_assert_eq!(a, b);
    }

    /// Arbitrary ids never panic: they normalize or are rejected.
    #[test]
    fn arbitrary_ids_never_panic(t in prop::collection::vec(any::<u8>(), 0..20), sp in prop::collection::vec(any::<u8>(), 0..10)) {
        let mut span = span_with(vec![]);
        span.trace_id = t.clone();
        span.span_id = sp.clone();
        let ok = normalize_span(span, "", "svc", &[]).is_ok();
        prop_assert_eq!(ok, t.len() == 16 && sp.len() == 8 && t.iter().any(|b| *b != 0) && sp.iter().any(|b| *b != 0));
    }
}

/// One span of scope `scope`, kind and name as the library writes them.
fn library_span(scope: &str, kind: i32, name: &str, attrs: Vec<KeyValue>) -> SpanRecord {
    let mut span = span_with(attrs);
    span.kind = kind;
    span.name = name.into();
    normalize_span(span, scope, "svc", &[]).unwrap()
}

#[test]
fn the_java_agents_kafka_spans_meet_on_topic_partition_and_offset() {
    let send = library_span(
        "io.opentelemetry.kafka-clients-0.11",
        4,
        "orders publish",
        vec![
            kv("messaging.system", s("kafka")),
            kv("messaging.operation", s("publish")),
            kv("messaging.destination.name", s("orders")),
            kv("messaging.kafka.destination.partition", i(2)),
            kv("messaging.kafka.message.offset", i(17)),
            kv("messaging.kafka.message.key", s("ORDER_42")),
        ],
    );
    let process = library_span(
        "io.opentelemetry.kafka-clients-0.11",
        5,
        "orders process",
        vec![
            kv("messaging.system", s("kafka")),
            kv("messaging.operation", s("process")),
            kv("messaging.destination.name", s("orders")),
            kv("messaging.destination.partition.id", s("2")),
            kv("messaging.kafka.offset", i(17)),
            kv("messaging.consumer.group.name", s("red-packet")),
        ],
    );
    assert_eq!(
        (send.hop, process.hop),
        (Some(Hop::Send), Some(Hop::Process))
    );
    assert_eq!(send.message_id.as_deref(), Some("orders.2.17"));
    assert_eq!(process.message_id, send.message_id);
    assert_eq!(send.keys, vec!["ORDER_42".to_owned()]);
    assert_eq!(process.group.as_deref(), Some("red-packet"));
}

#[test]
fn the_java_agents_rocketmq_spans_without_a_group_are_grouped_by_topic() {
    let send = library_span(
        "io.opentelemetry.rocketmq-client-4.8",
        4,
        "order_paid publish",
        vec![
            kv("messaging.system", s("rocketmq")),
            kv("messaging.operation", s("publish")),
            kv("messaging.destination.name", s("order_paid")),
            kv("messaging.message.id", s("7F0000016D5C18B4AAC2")),
            kv("messaging.rocketmq.send_result", s("SEND_OK")),
        ],
    );
    let process = library_span(
        "io.opentelemetry.rocketmq-client-4.8",
        5,
        "order_paid process",
        vec![
            kv("messaging.system", s("rocketmq")),
            kv("messaging.operation", s("process")),
            kv("messaging.destination.name", s("order_paid")),
            kv("messaging.message.id", s("7F0000016D5C18B4AAC2")),
            kv("messaging.rocketmq.queue_id", i(3)),
            kv("messaging.rocketmq.queue_offset", i(41)),
        ],
    );
    assert_eq!(send.hop, Some(Hop::Send));
    assert_eq!(
        send.attr("messaging.rocketmq.send_result")
            .and_then(AttrValue::as_str),
        Some("SEND_OK")
    );
    assert_eq!(process.hop, Some(Hop::Process));
    assert_eq!(
        (process.queue_id, process.queue_offset),
        (Some(3), Some(41))
    );
    assert_eq!(process.group.as_deref(), Some("order_paid"));
}

#[test]
fn pika_and_celery_consumer_spans_are_the_processing() {
    let pika = library_span(
        "opentelemetry.instrumentation.pika.pika_instrumentor",
        5,
        "red-packet receive",
        vec![
            kv("messaging.system", s("rabbitmq")),
            kv("messaging.operation", s("receive")),
            kv("messaging.destination", s("red-packet")),
            kv("messaging.message.id", s("msg-1")),
        ],
    );
    assert_eq!(pika.hop, Some(Hop::Process));
    assert_eq!(
        pika.group.as_deref(),
        Some("red-packet"),
        "the queue is the group"
    );
    let mut retried = span_with(vec![
        kv("messaging.message.id", s("task-1")),
        kv("messaging.destination", s("celery")),
        kv("celery.state", s("RETRY")),
        kv("celery.retry.reason", s("Retry in 0.2s")),
    ]);
    retried.kind = 5;
    retried.name = "run/tasks.grant_red_packet".into();
    let run = normalize_span(retried, "opentelemetry.instrumentation.celery", "svc", &[]).unwrap();
    assert_eq!(run.hop, Some(Hop::Process));
    assert!(run.is_error(), "a retried attempt failed");
    assert_eq!(run.error_type.as_deref(), Some("Retry: Retry in 0.2s"));
    let aio = library_span(
        "opentelemetry.instrumentation.aio_pika",
        4,
        ",red-packet send",
        vec![kv("messaging.destination", s(",red-packet"))],
    );
    assert_eq!(
        (aio.hop, aio.topic.as_deref()),
        (Some(Hop::Send), Some("red-packet"))
    );
}

#[test]
fn without_a_shared_id_a_message_is_its_producer_spans_context() {
    // kafka-python: the consumer span's parent is the producer's span.
    let producer = library_span(
        "opentelemetry.instrumentation.kafka",
        4,
        "orders send",
        vec![
            kv("messaging.system", s("kafka")),
            kv("messaging.destination", s("orders")),
        ],
    );
    let mut consumed = span_with(vec![
        kv("messaging.system", s("kafka")),
        kv("messaging.destination", s("orders")),
    ]);
    consumed.kind = 5;
    consumed.name = "orders receive".into();
    consumed.span_id = vec![9; 8];
    consumed.parent_span_id = vec![2; 8]; // span_with's span id: the producer's
    let consumer =
        normalize_span(consumed, "opentelemetry.instrumentation.kafka", "svc", &[]).unwrap();
    assert_eq!(
        producer.message_id.as_deref(),
        Some(format!("{}-{}", "01".repeat(16), "02".repeat(8)).as_str())
    );
    assert_eq!(consumer.message_id, producer.message_id);
    assert_eq!(consumer.hop, Some(Hop::Receive));

    // confluent-kafka: the process span links to the producer's span; its
    // own id (topic.partition.offset) is kept as an attribute.
    let mut processed = span_with(vec![
        kv("messaging.system", s("kafka")),
        kv("messaging.operation", s("process")),
        kv("messaging.destination", s("orders")),
        kv("messaging.message.id", s("orders.0.41")),
    ]);
    processed.kind = 5;
    processed.name = "orders process".into();
    processed.span_id = vec![7; 8];
    processed.links = vec![span::Link {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        ..Default::default()
    }];
    let process = normalize_span(
        processed,
        "opentelemetry.instrumentation.confluent_kafka",
        "svc",
        &[],
    )
    .unwrap();
    assert_eq!(process.message_id, producer.message_id);
    assert_eq!(
        process
            .attr("lasthop.library.message_id")
            .and_then(AttrValue::as_str),
        Some("orders.0.41")
    );
}
