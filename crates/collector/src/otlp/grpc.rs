//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! gzip accepted, bodies above the limit refused by tonic with `OUT_OF_RANGE`.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::pipeline::{AcceptError, Pipeline};

/// The gRPC trace service over a pipeline.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
}

impl OtlpGrpc {
    /// The tonic service, with gzip and the body limit set.
    pub fn service(pipeline: Arc<Pipeline>, max_body_bytes: usize) -> TraceServiceServer<OtlpGrpc> {
        TraceServiceServer::new(OtlpGrpc { pipeline })
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_body_bytes)
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        match super::export(&self.pipeline, request.into_inner()).await {
            Ok(response) => Ok(Response::new(response)),
            // UNAVAILABLE is retryable for every OTLP exporter; nothing was acknowledged.
            Err(e @ AcceptError::Backpressure { .. }) => Err(Status::unavailable(e.to_string())),
            Err(e @ AcceptError::Unavailable(_)) => Err(Status::unavailable(e.to_string())),
            Err(e @ AcceptError::Wal(_)) => Err(Status::internal(e.to_string())),
        }
    }
}
