//! Helpers for tests that run the real `lasthop` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use std::collections::BTreeSet;
use std::time::Duration;

use lasthop_broker::client::{Connection, Message, Producer, ProducerConfig};
use lasthop_broker::protocol::{Request, Response, SendStatus};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

pub fn lasthop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasthop"))
}

/// The tests' runtime: two workers, as many as this machine has cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `command` to its end and asserts that it succeeded (showing its
/// standard error if not).
pub fn succeed(command: &mut Command) -> std::process::Output {
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process that is killed if a test ends (or fails) while it runs.
pub struct Process(pub Child);

impl Process {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then wait: the graceful path.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        self.0.wait().unwrap()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Process {
    /// A failing test must not leave a process running.
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A `lasthop collector` process on free loopback ports.
pub struct CollectorProcess {
    pub process: Process,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
}

impl CollectorProcess {
    /// Starts the collector and waits for its "listening" line.
    pub fn start(data: &Path) -> CollectorProcess {
        Self::start_with(data, &[])
    }

    /// [`CollectorProcess::start`] with more `lasthop collector` flags.
    pub fn start_with(data: &Path, flags: &[&str]) -> CollectorProcess {
        let mut child = lasthop()
            .args([
                "collector",
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
            ])
            .args(flags)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn lasthop collector");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "lasthop collector: otlp grpc A | otlp http B | api http://C"
        let addrs: Vec<SocketAddr> = line
            .split(|c: char| c.is_whitespace() || c == '|')
            .filter_map(|w| w.trim_start_matches("http://").parse().ok())
            .collect();
        assert_eq!(addrs.len(), 3, "unexpected banner {line:?}");
        CollectorProcess {
            process: Process(child),
            grpc: addrs[0],
            http: addrs[1],
            api: addrs[2],
        }
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.process.terminate()
    }

    pub fn kill9(mut self) {
        self.process.kill9();
    }
}

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}

/// A request of `spans` spans in one trace whose id encodes `trace_no`.
pub fn request(trace_no: u64, spans: u64) -> ExportTraceServiceRequest {
    let mut trace_id = vec![0xab; 8];
    trace_id.extend_from_slice(&trace_no.to_be_bytes());
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: trace_id.clone(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            name: "order_paid send".into(),
            kind: 4,
            start_time_unix_nano: 1_700_000_000_000_000_000 + trace_no * 1000 + i,
            end_time_unix_nano: 1_700_000_000_000_000_000 + trace_no * 1000 + i + 1,
            attributes: vec![
                KeyValue {
                    key: "messaging.message.id".into(),
                    value: Some(s(&format!("M{trace_no}-{i}"))),
                    ..Default::default()
                },
                KeyValue {
                    key: "lasthop.hop".into(),
                    value: Some(s("send")),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(s("crash-test")),
                    ..Default::default()
                }],
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

/// Trace id hex of `request(trace_no, _)`.
pub fn trace_hex(trace_no: u64) -> String {
    format!("{}{:016x}", "ab".repeat(8), trace_no)
}

/// A `lasthop broker` process.
pub struct BrokerProcess {
    pub process: Process,
    pub addr: SocketAddr,
    /// The banner: "... (epoch E; previous run ended: CAUSE; commit log ends at N)".
    pub banner: String,
}

impl BrokerProcess {
    pub fn start(store: &Path, args: &[&str]) -> BrokerProcess {
        let any_port: &[&str] = if args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = lasthop()
            .arg("broker")
            .args(any_port)
            .arg("--store")
            .arg(store)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn lasthop broker");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let addr = banner
            .split_whitespace()
            .find_map(|w| w.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no address in banner {banner:?}"));
        BrokerProcess {
            process: Process(child),
            addr,
            banner,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.banner
            .split("epoch ")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .and_then(|s| s.parse().ok())
            .unwrap()
    }

    pub fn terminate(mut self) {
        assert!(self.process.terminate().success());
    }

    pub fn kill9(mut self) {
        self.process.kill9();
    }
}

/// Polls `f` until it yields a value (a condition another process brings
/// about, such as spans reaching the collector); panics after 20 s.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub const TOPIC: &str = "order_paid";

/// Sends one message per key; every send must be `SEND_OK`. Returns the message ids.
pub async fn send_all(addr: &str, keys: impl Iterator<Item = String>) -> Vec<String> {
    let producer = Producer::new(ProducerConfig {
        retries: 0,
        ..ProducerConfig::new(addr)
    });
    let mut ids = Vec::new();
    for key in keys {
        let r = producer
            .send(Message {
                topic: TOPIC.into(),
                keys: vec![key],
                body: b"paid".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        ids.push(r.msg_id);
    }
    ids
}

/// Every message id the broker holds for the topic, read through its queues.
pub async fn stored_ids(addr: &str) -> BTreeSet<String> {
    let conn = Connection::connect(addr, Duration::from_secs(3))
        .await
        .unwrap();
    let t = Duration::from_secs(3);
    let Response::Route { queues, .. } = conn
        .request(
            &Request::Route {
                topic: TOPIC.into(),
            },
            t,
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    let mut ids = BTreeSet::new();
    for queue_id in 0..queues {
        let mut offset = 0;
        loop {
            let pull = Request::Pull {
                group: "audit".into(),
                topic: TOPIC.into(),
                queue_id,
                offset,
                max: 256,
                wait_ms: 0,
            };
            let Response::Pulled {
                messages,
                next_offset,
                ..
            } = conn.request(&pull, t).await.unwrap()
            else {
                panic!()
            };
            if messages.is_empty() {
                break;
            }
            ids.extend(messages.into_iter().map(|m| m.msg_id));
            offset = next_offset;
        }
    }
    ids
}

/// A broker process whose banner and metrics lines have been read; its
/// standard output stays drained so that it never writes to a closed pipe.
pub struct MetricsBroker {
    pub process: Process,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
}

pub fn metrics_broker(store: &Path, otlp: &str, extra: &[&str]) -> MetricsBroker {
    let mut child = lasthop()
        .args(["broker", "--name", "b1", "--listen", "127.0.0.1:0"])
        .args(["--metrics", "127.0.0.1:0", "--otlp", otlp])
        .args(extra)
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr_of = |what: &str| -> SocketAddr {
        let line = (lines.next())
            .expect("the broker exited before its banner (see its stderr)")
            .unwrap();
        assert!(line.contains(what), "{line:?}");
        line.split_whitespace()
            .find_map(|w| {
                w.trim_start_matches("http://")
                    .trim_end_matches("/metrics")
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    };
    let addr = addr_of("listening on");
    let metrics = addr_of("metrics on");
    std::thread::spawn(move || lines.for_each(drop));
    MetricsBroker {
        process: Process(child),
        addr,
        metrics,
    }
}

/// A broker `b1` on `store` that acknowledges three orders (ORDER_1..3 on
/// `order_paid`, sent by `lasthop produce` exporting to `otlp`) from
/// memory and loses power before any flush; returns it restarted on the
/// same store (both lives with `--metrics`).
pub fn power_cut(store: &Path, otlp: &str) -> MetricsBroker {
    let first = metrics_broker(
        store,
        otlp,
        &[
            "--flush",
            "async",
            "--flush-interval",
            "600000",
            "--simulate-power-loss",
        ],
    );
    succeed(
        lasthop()
            .args(["produce", "--topic", "order_paid", "--count", "3"])
            .args([
                "--key-prefix",
                "ORDER_",
                "--broker",
                &first.addr.to_string(),
                "--otlp",
                otlp,
            ]),
    );
    drop(first); // kill -9: the unflushed tail was only in memory
    metrics_broker(store, otlp, &["--flush", "async"])
}
