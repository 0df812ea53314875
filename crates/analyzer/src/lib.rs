//! The analyzer: from span records, each message's path and, per consumer
//! group, the verdict of DESIGN section 5 with the hop, a readable
//! explanation, the span ids that prove it, and the fix.
//!
//! Absent evidence is not loss: a message is called lost only when positive
//! evidence says where (failed send attempts, a recovery that ended below it,
//! an offset commit past it). Otherwise the verdict is `in_flight` or
//! `incomplete_trace`, which names what is missing.

pub mod columnar;
mod evidence;
mod explain;
pub mod facts;
mod model;
pub mod readers;
pub mod report;
mod report_html;
mod rules;

pub use evidence::{Evidence, Globals};
pub use model::{Cause, GroupVerdict, MessageVerdicts, Options, Verdict};
pub use rules::analyze;
