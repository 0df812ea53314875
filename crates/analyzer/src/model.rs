//! What the analyzer says about a message.

use serde::Serialize;

/// Defines [`Verdict`] from one list: each variant with its name, so that
/// the enum, [`Verdict::ALL`] and [`Verdict::as_str`] cannot disagree (a
/// verdict added to the list is in all three; one left out is in none).
macro_rules! verdicts {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )+) => {
        /// The verdict names of DESIGN section 5; tools and users match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Verdict {
            $( $(#[$doc])* $variant, )+
        }

        impl Verdict {
            /// Every verdict, in DESIGN's order (reports list them all, zeros too).
            pub const ALL: &'static [Verdict] = &[ $( Verdict::$variant, )+ ];

            /// The verdict's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Verdict::$variant => $name, )+
                }
            }
        }
    };
}

verdicts! {
    /// A process span of the group succeeded.
    Delivered = "delivered",
    /// Durable on the broker, not yet consumed: backlog, not loss.
    InFlight = "in_flight",
    /// An intent exists, no send attempt does.
    NeverSent = "never_sent",
    /// Every send attempt failed and the broker never stored it.
    LostAtSend = "lost_at_send",
    /// Its broker restarted below it and no flush covered it.
    LostAtFlush = "lost_at_flush",
    /// Its master's data was lost or a replica took over below it, unacked.
    LostAtReplication = "lost_at_replication",
    /// The group committed past it and no processing of it succeeded.
    LostAtConsumer = "lost_at_consumer",
    /// Accepted, never received, and the evidence to name the hop is missing.
    LostInTransit = "lost_in_transit",
    /// Moved to the dead-letter queue after its retries.
    DeadLettered = "dead_lettered",
    /// A transactional message rolled back (intended, not a loss).
    RolledBack = "rolled_back",
    /// A half message neither committed nor rolled back yet.
    HalfPending = "half_pending",
    /// The spans needed to decide are missing.
    IncompleteTrace = "incomplete_trace",
}

impl Verdict {
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

/// The time a window is judged at, and where it came from: history has its
/// own "now" (DESIGN section 5). Over files or a past window, silence is
/// counted back from the end of the data, not from the wall clock, so a
/// message sent moments before the data ends is in flight, not unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgedAt {
    /// ns since the epoch.
    pub ns: u64,
    /// Where it came from, for the output: `--now`, `the newest span`, `the wall clock`.
    pub from: &'static str,
}

impl JudgedAt {
    /// `--now` when given; else the newest span of the data (capped at the
    /// window's end); the wall clock when there is no span at all.
    pub fn resolve(flag: Option<u64>, newest_span: Option<u64>, until: Option<u64>) -> JudgedAt {
        if let Some(ns) = flag {
            return JudgedAt { ns, from: "--now" };
        }
        match newest_span {
            Some(ns) => JudgedAt {
                ns: until.map_or(ns, |u| ns.min(u)),
                from: "the newest span",
            },
            None => JudgedAt {
                ns: Options::default().now_ns,
                from: "the wall clock",
            },
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Verdict;

    #[test]
    fn every_verdict_is_listed_once_and_serializes_as_its_name() {
        let mut names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        for v in Verdict::ALL {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Verdict::ALL.len());
    }
}
