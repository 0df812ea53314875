//! Consume queues: per topic and queue id, the commit-log position of each
//! message in queue order.
//!
//! Derived data: rebuilt from the commit log on every start, so it can never
//! disagree with it (RocketMQ persists them as files; this broker keeps them
//! in memory, 12 bytes a message).

use std::collections::HashMap;

/// Where one queued message sits in the commit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    pub commitlog_offset: u64,
    pub size: u32,
}

/// Every topic queue of a broker.
#[derive(Debug, Default)]
pub struct ConsumeQueues {
    queues: HashMap<(String, u32), Vec<CqEntry>>,
}

impl ConsumeQueues {
    /// Appends an entry; returns its queue offset.
    pub fn push(&mut self, topic: &str, queue_id: u32, entry: CqEntry) -> u64 {
        let queue = self.queues.entry((topic.to_owned(), queue_id)).or_default();
        queue.push(entry);
        queue.len() as u64 - 1
    }

    /// The queue offset the next message of this queue gets.
    pub fn next_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queues
            .get(&(topic.to_owned(), queue_id))
            .map_or(0, |q| q.len() as u64)
    }

    /// Up to `max` entries from `queue_offset` on.
    pub fn range(&self, topic: &str, queue_id: u32, queue_offset: u64, max: usize) -> &[CqEntry] {
        match self.queues.get(&(topic.to_owned(), queue_id)) {
            Some(q) if (queue_offset as usize) < q.len() => {
                let from = queue_offset as usize;
                &q[from..(from + max).min(q.len())]
            }
            _ => &[],
        }
    }

    /// The queue ids a topic has messages in, sorted.
    pub fn queue_ids(&self, topic: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .queues
            .keys()
            .filter(|(t, _)| t == topic)
            .map(|(_, q)| *q)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every (topic, queue id), sorted.
    pub fn all(&self) -> Vec<(String, u32)> {
        let mut all: Vec<(String, u32)> = self.queues.keys().cloned().collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_offsets_count_per_queue() {
        let mut cq = ConsumeQueues::default();
        let e = |o| CqEntry {
            commitlog_offset: o,
            size: 10,
        };
        assert_eq!(cq.push("t", 0, e(0)), 0);
        assert_eq!(cq.push("t", 1, e(10)), 0);
        assert_eq!(cq.push("t", 0, e(20)), 1);
        assert_eq!(cq.next_offset("t", 0), 2);
        assert_eq!(cq.range("t", 0, 1, 10), &[e(20)]);
        assert!(cq.range("t", 0, 5, 10).is_empty());
        assert_eq!(cq.queue_ids("t"), vec![0, 1]);
    }
}
