//! Flags several commands share, as flattened structs and parsers: where
//! spans go (`SpanExport`), how input files are read (`Reading`), how
//! messages are judged (`Judging`), the output format of `query` and
//! `campaign`.

use std::path::PathBuf;

use anyhow::Context;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
use clap::{Args, ValueEnum};
use lasthop_analyzer::{JudgedAt, Options};
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

/// How `query` and `report` judge messages.
#[derive(Debug, Args)]
pub struct Judging {
    /// Seconds of silence before a message not yet consumed can count as lost.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,
    /// The time to judge at (RFC 3339 or epoch milliseconds). By default the
    /// end of the data, the newest span: history has its own "now", so a
    /// message sent moments before the data ends is in flight, not unknown.
    #[arg(long, value_name = "T")]
    pub now: Option<String>,
    /// A consumer group expected to consume the topics, besides those seen consuming them (repeatable).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
}

impl Judging {
    /// `--now`, parsed.
    pub fn now(&self) -> anyhow::Result<Option<u64>> {
        self.now.as_deref().map(parse_time).transpose()
    }

    /// The rules' options, judging at `at`.
    pub fn options(&self, at: JudgedAt) -> Options {
        Options {
            grace_ns: self.grace * 1_000_000_000,
            now_ns: at.ns,
            groups: self.groups.clone(),
        }
    }
}

/// RFC 3339 or epoch milliseconds, to ns since the epoch.
pub fn parse_time(text: &str) -> anyhow::Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms * 1_000_000);
    }
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("{text:?} is not RFC 3339 or epoch milliseconds"))?;
    u64::try_from(t.timestamp_nanos_opt().unwrap_or(0)).context("time before 1970")
}
