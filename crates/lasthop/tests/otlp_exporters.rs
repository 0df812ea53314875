//! The Rust OpenTelemetry SDK's own OTLP exporters (gRPC, gRPC+gzip, HTTP
//! protobuf, HTTP JSON) send to a running collector; the spans are then found
//! by trace id, message id and business key.

use std::time::Duration;

use lasthop_collector::{CollectorConfig, RunningCollector, server};
use lasthop_vocab::Hop;
use opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

struct Sent {
    trace_id: String,
    span_id: String,
    message_id: String,
    key: String,
}

/// Emits one producer span through `provider` and flushes it.
fn emit(provider: &SdkTracerProvider, label: &str) -> Sent {
    let tracer = provider.tracer("lasthop-test");
    let message_id = format!("MSG-{label}");
    let key = format!("ORDER_{label}");
    let mut span = tracer
        .span_builder("order_paid send")
        .with_kind(SpanKind::Producer)
        .with_attributes(vec![
            KeyValue::new("lasthop.hop", "send"),
            KeyValue::new("messaging.system", "rocketmq"),
            KeyValue::new("messaging.destination.name", "order_paid"),
            KeyValue::new("messaging.message.id", message_id.clone()),
            KeyValue::new(
                "messaging.rocketmq.message.keys",
                Value::Array(Array::String(vec![StringValue::from(key.clone())])),
            ),
            KeyValue::new("lasthop.commitlog.offset", 81234i64),
        ])
        .start(&tracer);
    let cx = span.span_context().clone();
    span.end();
    provider.force_flush().expect("exporter flush succeeds");
    Sent {
        trace_id: cx.trace_id().to_string(),
        span_id: cx.span_id().to_string(),
        message_id,
        key,
    }
}

fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_owned())
        .build()
}

fn assert_found(running: &RunningCollector, sent: &Sent, service: &str) {
    let pipeline = running.pipeline();
    assert!(
        pipeline.wait_indexed(pipeline.accepted_lsn(), Duration::from_secs(10)),
        "indexed in time"
    );
    let store = pipeline.store();
    let by_trace = store.by_trace_id(&sent.trace_id).unwrap();
    assert_eq!(by_trace.len(), 1, "one span in trace {}", sent.trace_id);
    let span = &by_trace[0];
    assert_eq!(span.span_id, sent.span_id);
    assert_eq!(span.service, service);
    assert_eq!(span.hop, Some(Hop::Send));
    assert_eq!(span.topic.as_deref(), Some("order_paid"));
    assert_eq!(span.commitlog_offset, Some(81234));
    assert_eq!(store.by_message_id(&sent.message_id).unwrap(), by_trace);
    assert_eq!(store.by_key(&sent.key).unwrap(), by_trace);
}

#[test]
fn sdk_exporters_over_grpc_and_http_are_stored_and_found() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = CollectorConfig::ephemeral(dir.path().to_owned());
    config.pipeline.commit_interval = Duration::from_millis(100);
    let running = runtime.block_on(server::start(config)).unwrap();

    // gRPC, plain and gzip: tonic's channel lives on the runtime.
    for (label, gzip) in [("grpc", false), ("grpcgzip", true)] {
        let provider = {
            let _guard = runtime.enter();
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://{}", running.grpc_addr));
            if gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            let exporter = builder.build().unwrap();
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource(label))
                .build()
        };
        let sent = emit(&provider, label);
        provider.shutdown().unwrap();
        assert_found(&running, &sent, label);
    }

    // HTTP, protobuf and JSON: reqwest's blocking client, outside the runtime.
    for (label, protocol) in [
        ("httpproto", Protocol::HttpBinary),
        ("httpjson", Protocol::HttpJson),
    ] {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(format!("http://{}/v1/traces", running.http_addr))
            .with_headers(Default::default())
            .build()
            .unwrap();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(resource(label))
            .build();
        let sent = emit(&provider, label);
        provider.shutdown().unwrap();
        assert_found(&running, &sent, label);
    }

    let stats = runtime.block_on(running.shutdown());
    assert_eq!(stats.acknowledged_spans, 4);
    assert_eq!(stats.indexed_spans, 4);
    assert_eq!(stats.rejected_spans, 0);
}
