use serde::{Deserialize, Serialize};

use crate::{AttrValue, Hop};

/// Span kind, as OpenTelemetry defines it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// From the OTLP enum number; unknown numbers are `Unspecified`.
    pub fn from_otlp(kind: i32) -> Self {
        match kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// The lowercase name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// Span status code, as OpenTelemetry defines it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// From the OTLP enum number; unknown numbers are `Unset`.
    pub fn from_otlp(code: i32) -> Self {
        match code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    /// The lowercase name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// A key and its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub key: String,
    pub value: AttrValue,
}

impl Attribute {
    pub fn new(key: impl Into<String>, value: AttrValue) -> Self {
        Attribute {
            key: key.into(),
            value,
        }
    }
}

/// A link to another span, e.g. from a batch span to each message's trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
}

/// An event inside a span, e.g. a recorded exception.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub time_ns: u64,
    pub name: String,
    pub attributes: Vec<Attribute>,
}

/// One span, flattened: the fields lasthop reasons about are typed columns,
/// everything else stays in `attributes`.
///
/// Ids are lowercase hex (`trace_id` 32 characters, `span_id` 16); records
/// read from sources without trace context (RocketMQ trace records, logs)
/// have an empty `trace_id` and a synthetic `span_id`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub links: Vec<SpanLink>,
    /// `service.name` of the resource that emitted the span.
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status: StatusCode,
    pub status_message: Option<String>,
    /// `error.type`, or the type of the span's exception event.
    pub error_type: Option<String>,
    /// `lasthop.hop`, or the hop implied by `messaging.operation.type`.
    pub hop: Option<Hop>,
    pub message_id: Option<String>,
    /// Business keys, e.g. the order id.
    pub keys: Vec<String>,
    pub topic: Option<String>,
    pub queue_id: Option<u32>,
    pub broker: Option<String>,
    pub epoch: Option<u64>,
    pub commitlog_offset: Option<u64>,
    pub commitlog_size: Option<u64>,
    pub queue_offset: Option<u64>,
    pub range_start: Option<u64>,
    pub range_end: Option<u64>,
    /// Consumer group.
    pub group: Option<String>,
    /// Span attributes not lifted into the fields above.
    pub attributes: Vec<Attribute>,
    /// Resource attributes other than `service.name`.
    pub resource: Vec<Attribute>,
    pub events: Vec<SpanEvent>,
}

impl SpanRecord {
    /// A remaining span attribute by key.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }

    /// Whether the span recorded a failure.
    pub fn is_error(&self) -> bool {
        self.status == StatusCode::Error || self.error_type.is_some()
    }

    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attr_value() -> impl Strategy<Value = AttrValue> {
        let leaf = prop_oneof![
            ".{0,8}".prop_map(AttrValue::Str),
            any::<bool>().prop_map(AttrValue::Bool),
            any::<i64>().prop_map(AttrValue::Int),
            (-1e9f64..1e9).prop_map(AttrValue::Double),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(AttrValue::Array)
        })
    }

    fn record() -> impl Strategy<Value = SpanRecord> {
        (
            "[0-9a-f]{32}",
            "[0-9a-f]{16}",
            proptest::option::of("[0-9a-f]{16}"),
            ".{0,10}",
            prop::sample::select(Hop::ALL.to_vec()),
            proptest::option::of(any::<u64>()),
            prop::collection::vec("[A-Z_0-9]{1,8}", 0..3),
            prop::collection::vec(("[a-z.]{1,10}", attr_value()), 0..4),
        )
            .prop_map(
                |(trace_id, span_id, parent, service, hop, offset, keys, attrs)| SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id: parent,
                    service,
                    hop: Some(hop),
                    commitlog_offset: offset,
                    keys,
                    attributes: attrs
                        .into_iter()
                        .map(|(k, v)| Attribute::new(k, v))
                        .collect(),
                    ..SpanRecord::default()
                },
            )
    }

    proptest! {
        #[test]
        fn record_round_trips_through_postcard_and_json(rec in record()) {
            let bytes = postcard::to_stdvec(&rec).unwrap();
            prop_assert_eq!(&postcard::from_bytes::<SpanRecord>(&bytes).unwrap(), &rec);
            let json = serde_json::to_string(&rec).unwrap();
            let back: SpanRecord = serde_json::from_str(&json).unwrap();
            // JSON cannot tell 1.0 from 1; compare what JSON can carry.
            prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }
    }
}
