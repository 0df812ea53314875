//! The words of a verdict: times as people read them, and the fixes of
//! DESIGN section 1.

use crate::model::Verdict;

/// `10:00:00.120` (UTC).
pub fn at(ns: u64) -> String {
    chrono::DateTime::from_timestamp((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ns.to_string())
}

/// What prevents a loss of this kind.
pub fn fix(verdict: Verdict) -> Option<&'static str> {
    Some(match verdict {
        Verdict::LostAtSend => {
            "send synchronously with retries (and check the result of async sends), or send a transactional (half) message with check-back"
        }
        Verdict::LostAtFlush => {
            "set flushDiskType = SYNC_FLUSH so a send is acknowledged only after fsync"
        }
        Verdict::LostAtReplication => {
            "set brokerRole = SYNC_MASTER so a slave acknowledges the message before the producer is told it is stored"
        }
        Verdict::LostAtConsumer => {
            "acknowledge only after processing succeeds, return reconsume-later on failure, make processing idempotent, and let retries end in the dead-letter queue"
        }
        Verdict::LostInTransit => {
            "trace the broker's own hops (flush, replicate, recover) and the consumer's offset commits, so the lost hop can be named"
        }
        Verdict::DeadLettered => {
            "fix what makes processing fail, then resend it from the dead-letter queue (lasthop admin resend)"
        }
        Verdict::HalfPending => {
            "make sure the producer group is running and its check listener answers from the local transaction's state"
        }
        Verdict::NeverSent => {
            "make the business change and the message one transaction (a transactional message), so one cannot happen without the other"
        }
        Verdict::Delivered | Verdict::InFlight | Verdict::RolledBack | Verdict::IncompleteTrace => {
            return None;
        }
    })
}
