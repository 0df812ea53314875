//! OTLP/HTTP: `POST /v1/traces` with `application/x-protobuf` or
//! `application/json` bodies, optionally gzip-compressed. Responses use the
//! request's content type; errors carry a `google.rpc.Status` body.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::proto::decode_request;
use crate::normalize::{Normalized, normalize_request};
use crate::pipeline::{AcceptError, Pipeline};
use crate::stats::Stats;

#[derive(Clone)]
struct HttpState {
    pipeline: Arc<Pipeline>,
    max_body_bytes: usize,
}

/// The OTLP/HTTP router.
pub fn router(pipeline: Arc<Pipeline>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::disable())
        .with_state(HttpState {
            pipeline,
            max_body_bytes,
        })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the body OTLP prescribes for errors.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error answer in the request's encoding.
fn error(status: StatusCode, encoding: Encoding, message: String) -> Response {
    // gRPC codes: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE, 13 INTERNAL.
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => 14,
        _ => 13,
    };
    tracing::debug!(status = status.as_u16(), %message, "otlp/http request refused");
    let rpc = RpcStatus { code, message };
    match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            rpc.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"code": rpc.code, "message": rpc.message}).to_string(),
        )
            .into_response(),
    }
}

async fn export(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let stats = state.pipeline.stats();
    let refuse = |status, encoding, message| {
        Stats::add(&stats.refused_requests, 1);
        error(status, encoding, message)
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Encoding::Json,
                format!(
                    "unsupported content-type {other:?}: send application/x-protobuf or application/json"
                ),
            );
        }
    };
    let limit = state.max_body_bytes;
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(raw) => raw,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                encoding,
                format!("request body is larger than the limit of {limit} bytes"),
            );
        }
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let bytes = match content_encoding.as_str() {
        "identity" | "" => raw,
        "gzip" => match gunzip(&raw, limit) {
            Ok(bytes) => bytes,
            Err(GunzipError::TooLarge) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    encoding,
                    format!("decompressed request body is larger than the limit of {limit} bytes"),
                );
            }
            Err(GunzipError::Invalid(e)) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    encoding,
                    format!("invalid gzip body: {e}"),
                );
            }
        },
        other => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                encoding,
                format!("unsupported content-encoding {other:?}: send gzip or identity"),
            );
        }
    };
    let request = match decode(&bytes, encoding) {
        Ok(request) => request,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, encoding, reason),
    };
    match super::export(&state.pipeline, request).await {
        Ok(response) => success(&response, encoding),
        Err(e @ AcceptError::Backpressure { .. }) | Err(e @ AcceptError::Unavailable(_)) => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, encoding, e.to_string());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(e @ AcceptError::Wal(_)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, encoding, e.to_string())
        }
    }
}

fn decode(bytes: &[u8], encoding: Encoding) -> Result<Normalized, String> {
    match encoding {
        Encoding::Protobuf => decode_request(bytes)
            .map_err(|e| format!("malformed protobuf ExportTraceServiceRequest: {e}")),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(bytes)
            .map(normalize_request)
            .map_err(|e| format!("malformed JSON ExportTraceServiceRequest: {e}")),
    }
}

fn success(response: &ExportTraceServiceResponse, encoding: Encoding) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            // Proto3 JSON leaves an unset message out: a full success is `{}`,
            // not `{"partialSuccess":null}`.
            let body = match response.partial_success {
                None => "{}".to_owned(),
                Some(_) => serde_json::to_string(response).unwrap_or_else(|_| "{}".into()),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

enum GunzipError {
    TooLarge,
    Invalid(std::io::Error),
}

/// Decompresses, refusing output beyond `limit` (a zip bomb stops there).
fn gunzip(raw: &[u8], limit: usize) -> Result<Bytes, GunzipError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Invalid)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(out.into())
}
