//! lasthop's instrumented broker, in the RocketMQ model (DESIGN section 8).
//!
//! So far: the message [`store`] (commit log with checksummed records,
//! consume queues rebuilt at recovery, consumer offsets, epochs, power-loss
//! simulation). The network protocol, client, flush services, replication and
//! instrumentation are still to come (issue 3).

pub mod store;
