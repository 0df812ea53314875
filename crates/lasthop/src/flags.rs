//! Flags several commands share, as flattened structs and parsers: where
//! spans go (`SpanExport`), how input files are read (`Reading`), the
//! output format of `query` and `campaign`.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
use clap::{Args, ValueEnum};
use lasthop_collector::ingest::text_log::LogPattern;
use lasthop_collector::ingest::{InputFormat, ReadOptions};

/// Where the spans of a command that emits them go: every such command
/// (broker, produce, consume) takes these flags.
#[derive(Debug, Args)]
pub struct SpanExport {
    /// OTLP/gRPC endpoint for spans (default: OTEL_EXPORTER_OTLP_ENDPOINT; none: no export).
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// Keep every span in a crash-safe spool in DIR until it is exported;
    /// a process started later on the same DIR sends what a killed one left.
    #[arg(long, value_name = "DIR")]
    pub span_spool: Option<PathBuf>,
}

impl SpanExport {
    /// Installs this process's tracing pipeline as `service`, logging at `level`.
    pub fn init(&self, service: &str, level: &str) -> anyhow::Result<lasthop_telemetry::Telemetry> {
        lasthop_telemetry::init_spooled(
            service,
            self.otlp.as_deref(),
            level,
            self.span_spool.as_deref(),
        )
        .map_err(anyhow::Error::msg)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// How input files are read (`ingest`, `report --input`).
#[derive(Debug, Args)]
pub struct Reading {
    /// Read plain-text logs with this regular expression instead of the
    /// built-in logback/log4j layout. Named groups: time (RFC 3339,
    /// "YYYY-MM-DD HH:MM:SS[.fff]" as UTC, or epoch ms) and msg_id, keys or
    /// trace_id; optional hop, outcome, error, level, service, topic, group,
    /// message. Files are told apart by content as usual; give
    /// --input-format text-log when a log does not start with a date.
    #[arg(long, value_name = "REGEX")]
    pub log_pattern: Option<LogPattern>,
    /// RocketMQ's maxReconsumeTimes for message-trace records: a message
    /// whose consumption failed on retry number N goes to the dead-letter
    /// queue [default: 16, RocketMQ's].
    #[arg(long, value_name = "N")]
    pub max_reconsume_times: Option<u64>,
}

impl Reading {
    pub fn options(&self) -> ReadOptions {
        ReadOptions {
            log_pattern: self.log_pattern.clone(),
            max_reconsume_times: self.max_reconsume_times,
            ..ReadOptions::default()
        }
    }
}

/// `--input-format` takes the name of any input format the collector's
/// ingest registry holds ([`InputFormat::ALL`]).
pub(crate) fn input_format() -> impl clap::builder::TypedValueParser<Value = InputFormat> {
    let names = InputFormat::ALL
        .iter()
        .map(|f| PossibleValue::new(f.name()).help(f.about()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<InputFormat>())
}
