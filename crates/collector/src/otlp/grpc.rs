//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! gzip accepted, bodies above the limit refused by tonic with `OUT_OF_RANGE`.
//!
//! The service is written out here rather than generated, so that its codec
//! can read each request with [`proto::decode_request`](super::proto) straight
//! into span records; the wire contract (path, messages, statuses) is the one
//! opentelemetry-proto's generated server has.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use prost::bytes::Buf;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::proto::decode_request;
use crate::normalize::Normalized;
use crate::pipeline::{AcceptError, Pipeline};

/// The gRPC path of the one method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC trace service over a pipeline.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
    max_body_bytes: usize,
}

impl OtlpGrpc {
    /// The service, with gzip and the body limit set.
    pub fn service(pipeline: Arc<Pipeline>, max_body_bytes: usize) -> OtlpGrpc {
        OtlpGrpc {
            pipeline,
            max_body_bytes,
        }
    }
}

impl NamedService for OtlpGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send + 'static>>;

impl<B> Service<http::Request<B>> for OtlpGrpc
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let export = Export(self.pipeline.clone());
        let mut grpc = Grpc::new(NormalizingCodec)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(self.max_body_bytes);
        Box::pin(async move { Ok(grpc.unary(export, request).await) })
    }
}

/// The `Export` method.
struct Export(Arc<Pipeline>);

impl UnaryService<Normalized> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<Normalized>) -> Self::Future {
        let pipeline = self.0.clone();
        Box::pin(async move {
            match super::export(&pipeline, request.into_inner()).await {
                Ok(response) => Ok(Response::new(response)),
                // UNAVAILABLE is retryable for every OTLP exporter; nothing was acknowledged.
                Err(e @ AcceptError::Backpressure { .. }) => {
                    Err(Status::unavailable(e.to_string()))
                }
                Err(e @ AcceptError::Unavailable(_)) => Err(Status::unavailable(e.to_string())),
                Err(e @ AcceptError::Wal(_)) => Err(Status::internal(e.to_string())),
            }
        })
    }
}

/// Requests decoded by [`decode_request`]; responses encoded by prost.
struct NormalizingCodec;

impl Codec for NormalizingCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Normalized;
    type Encoder = ResponseEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RequestDecoder {
        RequestDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = Normalized;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Normalized>, Status> {
        let len = src.remaining();
        // tonic hands over the whole message in one buffer; copy only if it ever does not.
        let decoded = if src.chunk().len() == len {
            decode_request(src.chunk())
        } else {
            decode_request(&src.copy_to_bytes(len))
        };
        src.advance(src.remaining());
        decoded.map(Some).map_err(|e| {
            Status::invalid_argument(format!("malformed protobuf ExportTraceServiceRequest: {e}"))
        })
    }
}
