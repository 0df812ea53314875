//! A collector on free loopback ports, served by its own runtime, so tests
//! can use blocking clients from the test thread.
#![allow(dead_code)]

use std::time::Duration;

use lasthop_collector::{CollectorConfig, RunningCollector, server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub running: Option<RunningCollector>,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn start(configure: impl FnOnce(&mut CollectorConfig)) -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = CollectorConfig::ephemeral(dir.path().to_owned());
        config.pipeline.commit_interval = Duration::from_millis(50);
        configure(&mut config);
        let running = runtime.block_on(server::start(config)).unwrap();
        Harness {
            runtime,
            running: Some(running),
            dir,
        }
    }

    pub fn running(&self) -> &RunningCollector {
        self.running.as_ref().unwrap()
    }

    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.running().http_addr)
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.running().api_addr)
    }

    /// Waits until everything accepted so far is searchable.
    pub fn settle(&self) {
        let p = self.running().pipeline();
        assert!(p.wait_indexed(p.accepted_lsn(), Duration::from_secs(10)));
    }
}

pub fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}

pub fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

pub fn span(trace: u8, span: u8, name: &str, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        name: name.into(),
        kind: 4,
        start_time_unix_nano: 1_700_000_000_000_000_000 + span as u64 * 1_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + span as u64 * 1_000_000 + 500_000,
        attributes: attrs,
        ..Default::default()
    }
}

pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
