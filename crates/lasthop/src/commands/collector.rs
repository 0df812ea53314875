//! `lasthop collector`: serve until SIGINT or SIGTERM, then drain.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use lasthop_collector::{CollectorConfig, PipelineOptions};

use crate::data_dir::DataDir;

#[derive(Debug, Args)]
pub struct CollectorArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// OTLP/gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:4317", value_name = "ADDR")]
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP listen address (POST /v1/traces).
    #[arg(long, default_value = "127.0.0.1:4318", value_name = "ADDR")]
    pub otlp_http: SocketAddr,
    /// Query API listen address (Jaeger-shaped /api/traces, /api/messages, /api/stats).
    #[arg(long, default_value = "127.0.0.1:16686", value_name = "ADDR")]
    pub api: SocketAddr,
    /// Largest accepted request body in bytes, after decompression.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Unindexed bytes above which senders are told to retry later.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub max_backlog_bytes: u64,
    /// How often spans become searchable while they keep arriving, in
    /// milliseconds (each commit makes an index segment). A burst of spans is
    /// committed about 50 ms after it ends, at most once per quarter interval.
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(10..))]
    pub commit_interval: u64,
}

pub fn run(args: CollectorArgs) -> anyhow::Result<ExitCode> {
    let config = CollectorConfig {
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        api: args.api,
        max_body_bytes: args.max_body_bytes,
        pipeline: PipelineOptions {
            max_backlog_bytes: args.max_backlog_bytes,
            commit_interval: std::time::Duration::from_millis(args.commit_interval),
            ..PipelineOptions::default()
        },
        ..CollectorConfig::new(args.data.path)
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let running = lasthop_collector::server::start(config).await?;
        println!(
            "lasthop collector: otlp grpc {} | otlp http {} | api http://{}",
            running.grpc_addr, running.http_addr, running.api_addr
        );
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight and draining the index");
        let stats = running.shutdown().await;
        tracing::info!(
            received = stats.received_spans,
            acknowledged = stats.acknowledged_spans,
            indexed = stats.indexed_spans,
            rejected = stats.rejected_spans,
            refused_requests = stats.refused_requests,
            backpressure = stats.backpressure_requests,
            replayed = stats.replayed_spans,
            wal_bytes = stats.wal_bytes,
            "collector stopped"
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
