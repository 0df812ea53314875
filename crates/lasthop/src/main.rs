//! The `lasthop` binary: parses the command line and hands off to a command.

mod cli;
mod commands;
mod data_dir;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the collector's hot path (protobuf decoding, normalization,
/// indexing) allocates per attribute; see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    commands::init_logging(&cli.command);
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
