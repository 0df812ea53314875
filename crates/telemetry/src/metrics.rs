//! Metrics out: one exposition of a `prometheus-client` registry for every
//! `/metrics` endpoint lasthop serves (the collector's, the broker's), in
//! the format the scraper asks for.
//!
//! Prometheus' classic text format (0.0.4) by default, which every scraper
//! and text parser reads; OpenMetrics 1.0 when the request's `Accept`
//! header asks for `application/openmetrics-text` (Prometheus does).

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// The OpenMetrics text format's content type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry's metrics as `(content type, body)`, in OpenMetrics when
/// `accept` asks for it, else in Prometheus' text format.
pub fn exposition(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut body = String::new();
    let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
    let encoded = if openmetrics {
        text::encode(&mut body, registry)
    } else {
        prometheus_text::encode(&mut body, registry)
    };
    match encoded {
        Ok(()) if openmetrics => (OPENMETRICS_CONTENT_TYPE, body),
        Ok(()) => (prometheus_text::CONTENT_TYPE, body),
        // Writing to a String fails only if a metric's own encoder does.
        Err(_) => (
            prometheus_text::CONTENT_TYPE,
            "# metrics could not be encoded\n".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn classic_text_by_default_and_openmetrics_when_asked() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("lasthop_things", "Things seen", counter.clone());
        counter.inc_by(3);
        let (kind, body) = exposition(&registry, None);
        assert!(kind.starts_with("text/plain; version=0.0.4"));
        assert!(
            body.contains("# TYPE lasthop_things_total counter\n"),
            "{body}"
        );
        assert!(body.contains("lasthop_things_total 3\n"), "{body}");
        assert!(!body.contains("# EOF"));
        let (kind, body) = exposition(
            &registry,
            Some("application/openmetrics-text;version=1.0.0"),
        );
        assert_eq!(kind, OPENMETRICS_CONTENT_TYPE);
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
