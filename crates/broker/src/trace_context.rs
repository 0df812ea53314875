//! W3C trace context carried in message properties: the producer injects
//! `traceparent`, the broker's and consumer's per-message spans join it.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Props<'a>(&'a [(String, String)]);

impl Extractor for Props<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

struct PropsMut<'a>(&'a mut Vec<(String, String)>);

impl Injector for PropsMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value));
    }
}

/// Makes `span` a child of the trace named in `properties`, if any.
pub fn join(span: &tracing::Span, properties: &[(String, String)]) {
    if let Some(cx) = extract(properties) {
        let _ = span.set_parent(cx);
    }
}

/// The trace named in `properties`, if any and valid.
fn extract(properties: &[(String, String)]) -> Option<opentelemetry::Context> {
    let cx = TraceContextPropagator::new().extract(&Props(properties));
    opentelemetry::trace::TraceContextExt::span(&cx)
        .span_context()
        .is_valid()
        .then_some(cx)
}

/// A message's trace context and keys, read once for the several spans of
/// it one process records (the consumer's `receive` and `process`).
#[derive(Debug, Clone)]
pub struct MessageContext {
    parent: Option<opentelemetry::Context>,
    keys: Option<opentelemetry::Value>,
}

impl MessageContext {
    pub fn of(properties: &[(String, String)], keys: &[String]) -> MessageContext {
        MessageContext {
            parent: extract(properties),
            keys: (!keys.is_empty()).then(|| keys_value(keys)),
        }
    }

    /// [`join`] and [`set_keys`] from what was read.
    pub fn apply(&self, span: &tracing::Span) {
        if let Some(cx) = &self.parent {
            let _ = span.set_parent(cx.clone());
        }
        if let Some(keys) = &self.keys {
            span.set_attribute(
                lasthop_vocab::attr::MESSAGING_ROCKETMQ_MESSAGE_KEYS,
                keys.clone(),
            );
        }
    }
}

/// Keys as the string array the conventions define; shared strings, so a
/// copy for a second span is a few reference counts.
fn keys_value(keys: &[String]) -> opentelemetry::Value {
    let values = keys
        .iter()
        .map(|k| std::sync::Arc::<str>::from(k.as_str()).into())
        .collect();
    opentelemetry::Value::Array(opentelemetry::Array::String(values))
}

/// Writes `span`'s context into `properties` as `traceparent`.
pub fn inject(span: &tracing::Span, properties: &mut Vec<(String, String)>) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut PropsMut(properties));
}

/// Records business keys as the string-array attribute the conventions define.
pub fn set_keys(span: &tracing::Span, keys: &[String]) {
    if !keys.is_empty() {
        span.set_attribute(
            lasthop_vocab::attr::MESSAGING_ROCKETMQ_MESSAGE_KEYS,
            keys_value(keys),
        );
    }
}
