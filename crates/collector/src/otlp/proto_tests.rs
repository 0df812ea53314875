//! The direct decoder against the generic path (prost into
//! opentelemetry-proto's structs, then `normalize_request`) as the oracle.

use super::*;
use crate::normalize::normalize_request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use proptest::prelude::*;
use prost::Message;

/// What the generic path makes of `bytes`, if prost accepts them.
fn oracle(bytes: &[u8]) -> Option<Normalized> {
    ExportTraceServiceRequest::decode(bytes)
        .ok()
        .map(normalize_request)
}

/// Equality that also holds for NaN doubles: the records' exact bytes.
fn same(a: &Normalized, b: &Normalized) -> bool {
    let bytes = |n: &Normalized| postcard::to_stdvec(&n.records).expect("encode");
    bytes(a) == bytes(b) && a.rejected == b.rejected && a.first_reason == b.first_reason
}

fn leaf_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        ".{0,6}".prop_map(|s| Some(Value::StringValue(s))),
        "[0-9]{1,3}".prop_map(|s| Some(Value::StringValue(s))),
        any::<bool>().prop_map(|b| Some(Value::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(Value::IntValue(i))),
        (-1e12f64..1e12).prop_map(|d| Some(Value::DoubleValue(d))),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(|b| Some(Value::BytesValue(b))),
        any::<i32>().prop_map(|i| Some(Value::StringValueStrindex(i))),
        Just(None),
    ]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    leaf_value()
        .prop_map(|value| AnyValue { value })
        .prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue { values })),
                }),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..3).prop_map(|kvs| AnyValue {
                    value: Some(Value::KvlistValue(KeyValueList {
                        values: kvs
                            .into_iter()
                            .map(|(key, v)| KeyValue {
                                key,
                                value: Some(v),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                }),
            ]
        })
}

/// Keys lasthop lifts, older names, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "lasthop.hop",
            "messaging.operation.type",
            "messaging.operation",
            "messaging.message.id",
            "messaging.message_id",
            "messaging.rocketmq.message.keys",
            "messaging.kafka.message.key",
            "messaging.destination.name",
            "messaging.destination.partition.id",
            "lasthop.queue.offset",
            "messaging.consumer.group.name",
            "lasthop.broker",
            "lasthop.broker.epoch",
            "lasthop.commitlog.offset",
            "error.type",
            "service.name",
            "exception.type",
        ])
        .prop_map(str::to_owned),
        "[a-z.]{1,8}",
    ]
}

fn key_values(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec((key(), prop::option::weighted(0.9, any_value())), 0..max).prop_map(
        |kvs| {
            kvs.into_iter()
                .map(|(key, value)| KeyValue {
                    key,
                    value,
                    ..Default::default()
                })
                .collect()
        },
    )
}

/// Mostly valid ids, sometimes empty, short or all zero.
fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), len..=len),
        1 => Just(Vec::new()),
        1 => Just(vec![0; len]),
        1 => prop::collection::vec(any::<u8>(), 1..len),
    ]
}

fn hop_value() -> impl Strategy<Value = KeyValue> {
    prop::sample::select(vec![
        "send", "store", "flush", "receive", "process", "bogus",
    ])
    .prop_map(|hop| KeyValue {
        key: "lasthop.hop".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(hop.into())),
        }),
        ..Default::default()
    })
}

fn span() -> impl Strategy<Value = Span> {
    (
        (
            id(16),
            id(8),
            id(8),
            ".{0,8}",
            0i32..7,
            any::<u64>(),
            any::<u64>(),
        ),
        (key_values(10), prop::option::of(hop_value())),
        prop::collection::vec(
            (
                any::<u64>(),
                prop::sample::select(vec!["exception", "log"]),
                key_values(3),
            ),
            0..3,
        ),
        prop::collection::vec((id(16), id(8), ".{0,4}"), 0..3),
        prop::option::of((0i32..4, ".{0,6}")),
        (".{0,6}", any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |(head, (mut attributes, hop), events, links, status, extra)| {
                let (trace_id, span_id, parent_span_id, name, kind, start, end) = head;
                attributes.extend(hop);
                Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name,
                    kind,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes,
                    events: events
                        .into_iter()
                        .map(|(time, name, attributes)| span::Event {
                            time_unix_nano: time,
                            name: name.into(),
                            attributes,
                            dropped_attributes_count: 1,
                        })
                        .collect(),
                    links: links
                        .into_iter()
                        .map(|(trace_id, span_id, trace_state)| span::Link {
                            trace_id,
                            span_id,
                            trace_state,
                            ..Default::default()
                        })
                        .collect(),
                    status: status.map(|(code, message)| Status { code, message }),
                    trace_state: extra.0,
                    flags: extra.1,
                    dropped_attributes_count: extra.2,
                    ..Default::default()
                }
            },
        )
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (
        prop::option::of(".{0,4}"),
        prop::collection::vec(span(), 0..4),
    )
        .prop_map(|(scope, spans)| ScopeSpans {
            scope: scope.map(|name| InstrumentationScope {
                name,
                ..Default::default()
            }),
            spans,
            schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
        });
    let resource = (
        prop::option::of(key_values(5)),
        prop::collection::vec(scope, 0..3),
    )
        .prop_map(|(attributes, scope_spans)| ResourceSpans {
            resource: attributes.map(|attributes| Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans,
            schema_url: String::new(),
        });
    prop::collection::vec(resource, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any request prost encodes reads exactly as the generic path reads it.
    #[test]
    fn decodes_like_the_generic_path(req in request()) {
        let bytes = req.encode_to_vec();
        let direct = decode_request(&bytes).expect("a valid request decodes");
        let generic = normalize_request(req);
        prop_assert!(same(&direct, &generic), "direct {direct:#?}\ngeneric {generic:#?}");
    }

    /// Corrupted bytes: whatever prost accepts, the direct decoder accepts
    /// and reads the same; nothing panics.
    #[test]
    fn corrupted_requests_read_like_prost_reads_them(
        req in request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = req.encode_to_vec();
        prop_assume!(!bytes.is_empty());
        for (at, byte) in flips {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let direct = decode_request(&bytes);
        if let Some(generic) = oracle(&bytes) {
            let direct = direct.expect("what prost accepts is accepted");
            prop_assert!(same(&direct, &generic));
        }
    }
}

/// `key` and `len`, protobuf-encoded, then `body`.
fn field(tag: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(tag, WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn valid_span(name: &str) -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        name: name.into(),
        attributes: vec![string_kv("messaging.message.id", "M1")],
        ..Default::default()
    }
}

#[test]
fn a_resource_after_its_spans_still_names_them() {
    let scope = ScopeSpans {
        spans: vec![valid_span("send")],
        ..Default::default()
    };
    let resource = Resource {
        attributes: vec![
            string_kv("service.name", "order-service"),
            string_kv("host.name", "h1"),
        ],
        ..Default::default()
    };
    // ResourceSpans with field 2 (scope_spans) before field 1 (resource).
    let mut resource_spans = field(2, &scope.encode_to_vec());
    resource_spans.extend(field(1, &resource.encode_to_vec()));
    let bytes = field(1, &resource_spans);
    let direct = decode_request(&bytes).unwrap();
    assert_eq!(direct.records.len(), 1);
    assert_eq!(direct.records[0].service, "order-service");
    assert_eq!(direct.records[0].resource.len(), 1);
    assert!(same(&direct, &oracle(&bytes).unwrap()));
}

#[test]
fn a_span_sent_in_two_pieces_merges_as_protobuf_merges() {
    let first = Span {
        status: Some(Status {
            code: 2,
            message: String::new(),
        }),
        attributes: vec![string_array_kv("messaging.rocketmq.message.keys", &["K1"])],
        ..valid_span("process")
    };
    let second = Span {
        trace_id: Vec::new(),
        span_id: Vec::new(),
        name: String::new(),
        status: Some(Status {
            code: 0,
            message: "boom".into(),
        }),
        attributes: vec![string_kv("error.type", "Timeout")],
        ..Default::default()
    };
    // One span message whose bytes are two encodings back to back; so is its
    // resource, and its keys' array value.
    let mut span_bytes = first.encode_to_vec();
    span_bytes.extend(second.encode_to_vec());
    let scope = field(2, &span_bytes);
    let mut resource_spans = field(
        1,
        &Resource {
            attributes: vec![string_kv("service.name", "a")],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    resource_spans.extend(field(
        1,
        &Resource {
            attributes: vec![string_kv("k", "v")],
            ..Default::default()
        }
        .encode_to_vec(),
    ));
    resource_spans.extend(field(2, &scope));
    let bytes = field(1, &resource_spans);

    let direct = decode_request(&bytes).unwrap();
    let r = &direct.records[0];
    assert_eq!(
        (r.status, r.status_message.as_deref()),
        (lasthop_vocab::StatusCode::Error, Some("boom"))
    );
    assert_eq!(r.error_type.as_deref(), Some("Timeout"));
    assert_eq!(r.keys, vec!["K1"]);
    assert_eq!((r.service.as_str(), r.resource.len()), ("a", 1));
    assert!(same(&direct, &oracle(&bytes).unwrap()));
}

/// A string-array attribute.
fn string_array_kv(key: &str, items: &[&str]) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: items
                    .iter()
                    .map(|s| AnyValue {
                        value: Some(Value::StringValue((*s).into())),
                    })
                    .collect(),
            })),
        }),
        ..Default::default()
    }
}

#[test]
fn errors_name_the_field() {
    // A span name that is not UTF-8.
    let mut span = valid_span("x").encode_to_vec();
    let at = span.iter().position(|b| *b == b'x').unwrap();
    span[at] = 0xff;
    let bytes = field(1, &field(2, &field(2, &span)));
    let e = decode_request(&bytes).unwrap_err().to_string();
    assert_eq!(e, "Span.name: string is not valid UTF-8");

    // A trace id sent as a varint.
    let bytes = field(1, &field(2, &field(2, &[0x08, 0x01])));
    let e = decode_request(&bytes).unwrap_err().to_string();
    assert!(e.starts_with("Span.trace_id: wire type Varint"), "{e}");

    // A length running past the end.
    let e = decode_request(&[0x0a, 0x05, 0x12]).unwrap_err().to_string();
    assert_eq!(
        e,
        "ExportTraceServiceRequest.resource_spans: field runs past the end of its message"
    );
}

#[test]
fn values_nested_too_deep_are_refused_not_overflowed() {
    let mut value = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 0..MAX_VALUE_DEPTH + 1 {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let span = Span {
        attributes: vec![KeyValue {
            key: "deep".into(),
            value: Some(value),
            ..Default::default()
        }],
        ..valid_span("deep")
    };
    let bytes = field(1, &field(2, &field(2, &span.encode_to_vec())));
    assert!(matches!(decode_request(&bytes), Err(ProtoError::TooDeep)));
}

#[test]
fn a_value_sent_in_two_pieces_merges_lists_and_arrays() {
    let list = |key: &str, n: i64| AnyValue {
        value: Some(Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: key.into(),
                value: Some(AnyValue {
                    value: Some(Value::IntValue(n)),
                }),
                ..Default::default()
            }],
        })),
    };
    let array = |item: &str| string_array_kv("", &[item]).value.unwrap();
    // KeyValue { key, value, value }: the two values merge into one.
    let attribute = |key: &str, first: AnyValue, second: AnyValue| {
        let mut kv = field(1, key.as_bytes());
        kv.extend(field(2, &first.encode_to_vec()));
        kv.extend(field(2, &second.encode_to_vec()));
        field(9, &kv)
    };
    let mut span = valid_span("merge").encode_to_vec();
    span.extend(attribute("list", list("a", 1), list("b", 2)));
    span.extend(attribute("array", array("x"), array("y")));
    span.extend(attribute("replaced", array("x"), list("c", 3)));
    let bytes = field(1, &field(2, &field(2, &span)));

    let direct = decode_request(&bytes).unwrap();
    let r = &direct.records[0];
    assert_eq!(
        r.attr("list"),
        Some(&AttrValue::Str(r#"{"a":1,"b":2}"#.into()))
    );
    assert_eq!(
        r.attr("array"),
        Some(&AttrValue::Array(vec![
            AttrValue::Str("x".into()),
            AttrValue::Str("y".into())
        ]))
    );
    assert_eq!(
        r.attr("replaced"),
        Some(&AttrValue::Str(r#"{"c":3}"#.into()))
    );
    assert!(same(&direct, &oracle(&bytes).unwrap()));
}
