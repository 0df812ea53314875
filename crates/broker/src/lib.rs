//! lasthop's instrumented broker and its client, in the RocketMQ model
//! (DESIGN section 8).
//!
//! - [`store`]: commit log with checksummed records, consume queues rebuilt
//!   at recovery, consumer offsets, epochs, power-loss simulation.
//! - [`server`]: the TCP broker: sends (with async or sync flush), long-polling
//!   pulls, offset commits, admin lookups; `store`, `flush`, `receive`,
//!   `settle` and `recover` spans.
//! - [`protocol`]: the wire format.
//!
//! - [`client`]: producer (sync and async send, retries, one message id per
//!   message) and consumer (after-process or on-receive acknowledgement).
//!
//! Still to come (issue 3): replication and the admin views over TCP.

pub mod client;
pub mod config;
pub mod fault_proxy;
pub mod protocol;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod trace_context;

pub use config::{BrokerConfig, BrokerRole, FlushDiskType};
pub use server::{BrokerError, RunningBroker};
