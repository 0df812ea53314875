//! Command-line definitions (DESIGN section 7).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Show the spans of a trace, a message id or a business key.
    Query(QueryArgs),
    /// Load span files (OTLP JSON) into the store.
    Ingest(IngestArgs),
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Format of every input file; without it each file's format is told from its content.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,
    /// Files to load.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// ExportTraceServiceRequest in JSON, one per line or one per file.
    OtlpJson,
}
