//! `lasthop collector`: serve until SIGINT or SIGTERM, then drain.

use std::process::ExitCode;

use anyhow::Context;
use lasthop_collector::{CollectorConfig, PipelineOptions};

use crate::cli::CollectorArgs;

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
