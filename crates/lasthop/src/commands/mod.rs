//! One module per command.

mod collector;
mod ingest;
mod query;

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::cli::Command;

/// Logs go to stderr; `RUST_LOG` overrides the default level.
pub fn init_logging(command: &Command) {
    let default = match command {
        Command::Collector(_) => "info",
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
    }
}
