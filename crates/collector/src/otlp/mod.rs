//! OTLP receivers: gRPC (`TraceService/Export`) and HTTP (`POST /v1/traces`).
//! Protobuf bodies are read by [`proto`] straight into span records; JSON
//! bodies through opentelemetry-proto's serde types. Both transports
//! acknowledge only once the pipeline has made the spans durable, and answer
//! backpressure with OTLP's retryable statuses.

pub mod grpc;
pub mod http;
pub mod proto;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::normalize::Normalized;
use crate::pipeline::{AcceptError, Pipeline};
use crate::stats::Stats;

/// Default cap on a request body (after decompression).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// Durably accepts one export request's normalized spans.
pub async fn export(
    pipeline: &Pipeline,
    normalized: Normalized,
) -> Result<ExportTraceServiceResponse, AcceptError> {
    let stats = pipeline.stats();
    Stats::add(
        &stats.received_spans,
        normalized.records.len() as u64 + normalized.rejected,
    );
    let result = pipeline.accept(normalized.records).await;
    if result.is_err() {
        Stats::add(&stats.refused_requests, 1);
    }
    result?;
    Stats::add(&stats.rejected_spans, normalized.rejected);
    let partial_success = (normalized.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: normalized.rejected as i64,
        error_message: normalized.first_reason.unwrap_or_default(),
    });
    Ok(ExportTraceServiceResponse { partial_success })
}
