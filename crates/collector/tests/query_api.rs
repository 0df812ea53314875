//! The query API in Jaeger's shape, plus lasthop's span and message lookups.

mod common;

use common::{Harness, kv, request, s, span};
use prost::Message;
use reqwest::blocking::Client;
use serde_json::Value;

fn get(h: &Harness, path: &str) -> (u16, Value) {
    let r = Client::new().get(h.api(path)).send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn load(h: &Harness) {
    let order = request(
        "order-service",
        vec![
            span(
                1,
                1,
                "order_paid send",
                vec![
                    kv("messaging.message.id", s("M1")),
                    kv("messaging.rocketmq.message.keys", s("ORDER_1")),
                    kv("tenant", s("t1")),
                ],
            ),
            span(
                2,
                2,
                "order_paid send",
                vec![
                    kv("messaging.message.id", s("M2")),
                    kv("messaging.rocketmq.message.keys", s("ORDER_2")),
                ],
            ),
        ],
    );
    let mut process = span(
        1,
        3,
        "order_paid process",
        vec![
            kv("messaging.message.id", s("M1")),
            kv("messaging.operation.type", s("process")),
        ],
    );
    process.parent_span_id = vec![1; 8];
    let packet = request("red-packet", vec![process]);
    for req in [order, packet] {
        let r = Client::new()
            .post(h.traces_url())
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    h.settle();
}

#[test]
fn services_and_operations_are_listed() {
    let h = Harness::start(|_| {});
    load(&h);
    let (_, v) = get(&h, "/api/services");
    assert_eq!(
        v["data"],
        serde_json::json!(["order-service", "red-packet"])
    );
    let (_, v) = get(&h, "/api/services/red-packet/operations");
    assert_eq!(v["data"], serde_json::json!(["order_paid process"]));
}

#[test]
fn a_trace_comes_back_whole_in_jaeger_shape() {
    let h = Harness::start(|_| {});
    load(&h);
    let trace_id = "01".repeat(16);
    let (status, v) = get(&h, &format!("/api/traces/{trace_id}"));
    assert_eq!(status, 200);
    let trace = &v["data"][0];
    assert_eq!(trace["traceID"], trace_id);
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let child = spans
        .iter()
        .find(|s| s["operationName"] == "order_paid process")
        .unwrap();
    assert_eq!(child["references"][0]["refType"], "CHILD_OF");
    assert_eq!(child["references"][0]["spanID"], "01".repeat(8));
    let process = &trace["processes"][child["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "red-packet");
}

#[test]
fn missing_and_malformed_trace_ids_are_404_and_400() {
    let h = Harness::start(|_| {});
    load(&h);
    let (status, v) = get(&h, &format!("/api/traces/{}", "77".repeat(16)));
    assert_eq!(status, 404);
    assert_eq!(v["errors"][0]["code"], 404);
    assert_eq!(get(&h, "/api/traces/xyz").0, 400);
}

#[test]
fn search_filters_by_service_operation_and_tags() {
    let h = Harness::start(|_| {});
    load(&h);
    let (_, v) = get(&h, "/api/traces?service=order-service&limit=10");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    // A lifted attribute and a plain one, as Jaeger UI sends them.
    let tags = urlencode(r#"{"messaging.message.id":"M1","tenant":"t1"}"#);
    let (_, v) = get(
        &h,
        &format!("/api/traces?service=order-service&tags={tags}"),
    );
    let traces = v["data"].as_array().unwrap();
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0]["traceID"], "01".repeat(16));
    assert_eq!(
        traces[0]["spans"].as_array().unwrap().len(),
        2,
        "whole traces are returned"
    );
    let (_, v) = get(&h, "/api/traces?service=order-service&operation=nothing");
    assert!(v["data"].as_array().unwrap().is_empty());
    // Start/end are microseconds; the spans start at 1.7e15 us.
    let (_, v) = get(&h, "/api/traces?service=order-service&end=1000");
    assert!(v["data"].as_array().unwrap().is_empty());
    assert_eq!(get(&h, "/api/traces?tags=notjson").0, 400);
    assert_eq!(get(&h, "/api/traces?minDuration=fast").0, 400);
}

#[test]
fn spans_and_messages_by_key_and_message_id() {
    let h = Harness::start(|_| {});
    load(&h);
    let (_, v) = get(&h, "/api/spans?msg_id=M1");
    assert_eq!(v["spans"].as_array().unwrap().len(), 2);
    let (_, v) = get(&h, "/api/messages?key=ORDER_2");
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["message_id"], "M2");
    assert_eq!(messages[0]["keys"], serde_json::json!(["ORDER_2"]));
    assert_eq!(get(&h, "/api/spans").0, 400);
    let (_, v) = get(&h, "/api/stats");
    assert_eq!(v["stored_spans"], 3);
    assert_eq!(v["collector"]["acknowledged_spans"], 3);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
