//! OTLP receivers: gRPC (`TraceService/Export`) and HTTP (`POST /v1/traces`).
//! Both normalize the request and acknowledge only once the pipeline has made
//! it durable; both answer backpressure with OTLP's retryable statuses.

pub mod grpc;
pub mod http;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::normalize::normalize_request;
use crate::pipeline::{AcceptError, Pipeline};
use crate::stats::Stats;

/// Default cap on a request body (after decompression).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// Normalizes and durably accepts one export request.
pub async fn export(
    pipeline: &Pipeline,
    request: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse, AcceptError> {
    let normalized = normalize_request(request);
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
