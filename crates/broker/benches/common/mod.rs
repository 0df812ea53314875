//! What the broker benchmarks share.

use std::time::Duration;

use lasthop_telemetry::{self as telemetry, Telemetry};

/// User plus system CPU time of this process (Linux: `/proc/self/stat`).
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

/// The benchmarks' runtime: two workers, as many as this machine has cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Installs lasthop's tracing pipeline, exporting over OTLP/HTTP to a [`sink`].
#[allow(dead_code)] // each bench uses one of the two
pub async fn traced(service: &str) -> Telemetry {
    traced_spooled(service, None).await
}

/// [`traced`], with a span spool in `spool` when given.
pub async fn traced_spooled(service: &str, spool: Option<&std::path::Path>) -> Telemetry {
    let sink = sink().await;
    telemetry::init_with(
        service,
        Some(&format!("http://{sink}")),
        telemetry::Protocol::HttpProtobuf,
        "error",
        spool,
    )
    .unwrap()
}

/// An OTLP/HTTP endpoint that takes every request and keeps nothing.
pub async fn sink() -> std::net::SocketAddr {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/traces",
        post(|_body: axum::body::Bytes| async {
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
