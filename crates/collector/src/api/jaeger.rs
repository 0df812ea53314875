//! Span records in the JSON shape of Jaeger's HTTP query API (`/api/traces`),
//! so Jaeger UI and Grafana's Jaeger data source can browse lasthop's spans.

use std::collections::BTreeMap;

use lasthop_vocab::{AttrValue, Attribute, SpanRecord, attr};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Value>,
    pub processes: BTreeMap<String, Value>,
    pub warnings: Option<Vec<String>>,
}

/// Groups records by trace id, in the order their traces first appear.
pub fn traces(records: &[SpanRecord]) -> Vec<Trace> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_trace: BTreeMap<&str, Vec<&SpanRecord>> = BTreeMap::new();
    for r in records {
        by_trace.entry(&r.trace_id).or_insert_with(|| {
            order.push(&r.trace_id);
            Vec::new()
        });
        by_trace
            .get_mut(r.trace_id.as_str())
            .expect("inserted")
            .push(r);
    }
    order
        .into_iter()
        .map(|id| trace(id, &by_trace[id]))
        .collect()
}

fn trace(trace_id: &str, spans: &[&SpanRecord]) -> Trace {
    let mut processes = BTreeMap::new();
    let mut process_of: BTreeMap<&str, String> = BTreeMap::new();
    for r in spans {
        if !process_of.contains_key(r.service.as_str()) {
            let id = format!("p{}", process_of.len() + 1);
            processes.insert(
                id.clone(),
                json!({"serviceName": r.service, "tags": tags(&r.resource)}),
            );
            process_of.insert(&r.service, id);
        }
    }
    let spans = spans
        .iter()
        .map(|r| span(r, &process_of[r.service.as_str()]))
        .collect();
    Trace {
        trace_id: trace_id.to_owned(),
        spans,
        processes,
        warnings: None,
    }
}

fn span(r: &SpanRecord, process_id: &str) -> Value {
    let mut references = Vec::new();
    if let Some(parent) = &r.parent_span_id {
        references.push(json!({"refType": "CHILD_OF", "traceID": r.trace_id, "spanID": parent}));
    }
    for link in &r.links {
        references.push(
            json!({"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id}),
        );
    }
    let logs: Vec<Value> = r
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![tag("event", &AttrValue::Str(e.name.clone()))];
            fields.extend(tags(&e.attributes));
            json!({"timestamp": e.time_ns / 1000, "fields": fields})
        })
        .collect();
    json!({
        "traceID": r.trace_id,
        "spanID": r.span_id,
        "operationName": r.name,
        "references": references,
        "startTime": r.start_ns / 1000,
        "duration": r.duration_ns() / 1000,
        "tags": tags(&lifted_attributes(r)),
        "logs": logs,
        "processID": process_id,
        "warnings": null,
        "flags": 1,
    })
}

/// The record's attributes with its typed fields spelled back as attributes.
pub fn lifted_attributes(r: &SpanRecord) -> Vec<Attribute> {
    let s = |v: &str| AttrValue::Str(v.to_owned());
    let n = |v: u64| AttrValue::Int(v as i64);
    let mut out = vec![Attribute::new("span.kind", s(r.kind.as_str()))];
    if r.status != lasthop_vocab::StatusCode::Unset {
        out.push(Attribute::new(
            "otel.status_code",
            s(&r.status.as_str().to_uppercase()),
        ));
    }
    if r.status == lasthop_vocab::StatusCode::Error {
        out.push(Attribute::new("error", AttrValue::Bool(true)));
    }
    let strings = [
        ("otel.status_description", r.status_message.as_deref()),
        (attr::ERROR_TYPE, r.error_type.as_deref()),
        (attr::HOP, r.hop.map(|h| h.as_str())),
        (attr::MESSAGING_MESSAGE_ID, r.message_id.as_deref()),
        (attr::MESSAGING_DESTINATION_NAME, r.topic.as_deref()),
        (attr::MESSAGING_CONSUMER_GROUP_NAME, r.group.as_deref()),
        (attr::BROKER, r.broker.as_deref()),
    ];
    out.extend(
        strings
            .into_iter()
            .filter_map(|(k, v)| Some(Attribute::new(k, s(v?)))),
    );
    if !r.keys.is_empty() {
        let keys = r.keys.iter().map(|k| s(k)).collect();
        out.push(Attribute::new(
            attr::MESSAGING_ROCKETMQ_MESSAGE_KEYS,
            AttrValue::Array(keys),
        ));
    }
    let numbers = [
        (
            attr::MESSAGING_DESTINATION_PARTITION_ID,
            r.queue_id.map(u64::from),
        ),
        (attr::BROKER_EPOCH, r.epoch),
        (attr::COMMITLOG_OFFSET, r.commitlog_offset),
        (attr::COMMITLOG_SIZE, r.commitlog_size),
        (attr::QUEUE_OFFSET, r.queue_offset),
        (attr::RANGE_START, r.range_start),
        (attr::RANGE_END, r.range_end),
    ];
    out.extend(
        numbers
            .into_iter()
            .filter_map(|(k, v)| Some(Attribute::new(k, n(v?)))),
    );
    out.extend(r.attributes.iter().cloned());
    out
}

fn tags(attrs: &[Attribute]) -> Vec<Value> {
    attrs.iter().map(|a| tag(&a.key, &a.value)).collect()
}

fn tag(key: &str, value: &AttrValue) -> Value {
    match value {
        AttrValue::Str(v) => json!({"key": key, "type": "string", "value": v}),
        AttrValue::Bool(v) => json!({"key": key, "type": "bool", "value": v}),
        AttrValue::Int(v) => json!({"key": key, "type": "int64", "value": v}),
        AttrValue::Double(v) => json!({"key": key, "type": "float64", "value": v}),
        AttrValue::Array(_) => {
            json!({"key": key, "type": "string", "value": serde_json::to_string(value).unwrap_or_default()})
        }
    }
}

/// Parses Jaeger durations such as `1.5s`, `200ms`, `10us`, `3m`.
pub fn parse_duration_ns(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic() || c == 'µ')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    (number >= 0.0).then_some((number * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("200ms"), Some(200_000_000));
        assert_eq!(parse_duration_ns("abc"), None);
    }

    #[test]
    fn trace_shape_has_processes_and_references() {
        let r = SpanRecord {
            trace_id: "ab".repeat(16),
            span_id: "cd".repeat(8),
            parent_span_id: Some("ef".repeat(8)),
            service: "order-service".into(),
            name: "send".into(),
            start_ns: 5_000,
            end_ns: 9_000,
            message_id: Some("M1".into()),
            ..Default::default()
        };
        let t = &traces(std::slice::from_ref(&r))[0];
        let v = serde_json::to_value(t).unwrap();
        assert_eq!(v["traceID"], "ab".repeat(16));
        assert_eq!(v["processes"]["p1"]["serviceName"], "order-service");
        let span = &v["spans"][0];
        assert_eq!(span["references"][0]["spanID"], "ef".repeat(8));
        assert_eq!(
            (span["startTime"].as_u64(), span["duration"].as_u64()),
            (Some(5), Some(4))
        );
        let tags = span["tags"].as_array().unwrap();
        assert!(
            tags.iter()
                .any(|t| t["key"] == "messaging.message.id" && t["value"] == "M1")
        );
    }
}
