//! The span exporter: a batch of finished spans encoded by [`encode_request`]
//! and sent as one OTLP export request, over gRPC or HTTP/protobuf.
//!
//! What it reads from the environment, as OpenTelemetry SDKs do:
//! `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,...`, values URL-encoded),
//! `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, default 10 s) and
//! `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`), each also in its `_TRACES_` form,
//! which wins. Endpoints are plain `http://`: neither transport is built with TLS.
//!
//! The SDK's batch processor calls [`SpanExporter::export`] on its own thread
//! (never a tokio worker), one batch at a time: the blocking HTTP client and
//! the gRPC channel (whose connection runs on the runtime it was created in)
//! are both safe there.

use std::io::Write as _;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::otlp_encode::encode_request;

/// The gRPC method of an OTLP trace export.
pub const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, as SDKs read it: `http/protobuf` or gRPC.
    pub fn from_env() -> Protocol {
        match env("PROTOCOL") {
            Some(p) if p.starts_with("http") => Protocol::HttpProtobuf,
            _ => Protocol::Grpc,
        }
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_<name>`, else `OTEL_EXPORTER_OTLP_<name>`.
fn env(name: &str) -> Option<String> {
    std::env::var(format!("OTEL_EXPORTER_OTLP_TRACES_{name}"))
        .or_else(|_| std::env::var(format!("OTEL_EXPORTER_OTLP_{name}")))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

#[derive(Debug, Clone)]
enum Transport {
    Http {
        client: reqwest::blocking::Client,
        url: String,
    },
    Grpc {
        channel: tonic::transport::Channel,
    },
}

/// Exports batches of spans to one OTLP endpoint.
#[derive(Debug)]
pub(super) struct OtlpExporter {
    transport: Transport,
    headers: Vec<(String, String)>,
    gzip: bool,
    resource: Resource,
    /// The last request's size, to size the next one's buffer in one allocation.
    last_len: std::sync::atomic::AtomicUsize,
}

impl OtlpExporter {
    /// An exporter to `endpoint` (for HTTP, `/v1/traces` is appended unless
    /// present). Must run inside a tokio runtime: the gRPC channel's
    /// connection lives on it.
    pub(super) fn new(endpoint: &str, protocol: Protocol) -> Result<OtlpExporter, String> {
        let timeout = match env("TIMEOUT") {
            None => Duration::from_secs(10),
            Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| {
                format!("OTEL_EXPORTER_OTLP_TIMEOUT must be milliseconds, not {ms:?}")
            })?),
        };
        let gzip = match env("COMPRESSION").as_deref().map(str::trim) {
            None | Some("none") => false,
            Some("gzip") => true,
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_COMPRESSION {other:?} is not supported (gzip or none)"
                ));
            }
        };
        let headers = env("HEADERS")
            .map(|h| parse_headers(&h))
            .unwrap_or_default();
        let transport = match protocol {
            Protocol::HttpProtobuf => {
                let url = if endpoint.ends_with("/v1/traces") {
                    endpoint.to_owned()
                } else {
                    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
                };
                // Built on its own thread: reqwest's blocking client starts a
                // runtime of its own, which cannot be done from inside tokio.
                let client = std::thread::spawn(move || {
                    reqwest::blocking::Client::builder()
                        .timeout(timeout)
                        .build()
                })
                .join()
                .map_err(|_| "the HTTP client panicked while starting".to_owned())?
                .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
                Transport::Http { client, url }
            }
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
                    .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?
                    .timeout(timeout)
                    .connect_lazy();
                Transport::Grpc { channel }
            }
        };
        Ok(OtlpExporter {
            transport,
            headers,
            gzip,
            resource: Resource::builder_empty().build(),
            last_len: Default::default(),
        })
    }

    fn encode(&self, batch: &[SpanData]) -> Vec<u8> {
        use std::sync::atomic::Ordering;
        let mut body = Vec::with_capacity(self.last_len.load(Ordering::Relaxed) + 4096);
        encode_request(batch, &self.resource, &mut body);
        self.last_len.store(body.len(), Ordering::Relaxed);
        body
    }

    fn send_http(
        &self,
        client: &reqwest::blocking::Client,
        url: &str,
        body: Vec<u8>,
    ) -> OTelSdkResult {
        let mut request = client
            .post(url)
            .header("content-type", "application/x-protobuf");
        let body = if self.gzip {
            request = request.header("content-encoding", "gzip");
            gzip(&body)?
        } else {
            body
        };
        for (key, value) in &self.headers {
            request = request.header(key, value);
        }
        let response = request.body(body).send().map_err(failure)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = response.text().unwrap_or_default();
            Err(OTelSdkError::InternalFailure(format!(
                "otlp endpoint {url} answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )))
        }
    }

    async fn send_grpc(&self, channel: &tonic::transport::Channel, body: Vec<u8>) -> OTelSdkResult {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc.ready().await.map_err(failure)?;
        let mut request = tonic::Request::new(Bytes::from(body));
        for (key, value) in &self.headers {
            let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes()).map_err(failure)?;
            request
                .metadata_mut()
                .insert(key, value.parse().map_err(failure)?);
        }
        grpc.unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(GRPC_EXPORT),
            RawCodec,
        )
        .await
        .map(|_| ())
        .map_err(|status| {
            OTelSdkError::InternalFailure(format!(
                "otlp export failed: {:?}: {}",
                status.code(),
                status.message()
            ))
        })
    }
}

impl Clone for OtlpExporter {
    fn clone(&self) -> Self {
        OtlpExporter {
            transport: self.transport.clone(),
            headers: self.headers.clone(),
            gzip: self.gzip,
            resource: self.resource.clone(),
            last_len: Default::default(),
        }
    }
}

impl OtlpExporter {
    /// Sends an encoded request body (from a thread outside the runtime:
    /// the gRPC call runs on `runtime`, where its channel lives).
    pub(super) fn send_body(
        &self,
        body: Vec<u8>,
        runtime: &tokio::runtime::Handle,
    ) -> OTelSdkResult {
        match &self.transport {
            Transport::Http { client, url } => self.send_http(client, url, body),
            Transport::Grpc { channel } => runtime.block_on(self.send_grpc(channel, body)),
        }
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = self.encode(&batch);
        drop(batch);
        match &self.transport {
            Transport::Http { client, url } => self.send_http(client, url, body),
            Transport::Grpc { channel } => self.send_grpc(channel, body).await,
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}

fn failure(e: impl std::fmt::Display) -> OTelSdkError {
    OTelSdkError::InternalFailure(format!("otlp export failed: {e}"))
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, OTelSdkError> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).map_err(failure)?;
    encoder.finish().map_err(failure)
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas,
/// values percent-encoded; pairs without a key or a value are skipped.
fn parse_headers(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), percent_decode(v.trim())))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gRPC codec for a request already encoded and a response that is not read
/// (an `ExportTraceServiceResponse` only reports partial success). Also what
/// the collector's benchmark replays pre-encoded requests with.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug)]
pub struct RawEncoder;

#[derive(Debug)]
pub struct DiscardDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = DiscardDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> DiscardDecoder {
        DiscardDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for DiscardDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_pairs_with_percent_decoded_values() {
        assert_eq!(
            parse_headers("api-key=a%20b%2Cc, x=1,=skip,empty=,novalue"),
            vec![
                ("api-key".to_owned(), "a b,c".to_owned()),
                ("x".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
