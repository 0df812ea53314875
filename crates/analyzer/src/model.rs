//! What the analyzer says about a message.

use serde::Serialize;

/// The verdict names of DESIGN section 5; tools and users match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Delivered,
    InFlight,
    NeverSent,
    LostAtSend,
    LostAtFlush,
    LostAtReplication,
    LostAtConsumer,
    LostInTransit,
    DeadLettered,
    RolledBack,
    HalfPending,
    IncompleteTrace,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::InFlight => "in_flight",
            Verdict::NeverSent => "never_sent",
            Verdict::LostAtSend => "lost_at_send",
            Verdict::LostAtFlush => "lost_at_flush",
            Verdict::LostAtReplication => "lost_at_replication",
            Verdict::LostAtConsumer => "lost_at_consumer",
            Verdict::LostInTransit => "lost_in_transit",
            Verdict::DeadLettered => "dead_lettered",
            Verdict::RolledBack => "rolled_back",
            Verdict::HalfPending => "half_pending",
            Verdict::IncompleteTrace => "incomplete_trace",
        }
    }

    /// Whether the message was lost (as opposed to delivered, pending or intended).
    pub fn is_lost(self) -> bool {
        matches!(
            self,
            Verdict::LostAtSend
                | Verdict::LostAtFlush
                | Verdict::LostAtReplication
                | Verdict::LostAtConsumer
                | Verdict::LostInTransit
        )
    }
}

/// Why a consumer lost a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    CommittedBeforeProcessed,
    FailedButAcked,
    Skipped,
}

/// One verdict: a message for one consumer group (`group` null when none is known).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupVerdict {
    pub group: Option<String>,
    pub verdict: Verdict,
    /// The hop where it was lost or stopped; `None` when delivered.
    pub hop: Option<String>,
    pub cause: Option<Cause>,
    pub explanation: String,
    pub fix: Option<String>,
    /// Span ids that prove the verdict.
    pub evidence: Vec<String>,
}

/// Everything the analyzer says about one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageVerdicts {
    pub message_id: String,
    /// The broker that stored it, when known.
    pub broker: Option<String>,
    /// When it was first sent (or stored), ns since the epoch.
    pub sent_ns: Option<u64>,
    pub keys: Vec<String>,
    pub topic: Option<String>,
    pub trace_ids: Vec<String>,
    /// Successful process spans (more than one: duplicates).
    pub process_count: u32,
    /// The producer saw a failure but the broker stored the message.
    pub send_indeterminate: bool,
    /// How far along send, store, flush, replicate, receive, process the message got.
    pub reached: Vec<&'static str>,
    pub verdicts: Vec<GroupVerdict>,
}

/// How to judge.
#[derive(Debug, Clone)]
pub struct Options {
    /// Silence shorter than this is not yet loss (DESIGN: 30 s).
    pub grace_ns: u64,
    /// The time to judge at (ns since the epoch), usually now.
    pub now_ns: u64,
    /// Groups expected to consume every topic, besides those seen consuming it.
    pub groups: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Options {
            grace_ns: 30_000_000_000,
            now_ns: now,
            groups: Vec::new(),
        }
    }
}
