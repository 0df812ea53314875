//! `lasthop collector`: serve until SIGINT or SIGTERM, then drain.

use std::net::SocketAddr;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lasthop_analyzer::live::{LiveJudge, LiveOptions};
use lasthop_collector::{CollectorConfig, PipelineOptions};
use lasthop_ui::UiOptions;

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
    /// Query API and web UI listen address (the pages at /, Jaeger-shaped
    /// /api/traces, /api/messages, /api/stats, /api/live/losses, Prometheus /metrics).
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
    /// Seconds of silence after a message's last span before live judging
    /// counts a loss verdict as final (alerts and `lasthop_messages_lost`);
    /// the web UI judges with the same grace.
    /// Keep it above the time a crashed consumer takes to come back: a
    /// redelivery after it is reported as a recovery of a loss already
    /// alerted. Delivered messages are counted as soon as every group has them.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS", value_parser = seconds)]
    pub live_grace: f64,
    /// Judge no message live: no loss metrics, alerts or `/api/live`.
    #[arg(long, conflicts_with_all = ["alert_webhook", "live_grace"])]
    pub no_live: bool,
    /// POST each lost message, as JSON (its `lost_messages` entry of
    /// `report --format json`), to this http:// URL; retried with backoff.
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Option<String>,
    /// A consumer group expected to consume every topic, besides those seen
    /// consuming it (repeatable).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!(
            "expected seconds (a number, 0 or more), got {text:?}"
        )),
    }
}

/// The live judge's options from the flags.
pub fn live_options(grace_seconds: f64, groups: Vec<String>) -> LiveOptions {
    LiveOptions {
        groups,
        ..LiveOptions::with_grace(Duration::from_secs_f64(grace_seconds))
    }
}

pub fn run(args: CollectorArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.alert_webhook
        && !url.starts_with("http://")
    {
        anyhow::bail!(
            "--alert-webhook must be an http:// URL (lasthop has no TLS client; an https \
             endpoint needs a TLS-terminating proxy in front of it), got {url:?}"
        );
    }
    let mut config = CollectorConfig {
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
        let live = (!args.no_live).then(|| {
            let options = live_options(args.live_grace, args.groups.clone());
            LiveJudge::start(
                options,
                args.alert_webhook.clone(),
                &tokio::runtime::Handle::current(),
            )
        });
        if let Some(live) = &live {
            config.plugins = live.plugins();
        }
        let ui = UiOptions {
            grace_ns: (args.live_grace * 1e9) as u64,
            groups: args.groups.clone(),
        };
        config.plugins = lasthop_ui::with_ui(std::mem::take(&mut config.plugins), ui);
        let running = lasthop_collector::server::start(config).await?;
        println!(
            "lasthop collector: otlp grpc {} | otlp http {} | api http://{}",
            running.grpc_addr, running.http_addr, running.api_addr
        );
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight and draining the index");
        let stats = running.shutdown().await;
        drop(live);
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
