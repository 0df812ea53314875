//! What the OTLP/gRPC endpoint does with good and bad requests: the standard
//! generated client (plain and gzip) is served, partial success is reported,
//! garbage is refused with a reason, and serving goes on.

mod common;

use common::{Harness, kv, request, s, span};
use lasthop_telemetry::{GRPC_EXPORT, RawCodec};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

fn channel(h: &Harness) -> Channel {
    let endpoint = format!("http://{}", h.running().grpc_addr);
    h.runtime.block_on(async {
        tonic::transport::Endpoint::from_shared(endpoint)
            .unwrap()
            .connect()
            .await
            .unwrap()
    })
}

/// Sends `body` as it is to `path`.
fn send_raw(h: &Harness, path: &'static str, body: Vec<u8>) -> Result<(), tonic::Status> {
    let mut client = tonic::client::Grpc::new(channel(h));
    h.runtime.block_on(async {
        client.ready().await.unwrap();
        client
            .unary(
                tonic::Request::new(body.into()),
                PathAndQuery::from_static(path),
                RawCodec,
            )
            .await
            .map(|_| ())
    })
}

#[test]
fn the_generated_client_is_served_plain_and_gzipped_with_partial_success() {
    let h = Harness::start(|_| {});
    let mut bad_id = span(2, 2, "bad", vec![]);
    bad_id.span_id = vec![0; 8];
    let plain = request(
        "order-service",
        vec![
            span(1, 1, "send", vec![kv("messaging.message.id", s("M1"))]),
            bad_id,
        ],
    );
    let mut client = TraceServiceClient::new(channel(&h));
    let response = h.runtime.block_on(client.export(plain)).unwrap();
    let partial = response
        .into_inner()
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("span id"), "{partial:?}");

    let mut gzipped =
        TraceServiceClient::new(channel(&h)).send_compressed(CompressionEncoding::Gzip);
    let zipped = request(
        "red-packet-service",
        vec![span(
            1,
            3,
            "process",
            vec![kv("messaging.message.id", s("M1"))],
        )],
    );
    let response = h.runtime.block_on(gzipped.export(zipped)).unwrap();
    assert_eq!(response.into_inner().partial_success, None);

    h.settle();
    let found = h.running().pipeline().store().by_message_id("M1").unwrap();
    let mut services: Vec<_> = found.iter().map(|r| r.service.as_str()).collect();
    services.sort();
    assert_eq!(services, ["order-service", "red-packet-service"]);
    let stats = h.running().pipeline().snapshot();
    assert_eq!((stats.acknowledged_spans, stats.rejected_spans), (2, 1));
}

#[test]
fn malformed_protobuf_is_invalid_argument_with_a_reason_and_serving_goes_on() {
    let h = Harness::start(|_| {});
    let err = send_raw(&h, GRPC_EXPORT, vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 1]).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("malformed protobuf"), "{err:?}");

    // A span name that is not UTF-8: refused whole, naming the field.
    let mut body = request("svc", vec![span(1, 1, "zqzq", vec![])]).encode_to_vec();
    let at = body.windows(4).position(|w| w == b"zqzq").unwrap();
    body[at] = 0xff;
    let err = send_raw(&h, GRPC_EXPORT, body).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("Span.name"), "{err:?}");

    let good = request("svc", vec![span(3, 1, "op", vec![])]).encode_to_vec();
    send_raw(&h, GRPC_EXPORT, good).unwrap();
    let stats = h.running().pipeline().snapshot();
    assert_eq!(stats.acknowledged_spans, 1);
}

#[test]
fn other_methods_are_unimplemented() {
    let h = Harness::start(|_| {});
    let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Other";
    let err = send_raw(&h, path, Vec::new()).unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}
