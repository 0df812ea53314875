//! Samples: the red-packet and inventory stories with real brokers, real
//! faults and ground-truth ledgers; the demo that runs them and shows what
//! lasthop found, and the campaign that draws many runs from seeds and
//! counts how often lasthop was right.
//!
//! Each business service keeps its own ledger, written independently of
//! tracing: the order service records the orders it paid, the red-packet
//! service the packets it granted, the inventory service the stock it
//! deducted. What the ledgers disagree on is what was really lost; the demo
//! and the campaign compare that with the analyzer's verdicts.

pub mod campaign;
mod cluster;
pub mod demo;
mod judge;
mod ledger;
mod plan;
mod scenarios;
mod session;

pub use campaign::{CampaignOptions, CampaignResult};
pub use demo::{DemoOptions, run};
pub use judge::{Finding, ScenarioOutcome};
pub use plan::{Plan, Workload};
pub use scenarios::SCENARIOS;
pub use session::Session;
