//! What the OTLP/HTTP endpoint does with good, bad and too much input, and
//! that it keeps serving afterwards.

mod common;

use std::io::Write;

use common::{Harness, kv, request, s, span};
use lasthop_collector::otlp::http::RpcStatus;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use reqwest::blocking::Client;

fn post(
    h: &Harness,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, Option<String>, Vec<u8>) {
    let mut req = Client::new()
        .post(h.traces_url())
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let r = req.send().unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        r.status().as_u16(),
        retry_after,
        r.bytes().unwrap().to_vec(),
    )
}

fn good(h: &Harness, trace: u8) -> (u16, Option<String>, Vec<u8>) {
    let body = request("svc", vec![span(trace, 1, "op", vec![])]).encode_to_vec();
    post(h, "application/x-protobuf", None, body)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn malformed_protobuf_is_a_400_with_a_reason_and_serving_goes_on() {
    let h = Harness::start(|_| {});
    let (status, _, body) = post(
        &h,
        "application/x-protobuf",
        None,
        vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 1],
    );
    assert_eq!(status, 400);
    let rpc = RpcStatus::decode(body.as_slice()).unwrap();
    assert_eq!(rpc.code, 3);
    assert!(
        rpc.message.contains("malformed protobuf"),
        "{}",
        rpc.message
    );
    assert_eq!(good(&h, 1).0, 200);
}

#[test]
fn malformed_json_is_a_400_with_a_reason() {
    let h = Harness::start(|_| {});
    let (status, _, body) = post(
        &h,
        "application/json",
        None,
        b"{\"resourceSpans\": [{\"scopeSpans\": 7}]}".to_vec(),
    );
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("malformed JSON"),
        "{v}"
    );
    assert_eq!(good(&h, 1).0, 200);
}

#[test]
fn json_body_is_accepted_and_answered_in_json() {
    let h = Harness::start(|_| {});
    let json = serde_json::to_vec(&request(
        "json-svc",
        vec![span(9, 1, "op", vec![kv("messaging.message.id", s("J1"))])],
    ))
    .unwrap();
    let (status, _, body) = post(&h, "application/json; charset=utf-8", None, json);
    assert_eq!(status, 200);
    // A full success: an empty ExportTraceServiceResponse.
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({})
    );
    h.settle();
    let found = h.running().pipeline().store().by_message_id("J1").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].service, "json-svc");
}

#[test]
fn oversize_bodies_are_refused_plain_or_gzipped() {
    let h = Harness::start(|c| c.max_body_bytes = 4096);
    let big = request("svc", (1..=200).map(|i| span(1, i, "op", vec![])).collect()).encode_to_vec();
    assert!(big.len() > 4096);
    let (status, _, body) = post(&h, "application/x-protobuf", None, big.clone());
    assert_eq!(status, 413);
    assert!(
        RpcStatus::decode(body.as_slice())
            .unwrap()
            .message
            .contains("limit of 4096 bytes")
    );
    // Small on the wire, too large once inflated.
    let zipped = gzip(&big);
    assert!(zipped.len() < 4096, "compressed body fits the wire limit");
    let (status, _, _) = post(&h, "application/x-protobuf", Some("gzip"), zipped);
    assert_eq!(status, 413);
    assert_eq!(good(&h, 1).0, 200);
    assert_eq!(h.running().pipeline().snapshot().refused_requests, 2);
}

#[test]
fn gzip_bodies_are_inflated_and_bad_gzip_is_a_400() {
    let h = Harness::start(|_| {});
    let body = request("gz", vec![span(3, 1, "op", vec![])]).encode_to_vec();
    assert_eq!(
        post(&h, "application/x-protobuf", Some("gzip"), gzip(&body)).0,
        200
    );
    assert_eq!(
        post(
            &h,
            "application/x-protobuf",
            Some("gzip"),
            b"not gzip at all".to_vec()
        )
        .0,
        400
    );
}

#[test]
fn unknown_content_types_and_encodings_are_415() {
    let h = Harness::start(|_| {});
    let body = request("svc", vec![span(1, 1, "op", vec![])]).encode_to_vec();
    let (status, _, text) = post(&h, "text/plain", None, body.clone());
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&text).contains("application/x-protobuf"));
    assert_eq!(post(&h, "application/x-protobuf", Some("br"), body).0, 415);
}

#[test]
fn spans_with_bad_ids_are_reported_through_partial_success() {
    let h = Harness::start(|_| {});
    let mut bad = span(1, 2, "bad", vec![]);
    bad.trace_id = vec![1, 2, 3];
    let export = request("svc", vec![span(1, 1, "good", vec![]), bad]);
    let (status, _, body) = post(&h, "application/x-protobuf", None, export.encode_to_vec());
    assert_eq!(status, 200);
    let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("trace id"));

    // The same in JSON, answered in JSON.
    let json = serde_json::to_vec(&export).unwrap();
    let (status, _, body) = post(&h, "application/json", None, json);
    assert_eq!(status, 200);
    let response: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let partial = &response["partialSuccess"];
    assert_eq!(
        partial["rejectedSpans"].to_string().trim_matches('"'),
        "1",
        "{response}"
    );
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace id")
    );
    h.settle();
    // The good span of each request; the second is the same span again.
    assert_eq!(h.running().pipeline().store().count(), 2);
}

#[test]
fn a_lagging_index_pushes_back_with_503_and_retry_after() {
    // Nothing is committed for a minute, so the backlog only grows.
    let h = Harness::start(|c| {
        c.pipeline.max_backlog_bytes = 1;
        c.pipeline.commit_interval = std::time::Duration::from_secs(60);
        c.pipeline.idle_commit = None;
    });
    assert_eq!(good(&h, 1).0, 200);
    let (status, retry_after, _) = good(&h, 2);
    assert_eq!(status, 503);
    assert_eq!(retry_after.as_deref(), Some("1"));

    let mut client = h.runtime.block_on(async {
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
            format!("http://{}", h.running().grpc_addr),
        )
        .await
        .unwrap()
    });
    let err = h
        .runtime
        .block_on(client.export(request("svc", vec![span(3, 1, "op", vec![])])))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let stats = h.running().pipeline().snapshot();
    assert_eq!(stats.backpressure_requests, 2);
    assert_eq!(stats.acknowledged_spans, 1);
}

#[test]
fn oversize_grpc_messages_are_refused_and_serving_goes_on() {
    let h = Harness::start(|c| c.max_body_bytes = 4096);
    let mut client = h.runtime.block_on(async {
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
            format!("http://{}", h.running().grpc_addr),
        )
        .await
        .unwrap()
    });
    let big = request("svc", (1..=200).map(|i| span(1, i, "op", vec![])).collect());
    let err = h.runtime.block_on(client.export(big)).unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{err:?}"
    );
    let ok = h
        .runtime
        .block_on(client.export(request("svc", vec![span(2, 1, "op", vec![])])));
    assert!(ok.is_ok(), "{ok:?}");
}
