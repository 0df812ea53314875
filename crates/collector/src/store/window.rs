//! Reading a time window a share of its messages at a time, so that batch
//! work over a history larger than memory holds one share at once.
//!
//! A [`Share`] is the messages whose id hashes to it, plus every span without
//! a message id (flush, replicate, recover and failover ranges, offset
//! commits, batch deliveries): those describe many messages at once, so every
//! share reads them. The hash (FNV-1a) is fixed, so a message is in the same
//! share in every pass and every process.

use tantivy::collector::Count;
use tantivy::{DocId, TantivyDocument};

use lasthop_vocab::SpanRecord;

use std::sync::Arc;

use super::scan::{Strings, first, numbers};
use super::{SpanStore, StoreError};

/// One of `of` parts of a window's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: u32,
    pub of: u32,
}

impl Share {
    /// The whole window in one share.
    pub const ALL: Share = Share { index: 0, of: 1 };

    /// The share of a message id.
    pub fn of_message(message_id: &str, of: u32) -> u32 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in message_id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % u64::from(of.max(1))) as u32
    }

    /// Whether a span with this message id is read in this share.
    pub fn holds(&self, message_id: Option<&str>) -> bool {
        message_id.is_none_or(|id| self.of <= 1 || Share::of_message(id, self.of) == self.index)
    }
}

/// The columns that say what the consumer groups did, for the spans of one
/// share: enough to gather window-wide facts without reading records.
#[derive(Debug, Default, Clone)]
pub struct FactColumns {
    pub message_id: Vec<Option<Arc<str>>>,
    pub hop: Vec<Option<Arc<str>>>,
    pub group: Vec<Option<Arc<str>>>,
    pub topic: Vec<Option<Arc<str>>>,
    pub start_ns: Vec<u64>,
    /// Neither an error status nor an error type.
    pub ok: Vec<bool>,
    pub broker: Vec<Option<Arc<str>>>,
    pub epoch: Vec<Option<u64>>,
    pub commitlog_offset: Vec<Option<u64>>,
    pub commitlog_size: Vec<Option<u64>>,
    pub range_end: Vec<Option<u64>>,
}

impl SpanStore {
    /// The [`FactColumns`] of the spans of `share` that started in
    /// `[start_ns, end_ns)`, from fast fields only.
    pub fn scan_facts(
        &self,
        start_ns: u64,
        end_ns: u64,
        share: Share,
    ) -> Result<FactColumns, StoreError> {
        let mut out = FactColumns::default();
        for segment in self.searcher().segment_readers() {
            let start = numbers(segment, "start_ns")?;
            let status = numbers(segment, "status")?;
            let message_id = Strings::open(segment, "message_id")?;
            let [hop, group, topic, error_type, broker] =
                ["hop", "group", "topic", "error_type", "broker"]
                    .map(|n| Strings::open(segment, n));
            let (hop, group, topic, error_type, broker) =
                (hop?, group?, topic?, error_type?, broker?);
            let [epoch, cl_offset, cl_size, r_end] =
                ["epoch", "commitlog_offset", "commitlog_size", "range_end"]
                    .map(|n| numbers(segment, n));
            let (epoch, cl_offset, cl_size, r_end) = (epoch?, cl_offset?, cl_size?, r_end?);
            let share_of_ord: Vec<u32> = message_id
                .dictionary()
                .iter()
                .map(|id| Share::of_message(id, share.of))
                .collect();
            let alive = segment.alive_bitset();
            for doc in 0..segment.max_doc() {
                let t = first(&start, doc).unwrap_or(0);
                if t < start_ns || t >= end_ns || alive.is_some_and(|a| !a.is_alive(doc)) {
                    continue;
                }
                let ord = message_id.ord(doc);
                if ord.is_some_and(|o| share.of > 1 && share_of_ord[o as usize] != share.index) {
                    continue;
                }
                out.message_id.push(message_id.first(doc));
                out.hop.push(hop.first(doc));
                out.group.push(group.first(doc));
                out.topic.push(topic.first(doc));
                out.start_ns.push(t);
                out.ok
                    .push(first(&status, doc) != Some(2) && error_type.ord(doc).is_none());
                out.broker.push(broker.first(doc));
                out.epoch.push(first(&epoch, doc));
                out.commitlog_offset.push(first(&cl_offset, doc));
                out.commitlog_size.push(first(&cl_size, doc));
                out.range_end.push(first(&r_end, doc));
            }
        }
        Ok(out)
    }

    /// How many spans started in `[start_ns, end_ns)`.
    pub fn count_in_window(&self, start_ns: u64, end_ns: u64) -> Result<u64, StoreError> {
        let query = self.time_query(Some(start_ns), Some(end_ns));
        Ok(self.searcher().search(query.as_ref(), &Count)? as u64)
    }

    /// Every span that started in `[start_ns, end_ns)` and is read in
    /// `share`, but those of the messages `skip` names, one part per segment, in no particular order. Segments are
    /// read in parallel (rayon); only the chosen spans' records are read from
    /// the document store. `progress` hears each part as it is read.
    pub fn records_in_window(
        &self,
        start_ns: u64,
        end_ns: u64,
        share: Share,
        skip: &(dyn Fn(&str) -> bool + Sync),
        progress: &(dyn Fn(&[SpanRecord]) + Sync),
    ) -> Result<Vec<Vec<SpanRecord>>, StoreError> {
        use rayon::prelude::*;
        let searcher = self.searcher();
        let parts: Vec<Vec<SpanRecord>> = searcher
            .segment_readers()
            .par_iter()
            .map(|segment| {
                let part = self.segment_records(segment, start_ns, end_ns, share, skip)?;
                progress(&part);
                Ok(part)
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(parts)
    }

    fn segment_records(
        &self,
        segment: &tantivy::SegmentReader,
        start_ns: u64,
        end_ns: u64,
        share: Share,
        skip: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<SpanRecord>, StoreError> {
        let start = segment.fast_fields().column_opt::<u64>("start_ns")?;
        let message_id = Strings::open(segment, "message_id")?;
        // Whether each message id of this segment's dictionary is read, computed once.
        let read_ord: Vec<bool> = message_id
            .dictionary()
            .iter()
            .map(|id| Share::of_message(id, share.of) == share.index && !skip(id))
            .collect();
        let store = segment.get_store_reader(64)?;
        let alive = segment.alive_bitset();
        let chosen = |doc: DocId| {
            let t = start.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
            if t < start_ns || t >= end_ns || alive.is_some_and(|a| !a.is_alive(doc)) {
                return false;
            }
            message_id.ord(doc).is_none_or(|o| read_ord[o as usize])
        };
        let mut out = Vec::new();
        for doc in (0..segment.max_doc()).filter(|d| chosen(*d)) {
            let document: TantivyDocument = store.get(doc)?;
            out.push(self.decode(&document)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Share;

    #[test]
    fn every_message_is_in_exactly_one_share_and_common_spans_in_all() {
        let of = 7;
        let mut sizes = [0u32; 7];
        for i in 0..7000 {
            let id = format!("7F000001{i:016X}");
            let holders: Vec<u32> = (0..of)
                .filter(|&index| Share { index, of }.holds(Some(&id)))
                .collect();
            assert_eq!(holders, vec![Share::of_message(&id, of)]);
            sizes[holders[0] as usize] += 1;
        }
        // The hash spreads ids: no share is empty or holds twice its part.
        assert!(sizes.iter().all(|&n| n > 500 && n < 2000), "{sizes:?}");
        assert!((0..of).all(|index| Share { index, of }.holds(None)));
        assert!(Share::ALL.holds(Some("any")));
    }
}
