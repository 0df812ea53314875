//! lasthop's collector: OTLP in (gRPC and HTTP), a write-ahead log that makes
//! every acknowledged span durable, a tantivy span index behind it, and a
//! Jaeger-shaped HTTP query API; and [`ingest`], the readers of historical
//! inputs (OTLP JSON, RocketMQ trace records, JSON lines) that load files
//! into the same store.
//!
//! The data flow is described in `ARCHITECTURE.md`; the write path's
//! guarantees in [`pipeline`]; the on-disk log in [`wal`].

pub mod api;
pub mod ingest;
mod instrumentation;
pub mod messages;
pub mod metrics;
pub mod normalize;
mod observer;
pub mod otlp;
pub mod pipeline;
pub mod server;
pub mod stats;
pub mod store;
pub mod wal;

pub use observer::{Plugins, Routes, SpanObserver};
pub use pipeline::{AcceptError, OpenError, Pipeline, PipelineOptions};
pub use server::{CollectorConfig, RunningCollector, StartError};
pub use stats::StatsSnapshot;
pub use store::{
    FactBatch, FactsFold, KeyMemo, MessageKey, Messages, NONE, Names, Share, SpanQuery, SpanStore,
    StoreError, message_key,
};
