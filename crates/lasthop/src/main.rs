//! The `lasthop` binary: parses the command line and hands off to a command.

mod commands;
mod data_dir;
mod flags;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the collector's hot path (protobuf decoding, normalization,
/// indexing) allocates per attribute; see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    commands::init_logging(&cli.command);
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each cause once: many of our errors already
/// name their cause in their message, and `{:#}` would repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let bind = lasthop_collector::server::StartError::Bind {
            what: "otlp grpc",
            addr: "127.0.0.1:4317".parse().unwrap(),
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use"),
        };
        let e = anyhow::Error::new(bind).context("collector");
        assert_eq!(
            describe(&e),
            "collector: cannot listen on 127.0.0.1:4317 (otlp grpc): address in use"
        );
        let plain = anyhow::anyhow!("disk full").context("cannot write the report");
        assert_eq!(describe(&plain), "cannot write the report: disk full");
    }
}
