//! The commands (DESIGN section 7): [`Command`] is their registry, and each
//! lives in a module of its own with its flags (`XArgs`) and its `run`. A new
//! command is a module here, a variant of [`Command`] and an arm of [`run`];
//! flags several commands share are in `flags.rs`.

mod admin;
mod broker;
mod campaign;
mod collector;
mod consume;
mod demo;
mod ingest;
mod produce;
mod query;
mod report;
mod ui;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use admin::AdminCommand;
use broker::BrokerArgs;
use campaign::CampaignArgs;
use collector::CollectorArgs;
use consume::ConsumeArgs;
use demo::DemoArgs;
use ingest::IngestArgs;
use produce::ProduceArgs;
use query::QueryArgs;
use report::ReportArgs;
use ui::UiArgs;
use watch::WatchArgs;

/// lasthop: end-to-end message tracing and message-loss diagnosis.
///
/// Every hop of a message (send, store, flush, replicate, receive, process,
/// settle) leaves a span; the collector keeps them durably; queries rebuild
/// each message's path.
#[derive(Debug, Parser)]
#[command(name = "lasthop", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive OTLP spans (gRPC and HTTP), store them durably, serve queries.
    Collector(CollectorArgs),
    /// Show each message of a trace, message id or business key: its path
    /// and, per consumer group, whether it was delivered or where it was lost.
    Query(QueryArgs),
    /// Load span files (OTLP JSON, RocketMQ trace records, JSON-lines and plain-text logs) into the store.
    Ingest(IngestArgs),
    /// A loss report over the store or over files: verdict totals, losses by
    /// hop, topic, group and broker, a timeline, and every lost message.
    Report(ReportArgs),
    /// Serve the web UI (search, a message's path, the loss report) over a
    /// data directory with no collector running; `lasthop collector` serves
    /// the same pages on its API address.
    Ui(UiArgs),
    /// Print a running collector's losses as its live judge finds them, one
    /// line each; with --fail-on-loss, exit 3 at the first.
    Watch(WatchArgs),
    /// Watch messages get lost and found: the red-packet story against real
    /// brokers with real faults, the ledgers' truth beside lasthop's verdicts.
    Demo(DemoArgs),
    /// Many seeded runs, each a drawn scenario, workload and fault timing
    /// against real brokers: how often lasthop names the hop the ledgers lost at.
    Campaign(CampaignArgs),
    /// Run an instrumented broker (RocketMQ model) that traces every hop.
    Broker(BrokerArgs),
    /// Send messages to a broker and print where each one was stored.
    Produce(ProduceArgs),
    /// Consume a topic for a group and print what was processed and the lag.
    Consume(ConsumeArgs),
    /// Look into and operate a broker: messages by id or key, a group's lag,
    /// replication status, slave promotion, dead letters and resending them.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Logs go to stderr; `RUST_LOG` overrides the default level. Commands that
/// emit spans set up logging together with their exporter instead.
pub fn init_logging(command: &Command) {
    let default = match command {
        Command::Collector(_) | Command::Ui(_) => "info",
        Command::Broker(_)
        | Command::Produce(_)
        | Command::Consume(_)
        | Command::Demo(_)
        | Command::Campaign(_) => return,
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Collector(args) => collector::run(args),
        Command::Query(args) => query::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Report(args) => report::run(args),
        Command::Ui(args) => ui::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Campaign(args) => campaign::run(args),
        Command::Broker(args) => broker::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Admin(command) => admin::run(command),
    }
}
