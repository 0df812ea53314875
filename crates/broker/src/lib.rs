//! lasthop's instrumented broker and its client, in the RocketMQ model
//! (DESIGN section 8).
//!
//! - [`store`]: commit log with checksummed records, consume queues rebuilt
//!   at recovery, consumer offsets, epochs, power-loss simulation; all disk
//!   I/O behind one backend.
//! - [`server`]: the TCP broker: sends (with async or sync flush), long-polling
//!   pulls, offset commits, master/slave replication and promotion,
//!   transactional half messages with check-back, retry and dead-letter
//!   queues, admin lookups; `store`, `flush`, `replicate`, `receive`,
//!   `settle`, `retry`, `dlq`, `tx.*`, `recover` and `failover` spans.
//! - [`protocol`]: the wire format, and the naming rules client and server
//!   share (system, retry and dead-letter topics; message properties).
//! - [`client`]: producer (sync and async send, retries, one message id per
//!   message, transactions) and consumer (after-process or on-receive
//!   acknowledgement, retries, reconnection).
//! - [`config`]: RocketMQ's configuration names; [`fault_proxy`]: network
//!   faults between client and broker for tests and samples;
//!   [`trace_context`]: W3C `traceparent` in message properties.
//!
//! Spans leave the process through `lasthop-telemetry`.

pub mod client;
pub mod config;
pub mod fault_proxy;
pub mod protocol;
pub mod server;
pub mod store;
pub mod trace_context;

pub use config::{BrokerConfig, BrokerRole, FlushDiskType};
pub use server::{BrokerError, RunningBroker};
