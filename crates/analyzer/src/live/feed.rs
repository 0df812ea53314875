//! The live judge's findings as a feed: each loss and each verdict change,
//! numbered, the newest [`FEED_LEN`] kept, for `GET /api/live/losses` and
//! `lasthop watch` (which long-poll it) and for the webhook.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::Verdict;
use crate::report::LostMessage;

/// Events kept for readers of the feed.
pub const FEED_LEN: usize = 10_000;

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// It was found lost (first judged so, or changed to a loss).
    Lost,
    /// A late span changed a settled verdict that was a loss to one that
    /// is not (a redelivery that succeeded, say).
    Recovered,
}

/// One finding: the message's `lost_messages` entry of `report --format
/// json`, with what it was before when a late span changed it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    /// Position in the feed, from 1.
    pub seq: u64,
    pub event: EventKind,
    /// When the judge decided (RFC 3339).
    pub judged_at: String,
    #[serde(flatten)]
    pub message: LostMessage,
    /// The verdict a late span changed, if one did.
    pub previous_verdict: Option<Verdict>,
}

/// The feed: the newest events and a signal for those waiting on the next.
#[derive(Debug)]
pub struct Feed {
    events: Mutex<VecDeque<LiveEvent>>,
    newest: watch::Sender<u64>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            events: Mutex::new(VecDeque::new()),
            newest: watch::channel(0).0,
        }
    }
}

impl Feed {
    /// Numbers and keeps `event`, and returns it numbered.
    pub fn push(&self, mut event: LiveEvent) -> LiveEvent {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        event.seq = *self.newest.borrow() + 1;
        if events.len() >= FEED_LEN {
            events.pop_front();
        }
        events.push_back(event.clone());
        self.newest.send_replace(event.seq);
        event
    }

    /// The newest event's number (0: none yet).
    pub fn newest(&self) -> u64 {
        *self.newest.borrow()
    }

    /// Events after `seq`, at most `limit`, oldest first.
    pub fn after(&self, seq: u64, limit: usize) -> Vec<LiveEvent> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .filter(|e| e.seq > seq)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Waits up to `wait` for an event after `seq`.
    pub async fn wait_after(&self, seq: u64, wait: Duration) {
        let mut rx = self.newest.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n > seq)).await;
    }
}
