//! The spans without a message id that judging a message needs (its
//! broker's flushes, replications, restarts and failovers; its group's
//! offset commits and deliveries; business intents), kept for a horizon
//! and at most [`MAX_CONTEXT_SPANS`] of them, oldest out first.

use std::collections::VecDeque;

use lasthop_vocab::{Hop, SpanRecord};

/// Most context spans kept; older ones go first.
pub const MAX_CONTEXT_SPANS: usize = 500_000;

/// Recent context spans, in arrival order.
#[derive(Debug, Default)]
pub struct Context {
    /// (arrival, ns since the epoch; span).
    spans: VecDeque<(u64, SpanRecord)>,
    /// Spans let go before their horizon because there were too many.
    pub overflowed: u64,
}

impl Context {
    /// Whether a span without a message id is context for judging (see the module doc).
    pub fn wanted(r: &SpanRecord) -> bool {
        matches!(
            r.hop,
            Some(
                Hop::Flush
                    | Hop::Replicate
                    | Hop::Recover
                    | Hop::Failover
                    | Hop::Settle
                    | Hop::Receive
                    | Hop::Intent
            )
        )
    }

    pub fn push(&mut self, arrived_ns: u64, r: SpanRecord) {
        if self.spans.len() >= MAX_CONTEXT_SPANS {
            self.spans.pop_front();
            self.overflowed += 1;
        }
        self.spans.push_back((arrived_ns, r));
    }

    /// Lets go of spans that arrived before `horizon_ns`.
    pub fn prune(&mut self, horizon_ns: u64) {
        while self.spans.front().is_some_and(|(at, _)| *at < horizon_ns) {
            self.spans.pop_front();
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &SpanRecord> + Clone {
        self.spans.iter().map(|(_, r)| r)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }
}
