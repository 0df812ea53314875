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
    let cx = TraceContextPropagator::new().extract(&Props(properties));
    if opentelemetry::trace::TraceContextExt::span(&cx)
        .span_context()
        .is_valid()
    {
        let _ = span.set_parent(cx);
    }
}

/// Writes `span`'s context into `properties` as `traceparent`.
pub fn inject(span: &tracing::Span, properties: &mut Vec<(String, String)>) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut PropsMut(properties));
}

/// Records business keys as the string-array attribute the conventions define.
pub fn set_keys(span: &tracing::Span, keys: &[String]) {
    if !keys.is_empty() {
        let values: Vec<opentelemetry::StringValue> =
            keys.iter().map(|k| k.clone().into()).collect();
        span.set_attribute(
            lasthop_vocab::attr::MESSAGING_ROCKETMQ_MESSAGE_KEYS,
            opentelemetry::Value::Array(opentelemetry::Array::String(values)),
        );
    }
}
