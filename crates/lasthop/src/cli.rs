//! Command-line definitions (DESIGN section 7).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use lasthop_collector::ingest::text_log::LogPattern;
use lasthop_collector::ingest::{InputFormat, ReadOptions};

use crate::data_dir::DataDir;

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

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Scenarios to run: power-loss, swallowed-exception, consumer-crash,
    /// disk-loss, network-flap, poison, tx-check-back, reliable, or all.
    #[arg(value_name = "SCENARIO", default_value = "all")]
    pub scenarios: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CampaignArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// How many runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Run i is drawn from seed SEED + i; `--runs 1 --seed S` replays run S.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Orders paid per run (default: drawn between 3 and 12).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(2..=9000))]
    pub messages: Option<u32>,
    /// Output format of the summary (progress goes to stderr).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Keep every run's broker stores and ledgers (by default only those of
    /// runs where lasthop and the ledgers disagree are kept).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Master,
    Slave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Sync,
    Async,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// TOML configuration with RocketMQ's names (brokerName, brokerRole,
    /// flushDiskType, flushIntervalCommitLog, listenPort, storePathRootDir,
    /// maxMessageSize, ...); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Broker name (brokerName).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Listen address, e.g. 127.0.0.1:10911 (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Store directory (storePathRootDir); default lasthop-data/broker-NAME.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// master or slave.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// The master a slave copies from.
    #[arg(long, value_name = "ADDR")]
    pub master: Option<String>,
    /// sync: acknowledge after fsync (SYNC_FLUSH); async: from memory (ASYNC_FLUSH).
    #[arg(long, value_enum)]
    pub flush: Option<Mode>,
    /// sync: acknowledge after a slave acked (SYNC_MASTER); async: at once (ASYNC_MASTER).
    #[arg(long, value_enum)]
    pub replication: Option<Mode>,
    /// Milliseconds between async flushes (flushIntervalCommitLog).
    #[arg(long, value_name = "MS")]
    pub flush_interval: Option<u64>,
    /// Keep unflushed commit-log bytes in memory only, so kill -9 loses them like a power cut.
    #[arg(long)]
    pub simulate_power_loss: bool,
    #[command(flatten)]
    pub spans: SpanExport,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Broker address.
    #[arg(long, value_name = "ADDR")]
    pub broker: String,
    /// Topic.
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// Messages to send.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: u32,
    /// Business key of message i is PREFIX + i.
    #[arg(long, default_value = "ORDER_", value_name = "P")]
    pub key_prefix: String,
    /// Extra attempts after a failed send.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// Milliseconds an attempt waits for the broker.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub timeout: u64,
    /// Send asynchronously (results arrive through callbacks).
    #[arg(long = "async", conflicts_with = "tx")]
    pub async_send: bool,
    /// Send each message as a transaction: half message, local transaction
    /// (which commits), commit; check-backs are answered from this run's record.
    #[arg(long)]
    pub tx: bool,
    #[command(flatten)]
    pub spans: SpanExport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ack {
    /// Commit an offset only after its message was processed.
    AfterProcess,
    /// Commit as soon as a batch arrives (the auto-commit hazard).
    OnReceive,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Broker address (host:port).
    #[arg(long, value_name = "ADDR")]
    pub broker: String,
    /// Topic.
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// Consumer group.
    #[arg(long, value_name = "G")]
    pub group: String,
    /// When offsets are committed.
    #[arg(long, value_enum, default_value_t = Ack::AfterProcess)]
    pub ack: Ack,
    /// Stop after this many messages (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Milliseconds each message takes to process (slow consumers, crash demos).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub process_delay: u64,
    /// The service's own ledger: each processed message's keys are appended
    /// to FILE (one per line, synced) before the message counts as processed.
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub spans: SpanExport,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// A message by id or by business key, with where it is stored.
    Message {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Message id, as `produce` prints it.
        #[arg(long, value_name = "ID", required_unless_present = "key")]
        msg_id: Option<String>,
        /// Business key (e.g. an order id).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// A group's progress on a topic: broker offset, consumer offset, lag per queue.
    Progress {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Consumer group.
        #[arg(long, value_name = "G")]
        group: String,
        /// Topic.
        #[arg(long, value_name = "T")]
        topic: String,
    },
    /// A master's replication status: put offset, each slave's acked offset, the gap.
    Replication {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
    },
    /// Messages in a consumer group's dead-letter queue.
    Dlq {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Consumer group.
        #[arg(long, value_name = "G")]
        group: String,
    },
    /// Put a dead-lettered message back into its group's retry topic.
    Resend {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Consumer group.
        #[arg(long, value_name = "G")]
        group: String,
        /// Message id, as `produce` prints it.
        #[arg(long, value_name = "ID")]
        msg_id: String,
    },
    /// Promote a slave to master (failover), e.g. after the master's disk is lost.
    Promote {
        /// The slave's address.
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Why: disk_lost, crash, ... (recorded in the failover span).
        #[arg(long, default_value = "disk_lost")]
        cause: String,
    },
}

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
    /// Query API listen address (Jaeger-shaped /api/traces, /api/messages, /api/stats).
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
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("lookup").required(true).args(["trace_id", "key", "msg_id"])))]
pub struct QueryArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Ask a running collector's API instead of reading the data directory,
    /// e.g. http://127.0.0.1:16686.
    #[arg(long, value_name = "URL", conflicts_with = "path")]
    pub server: Option<String>,
    /// Trace id (32 hex digits).
    #[arg(long, value_name = "HEX")]
    pub trace_id: Option<String>,
    /// Business key, e.g. an order id.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Message id.
    #[arg(long, value_name = "ID")]
    pub msg_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Seconds of silence before a message not yet consumed can count as lost.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,
    /// The time to judge at (RFC 3339 or epoch milliseconds). By default the
    /// end of the data, the newest span: history has its own "now", so a
    /// message sent moments before the data ends is in flight, not unknown.
    #[arg(long, value_name = "T")]
    pub now: Option<String>,
    /// A consumer group expected to consume the topic, besides those seen consuming it (repeatable).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    /// One self-contained page with charts; use with --out report.html.
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Ask a running collector's API instead of reading the data directory.
    #[arg(long, value_name = "URL", conflicts_with = "inputs")]
    pub server: Option<String>,
    /// Report over these files instead of the store (formats told apart by content).
    #[arg(long = "input", value_name = "FILE", num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Format of every --input file.
    #[arg(long, value_name = "FORMAT", requires = "inputs", value_parser = input_format())]
    pub input_format: Option<InputFormat>,
    #[command(flatten)]
    pub reading: Reading,
    /// Only spans that started at or after this time (RFC 3339 or epoch milliseconds).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only spans that started before this time (RFC 3339 or epoch milliseconds).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit with status 3 when any message was lost.
    #[arg(long)]
    pub fail_on_loss: bool,
    /// Spans whose records are judged at once when reading the store
    /// (about a kilobyte each). Messages plainly delivered or in flight are
    /// counted from fast fields in one pass over the window; their facts (80 bytes a
    /// message, about 20 a span) are held for 8 times this many spans at a
    /// time, the rest of a larger window's waiting in a temporary file (see
    /// --spool-dir) for their turn, so memory follows this however large the
    /// window.
    #[arg(long, default_value_t = 2_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub share_spans: u64,
    /// --input files larger than this in all (MiB) are first loaded into a
    /// temporary store and judged from it like the store, so that memory
    /// stays bounded however large they are; smaller ones are judged in
    /// memory. 0 always loads them.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub spool_above: u64,
    /// Where temporary files go: that temporary store (about 300 bytes per
    /// span), and the message facts of a window read in several shares (62
    /// bytes per message); both are removed afterwards. The system's
    /// temporary directory (TMPDIR) by default.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Judge every message from its records, also those whose columns
    /// already show them plainly delivered (slower; for checking).
    #[arg(long)]
    pub read_all: bool,
    /// Seconds of silence before a message not yet consumed can count as lost.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,
    /// The time to judge at (RFC 3339 or epoch milliseconds). By default the
    /// end of the data, the newest span: history has its own "now", so a
    /// message sent moments before the data ends is in flight, not unknown.
    #[arg(long, value_name = "T")]
    pub now: Option<String>,
    /// A consumer group expected to consume every topic (repeatable).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Format of every input file; without it each file's format is told from its content.
    #[arg(long, value_name = "FORMAT", value_parser = input_format())]
    pub input_format: Option<InputFormat>,
    #[command(flatten)]
    pub reading: Reading,
    /// Files to load.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
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
fn input_format() -> impl clap::builder::TypedValueParser<Value = InputFormat> {
    let names = InputFormat::ALL
        .iter()
        .map(|f| PossibleValue::new(f.name()).help(f.about()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<InputFormat>())
}
