//! `GET /metrics` on the API address: the collector's own counters (what
//! came in, what was acknowledged, refused or pushed back, the write-ahead
//! log, the index lag, spans dropped), read from the pipeline at each
//! scrape, then whatever [`crate::Plugins::metrics`] adds (the live judge's
//! verdict counts).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::pipeline::Pipeline;

/// The collector's counters, as Prometheus metrics.
#[derive(Debug)]
struct PipelineMetrics(Arc<Pipeline>);

impl Collector for PipelineMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let counters: [(&str, &str, u64); 9] = [
            (
                "lasthop_spans_received",
                "Spans received over OTLP.",
                s.received_spans,
            ),
            (
                "lasthop_spans_acknowledged",
                "Spans acknowledged (durable in the write-ahead log).",
                s.acknowledged_spans,
            ),
            (
                "lasthop_spans_indexed",
                "Spans indexed (searchable).",
                s.indexed_spans,
            ),
            (
                "lasthop_spans_rejected",
                "Spans refused inside accepted requests (bad ids), reported as partial success.",
                s.rejected_spans,
            ),
            (
                "lasthop_requests_refused",
                "OTLP requests refused whole: too large, malformed or pushed back.",
                s.refused_requests,
            ),
            (
                "lasthop_requests_pushed_back",
                "OTLP requests told to retry later because indexing fell behind.",
                s.backpressure_requests,
            ),
            (
                "lasthop_spans_dropped",
                "Acknowledged spans that could not be indexed; must stay 0.",
                s.dropped_spans,
            ),
            (
                "lasthop_wal_written_bytes",
                "Bytes written to the write-ahead log.",
                s.wal_bytes,
            ),
            ("lasthop_index_commits", "Index commits.", s.commits),
        ];
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        let gauges: [(&str, &str, f64); 2] = [
            (
                "lasthop_wal_backlog_bytes",
                "Write-ahead log bytes acknowledged and not yet indexed.",
                s.backlog_bytes as f64,
            ),
            (
                "lasthop_index_lag_seconds",
                "How long acknowledged spans have waited for the index (0 when none waits).",
                s.index_lag_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        Ok(())
    }
}

/// A shared collector registered with a registry, which wants it boxed.
#[derive(Debug)]
struct Shared(Arc<dyn Collector>);

impl Collector for Shared {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// The `/metrics` route: the pipeline's counters, then `more`.
pub fn router(pipeline: Arc<Pipeline>, more: &[Arc<dyn Collector>]) -> Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PipelineMetrics(pipeline)));
    for collector in more {
        registry.register_collector(Box::new(Shared(collector.clone())));
    }
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(registry))
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = lasthop_telemetry::metrics::exposition(&registry, accept);
    ([(header::CONTENT_TYPE, content_type)], body)
}
