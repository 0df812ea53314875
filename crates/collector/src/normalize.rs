//! OTLP span (with its resource) -> [`SpanRecord`].
//!
//! Both decoders end in `normalize_parts`: protobuf requests through
//! `otlp/proto.rs`, which reads the wire format straight into `SpanParts`;
//! opentelemetry-proto's structs (JSON bodies, OTLP JSON files) through
//! [`normalize_request`].
//!
//! Attributes with a field of their own are lifted into it, trying the
//! current OpenTelemetry name, then lasthop's, then the older names SDKs and
//! agents still send. A lifted attribute leaves `attributes`; one whose value
//! does not parse (a queue id of `"abc"`) stays there. Spans without a valid
//! trace or span id are rejected and counted (OTLP partial success).

use lasthop_vocab::{
    AttrValue, Attribute, Hop, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode, attr,
};

use crate::instrumentation::{self, Shape, hop_of_operation};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;

/// The spans of one request, normalized, and what had to be refused.
#[derive(Debug, Default)]
pub struct Normalized {
    pub records: Vec<SpanRecord>,
    /// Spans refused (bad ids); reported through OTLP partial success.
    pub rejected: u64,
    /// The first reason a span was refused, for the partial-success message.
    pub first_reason: Option<String>,
}

/// Normalizes every span of an export request, taking its strings rather than copying them.
pub fn normalize_request(request: ExportTraceServiceRequest) -> Normalized {
    let mut out = Normalized::default();
    for resource_spans in request.resource_spans {
        let resource_attrs = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        let mut service = String::from("unknown_service");
        let mut resource = Vec::new();
        for kv in resource_attrs {
            match (kv.key.as_str(), convert_value(kv.value)) {
                (attr::SERVICE_NAME, AttrValue::Str(s)) => service = s,
                (_, value) => resource.push(Attribute::new(kv.key, value)),
            }
        }
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for span in scope_spans.spans {
                match normalize_span(span, &scope, &service, &resource) {
                    Ok(record) => out.records.push(record),
                    Err(reason) => {
                        out.rejected += 1;
                        out.first_reason.get_or_insert(reason);
                    }
                }
            }
        }
    }
    out
}

/// Normalizes one span of instrumentation scope `scope`; `Err` carries why it was refused.
pub fn normalize_span(
    span: Span,
    scope: &str,
    service: &str,
    resource: &[Attribute],
) -> Result<SpanRecord, String> {
    let (code, message) = span
        .status
        .map_or((0, String::new()), |s| (s.code, s.message));
    let parts = SpanParts {
        trace_id: &span.trace_id,
        span_id: &span.span_id,
        parent_span_id: &span.parent_span_id,
        scope,
        name: span.name,
        kind: span.kind,
        start_ns: span.start_time_unix_nano,
        end_ns: span.end_time_unix_nano,
        attributes: span
            .attributes
            .into_iter()
            .map(|kv| (kv.key, convert_value(kv.value)))
            .collect(),
        events: span
            .events
            .into_iter()
            .map(|e| SpanEvent {
                time_ns: e.time_unix_nano,
                name: e.name,
                attributes: convert_attributes(e.attributes),
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|l| (l.trace_id.as_slice(), l.span_id.as_slice()))
            .collect(),
        status_code: code,
        status_message: message,
    };
    normalize_parts(parts, service, resource)
}

/// One span as a decoder hands it over: ids still raw bytes, attributes
/// converted but not yet lifted, their keys owned (`String`) or borrowed
/// from the request (`&str`, so a lifted key is never copied).
#[derive(Debug)]
pub(crate) struct SpanParts<'a, K> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    /// The instrumentation scope's name (empty when none).
    pub scope: &'a str,
    pub name: String,
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(K, AttrValue)>,
    pub events: Vec<SpanEvent>,
    /// (trace id, span id) of each link.
    pub links: Vec<(&'a [u8], &'a [u8])>,
    /// OTLP status code; 0 when the span has no status.
    pub status_code: i32,
    /// Empty when the span has no status or no message.
    pub status_message: String,
}

/// The lifting rules, shared by every decoder.
pub(crate) fn normalize_parts<K: AsRef<str> + Into<String>>(
    span: SpanParts<'_, K>,
    service: &str,
    resource: &[Attribute],
) -> Result<SpanRecord, String> {
    let trace_id = id_hex(span.trace_id, 16)
        .ok_or_else(|| format!("span {:?} has an invalid trace id", span.name))?;
    let span_id = id_hex(span.span_id, 8)
        .ok_or_else(|| format!("span {:?} has an invalid span id", span.name))?;
    let parent_span_id = id_hex(span.parent_span_id, 8);

    let mut lifter = Lifter {
        attrs: span.attributes.into_iter().map(Some).collect(),
    };
    let kind = SpanKind::from_otlp(span.kind);
    let hop = lifter.take(&[attr::HOP], |v| v.as_str()?.parse::<Hop>().ok());
    let hop = hop.or_else(|| {
        let operation = lifter.peek(
            &[
                attr::MESSAGING_OPERATION_TYPE,
                attr::MESSAGING_OPERATION_NAME,
                attr::legacy::MESSAGING_OPERATION,
            ],
            |v| {
                v.as_str()
                    .filter(|op| hop_of_operation(op).is_some())
                    .map(str::to_owned)
            },
        );
        instrumentation::hop(Shape {
            scope: span.scope,
            kind,
            name: &span.name,
            operation: operation.as_deref(),
            messaging: lifter.any_messaging(),
        })
    });
    let message_id = lifter.take_text(&[
        attr::MESSAGING_MESSAGE_ID,
        attr::legacy::MESSAGING_MESSAGE_ID,
    ]);
    let keys = lifter
        .take(
            &[
                attr::MESSAGING_ROCKETMQ_MESSAGE_KEYS,
                attr::MESSAGING_KAFKA_MESSAGE_KEY,
            ],
            |v| Some(split_keys(v)),
        )
        .unwrap_or_default();
    let topic = lifter.take_text(&[
        attr::MESSAGING_DESTINATION_NAME,
        attr::legacy::MESSAGING_DESTINATION,
        attr::MESSAGING_RABBITMQ_ROUTING_KEY,
        attr::legacy::MESSAGING_RABBITMQ_ROUTING_KEY,
    ]);
    let topic = instrumentation::destination(span.scope, topic);
    let queue_id = lifter.take(
        &[
            attr::MESSAGING_DESTINATION_PARTITION_ID,
            attr::legacy::MESSAGING_KAFKA_PARTITION,
            attr::legacy::MESSAGING_KAFKA_PARTITION_OLD,
            attr::legacy::MESSAGING_ROCKETMQ_QUEUE_ID,
        ],
        |v| {
            v.as_u64()
                .or_else(|| v.as_str()?.parse().ok())
                .and_then(|n| u32::try_from(n).ok())
        },
    );
    let queue_offset = lifter.take(
        &[
            attr::QUEUE_OFFSET,
            attr::MESSAGING_KAFKA_OFFSET,
            attr::legacy::MESSAGING_KAFKA_MESSAGE_OFFSET,
            attr::legacy::MESSAGING_ROCKETMQ_QUEUE_OFFSET,
        ],
        AttrValue::as_u64,
    );
    let message_id = message_id.or_else(|| {
        // Range spans (flush, commits) have no id either: only a span with a
        // partition and an offset can be a Kafka record.
        queue_id.zip(queue_offset)?;
        let system = lifter.peek(&[attr::MESSAGING_SYSTEM], |v| v.as_str().map(str::to_owned));
        instrumentation::kafka_record_id(
            system.as_deref(),
            topic.as_deref(),
            queue_id,
            queue_offset,
        )
    });
    let group = lifter.take_text(&[
        attr::MESSAGING_CONSUMER_GROUP_NAME,
        attr::legacy::MESSAGING_ROCKETMQ_CLIENT_GROUP,
        attr::legacy::MESSAGING_KAFKA_CONSUMER_GROUP,
    ]);
    // No group named: the destination a consumer reads is its group of
    // competing consumers (a RabbitMQ or Celery queue).
    let group = group.or_else(|| {
        matches!(hop, Some(Hop::Receive | Hop::Process | Hop::Settle))
            .then(|| topic.clone())
            .flatten()
    });
    let broker = lifter.take_text(&[attr::BROKER]);
    let epoch = lifter.take(&[attr::BROKER_EPOCH], AttrValue::as_u64);
    let commitlog_offset = lifter.take(&[attr::COMMITLOG_OFFSET], AttrValue::as_u64);
    let commitlog_size = lifter.take(&[attr::COMMITLOG_SIZE], AttrValue::as_u64);
    let range_start = lifter.take(&[attr::RANGE_START], AttrValue::as_u64);
    let range_end = lifter.take(&[attr::RANGE_END], AttrValue::as_u64);
    let error_type = lifter.take_text(&[attr::ERROR_TYPE]);

    let events = span.events;
    let status_code = StatusCode::from_otlp(span.status_code);
    let error_type = error_type.or_else(|| {
        (status_code == StatusCode::Error)
            .then(|| exception_type(&events))
            .flatten()
    });
    let error_type = error_type.or_else(|| {
        instrumentation::is_celery(span.scope)?;
        let text = |key| lifter.peek(&[key], |v| v.as_str().map(str::to_owned));
        instrumentation::celery_failure(
            text(attr::CELERY_STATE).as_deref(),
            text(attr::CELERY_RETRY_REASON).as_deref(),
        )
    });

    let links: Vec<SpanLink> = span
        .links
        .iter()
        .filter_map(|(trace_id, span_id)| {
            Some(SpanLink {
                trace_id: id_hex(trace_id, 16)?,
                span_id: id_hex(span_id, 8)?,
            })
        })
        .collect();
    // Libraries that give a message no id: its producer span's context is its id.
    let mut kept = Vec::new();
    let message_id = match instrumentation::context_id(
        span.scope,
        hop,
        (&trace_id, &span_id),
        parent_span_id.as_deref(),
        &links,
    ) {
        Some(id) => {
            if let Some(library_id) = message_id {
                kept.push(Attribute::new(
                    attr::LIBRARY_MESSAGE_ID,
                    AttrValue::Str(library_id),
                ));
            }
            Some(id)
        }
        None => message_id,
    };

    Ok(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        links,
        service: service.to_owned(),
        name: span.name,
        kind,
        start_ns: span.start_ns,
        end_ns: span.end_ns,
        status: status_code,
        status_message: Some(span.status_message).filter(|m| !m.is_empty()),
        error_type,
        hop,
        message_id,
        keys,
        topic,
        queue_id,
        broker,
        epoch,
        commitlog_offset,
        commitlog_size,
        queue_offset,
        range_start,
        range_end,
        group,
        attributes: lifter
            .attrs
            .into_iter()
            .flatten()
            .map(|(key, value)| Attribute::new(key, value))
            .chain(kept)
            .collect(),
        resource: resource.to_vec(),
        events,
    })
}

/// Span attributes not yet lifted into a field.
struct Lifter<K> {
    attrs: Vec<Option<(K, AttrValue)>>,
}

impl<K: AsRef<str>> Lifter<K> {
    /// The first attribute under one of `keys` (in that order) whose value
    /// `parse` accepts, removed from the remaining attributes.
    fn take<T>(&mut self, keys: &[&str], parse: impl Fn(&AttrValue) -> Option<T>) -> Option<T> {
        let (index, value) = self.find(keys, parse)?;
        self.attrs[index] = None;
        Some(value)
    }

    /// The first non-empty scalar under one of `keys`, as text; a string is moved, not copied.
    fn take_text(&mut self, keys: &[&str]) -> Option<String> {
        let (index, ()) = self.find(keys, |v| match v {
            AttrValue::Str(s) if s.is_empty() => None,
            AttrValue::Array(_) => None,
            _ => Some(()),
        })?;
        match self.attrs[index].take()?.1 {
            AttrValue::Str(s) => Some(s),
            other => other.scalar_text(),
        }
    }

    /// Whether any attribute is a messaging one (`messaging.*`).
    fn any_messaging(&self) -> bool {
        (self.attrs.iter().flatten()).any(|(k, _)| k.as_ref().starts_with("messaging."))
    }

    /// Like `take`, but the attribute stays.
    fn peek<T>(&self, keys: &[&str], parse: impl Fn(&AttrValue) -> Option<T>) -> Option<T> {
        self.find(keys, parse).map(|(_, value)| value)
    }

    fn find<T>(
        &self,
        keys: &[&str],
        parse: impl Fn(&AttrValue) -> Option<T>,
    ) -> Option<(usize, T)> {
        keys.iter().find_map(|key| {
            self.attrs.iter().enumerate().find_map(|(i, a)| {
                let (_, value) = a.as_ref().filter(|(k, _)| k.as_ref() == *key)?;
                parse(value).map(|v| (i, v))
            })
        })
    }
}

/// Keys arrive as a string array, or as one string of space-separated keys.
fn split_keys(value: &AttrValue) -> Vec<String> {
    value
        .to_strings()
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect()
}

fn exception_type(events: &[SpanEvent]) -> Option<String> {
    events
        .iter()
        .filter(|e| e.name == "exception")
        .find_map(|e| e.attributes.iter().find(|a| a.key == attr::EXCEPTION_TYPE))
        .and_then(|a| a.value.scalar_text())
}

/// Lowercase hex of an id of `len` bytes; `None` if the length is wrong or it is all zero.
fn id_hex(bytes: &[u8], len: usize) -> Option<String> {
    if bytes.len() != len || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(hex(bytes))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

pub(crate) fn convert_attributes(kvs: Vec<KeyValue>) -> Vec<Attribute> {
    kvs.into_iter()
        .map(|kv| Attribute::new(kv.key, convert_value(kv.value)))
        .collect()
}

fn convert_value(value: Option<AnyValue>) -> AttrValue {
    use any_value::Value;
    match value.and_then(|v| v.value) {
        None => AttrValue::Str(String::new()),
        Some(Value::StringValue(s)) => AttrValue::Str(s),
        Some(Value::BoolValue(b)) => AttrValue::Bool(b),
        Some(Value::IntValue(i)) => AttrValue::Int(i),
        Some(Value::DoubleValue(d)) => AttrValue::Double(d),
        Some(Value::ArrayValue(a)) => AttrValue::Array(
            a.values
                .into_iter()
                .map(|v| convert_value(Some(v)))
                .collect(),
        ),
        Some(Value::BytesValue(b)) => AttrValue::Str(hex(&b)),
        // An index into a profile's string table; meaningless without it.
        Some(Value::StringValueStrindex(i)) => AttrValue::Int(i64::from(i)),
        Some(Value::KvlistValue(list)) => kvlist_value(
            list.values
                .into_iter()
                .map(|kv| (kv.key, convert_value(kv.value))),
        ),
    }
}

/// A key-value list kept as the text of a JSON object (a later key wins).
pub(crate) fn kvlist_value(pairs: impl IntoIterator<Item = (String, AttrValue)>) -> AttrValue {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .into_iter()
        .map(|(key, value)| {
            let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
            (key, v)
        })
        .collect();
    AttrValue::Str(serde_json::Value::Object(map).to_string())
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
