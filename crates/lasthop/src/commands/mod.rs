//! One module per command.

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

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::cli::Command;

/// Logs go to stderr; `RUST_LOG` overrides the default level. Commands that
/// emit spans set up logging together with their exporter instead.
pub fn init_logging(command: &Command) {
    let default = match command {
        Command::Collector(_) => "info",
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
        Command::Demo(args) => demo::run(args),
        Command::Campaign(args) => campaign::run(args),
        Command::Broker(args) => broker::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Admin(command) => admin::run(command),
    }
}
