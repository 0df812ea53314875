//! The analyzer: from span records, each message's path and, per consumer
//! group, the verdict of DESIGN section 5 with the hop, a readable
//! explanation, the span ids that prove it, and the fix.
//!
//! Absent evidence is not loss: a message is called lost only when positive
//! evidence says where (failed send attempts, a recovery that ended below it,
//! an offset commit past it). Otherwise the verdict is `in_flight` or
//! `incomplete_trace`, which names what is missing.
//!
//! [`judge_window`] and [`judge_spans`] judge a whole window (the store's, in
//! bounded memory, or spans in memory) into a loss report; the report
//! command, and anything else that judges a window, calls them.

pub mod columnar;
mod evidence;
mod explain;
pub mod facts;
pub mod judge;
pub mod live;
mod model;
pub mod path;
pub mod report;
mod report_html;
mod rules;

pub use evidence::{Evidence, Globals};
pub use judge::{JudgeError, JudgeOptions, Progress, judge_spans, judge_window};
pub use model::{Cause, GroupVerdict, JudgedAt, MessageVerdicts, Options, Verdict};
pub use rules::analyze;
