//! Samples: the red-packet story with real brokers, real faults and
//! ground-truth ledgers, and the demo that runs them and shows what lasthop
//! found.
//!
//! Each business service keeps its own ledger, written independently of
//! tracing: the order service records the orders it paid (and whose message
//! it believes sent), the red-packet service the packets it granted. What the
//! ledgers disagree on is what was really lost; the demo compares that with
//! the analyzer's verdicts.

mod cluster;
pub mod demo;
mod ledger;
mod scenarios;

pub use demo::{DemoOptions, Finding, ScenarioOutcome, run};
pub use scenarios::SCENARIOS;
