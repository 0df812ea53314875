//! `lasthop ui`: the web UI and the query API over a data directory, with
//! no collector running (or beside one: it sees each commit as it lands).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use lasthop_collector::SpanStore;
use lasthop_ui::UiOptions;

use crate::data_dir::DataDir;

#[derive(Debug, Args)]
pub struct UiArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Address to serve the pages and the query API on.
    #[arg(long, default_value = "127.0.0.1:16686", value_name = "ADDR")]
    pub api: SocketAddr,
    /// Seconds of silence before a message not yet consumed can count as lost.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,
    /// A consumer group expected to consume the topics, besides those seen consuming them (repeatable).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
}

pub fn run(args: UiArgs) -> anyhow::Result<ExitCode> {
    if !lasthop_collector::store::index_dir(&args.data.path).exists() {
        anyhow::bail!(
            "{} holds no span index: give the data directory of a collector, `lasthop ingest` or `lasthop demo` (--data)",
            args.data.path.display()
        );
    }
    let store = SpanStore::open(&args.data.path)
        .with_context(|| format!("cannot open the store in {}", args.data.path.display()))?;
    let options = UiOptions {
        grace_ns: args.grace.saturating_mul(1_000_000_000),
        groups: args.groups,
    };
    let router = lasthop_collector::api::router(store.clone(), None)
        .merge(lasthop_ui::router(store, options));
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.api)
            .await
            .with_context(|| format!("cannot listen on {}", args.api))?;
        let addr = listener.local_addr()?;
        println!(
            "lasthop ui: http://{addr}/ over {}",
            args.data.path.display()
        );
        axum::serve(listener, router)
            .with_graceful_shutdown(crate::commands::collector::shutdown_signal())
            .await
            .context("the ui server failed")?;
        Ok(ExitCode::SUCCESS)
    })
}
