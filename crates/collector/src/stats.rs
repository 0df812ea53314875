//! The collector's own counters: what came in, what was acknowledged,
//! indexed or refused. Nothing is dropped silently; every refusal is counted.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters, shared by every part of the collector.
#[derive(Debug, Default)]
pub struct Stats {
    pub received_spans: AtomicU64,
    pub acknowledged_spans: AtomicU64,
    pub indexed_spans: AtomicU64,
    /// Spans refused inside an accepted request (bad ids), reported as partial success.
    pub rejected_spans: AtomicU64,
    /// Requests refused whole: too large, malformed, or pushed back.
    pub refused_requests: AtomicU64,
    /// Requests pushed back because indexing fell behind.
    pub backpressure_requests: AtomicU64,
    pub replayed_spans: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub commits: AtomicU64,
    /// Acknowledged spans that could not be indexed (a write-ahead log
    /// record that no longer decodes on replay): must stay 0.
    pub dropped_spans: AtomicU64,
    /// When the index last committed, ns since the epoch (0: not yet).
    pub last_commit_ns: AtomicU64,
}

/// A snapshot of [`Stats`], as the stats endpoint and the shutdown line show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub received_spans: u64,
    pub acknowledged_spans: u64,
    pub indexed_spans: u64,
    pub rejected_spans: u64,
    pub refused_requests: u64,
    pub backpressure_requests: u64,
    pub replayed_spans: u64,
    pub wal_bytes: u64,
    pub commits: u64,
    pub dropped_spans: u64,
    /// WAL bytes acknowledged but not yet indexed.
    pub backlog_bytes: u64,
    /// How long acknowledged spans have waited for the index, in seconds:
    /// 0 when nothing waits, else the time since the index last committed.
    pub index_lag_seconds: f64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self, backlog_bytes: u64) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            received_spans: get(&self.received_spans),
            acknowledged_spans: get(&self.acknowledged_spans),
            indexed_spans: get(&self.indexed_spans),
            rejected_spans: get(&self.rejected_spans),
            refused_requests: get(&self.refused_requests),
            backpressure_requests: get(&self.backpressure_requests),
            replayed_spans: get(&self.replayed_spans),
            wal_bytes: get(&self.wal_bytes),
            commits: get(&self.commits),
            dropped_spans: get(&self.dropped_spans),
            backlog_bytes,
            index_lag_seconds: match (backlog_bytes, get(&self.last_commit_ns)) {
                (0, _) => 0.0,
                (_, last) => now_ns().saturating_sub(last) as f64 / 1e9,
            },
        }
    }

    /// Records that the index committed now.
    pub fn mark_commit(&self) {
        self.last_commit_ns.store(now_ns(), Ordering::Relaxed);
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
