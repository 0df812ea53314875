//! Reading a time window a share of its messages at a time, so that batch
//! work over a history larger than memory holds one share at once.
//!
//! A [`Share`] is the messages whose id hashes to it, plus every span without
//! a message id (flush, replicate, recover and failover ranges, offset
//! commits, batch deliveries): those describe many messages at once, so every
//! share reads them. The hash (FNV-1a) is fixed, so a message is in the same
//! share in every pass and every process.

use tantivy::collector::Count;

use lasthop_vocab::SpanRecord;

use super::chunk::Mapped;
use super::chunk::{CHUNK, Chunk};
use super::facts::{KeyMemo, MessageKey, message_key};
use super::schema::StoredRecord;
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
        Share::of_key(message_key(message_id), of)
    }

    /// The share of a message key.
    pub fn of_key(key: MessageKey, of: u32) -> u32 {
        ((key as u64) % u64::from(of.max(1))) as u32
    }

    /// Whether a span with this message id is read in this share.
    pub fn holds(&self, message_id: Option<&str>) -> bool {
        message_id.is_none_or(|id| self.holds_key(message_key(id)))
    }

    /// Whether the spans of the message with this key are read in this share.
    pub fn holds_key(&self, key: MessageKey) -> bool {
        self.of <= 1 || Share::of_key(key, self.of) == self.index
    }
}

/// Whose spans a read of a window's records takes; spans without a message
/// id are always taken.
#[derive(Clone, Copy)]
pub enum Messages<'a> {
    /// The messages of a share.
    In(Share),
    /// The messages whose keys this chooses; message keys a one-share
    /// facts pass kept in the memo are used rather than computed again.
    Chosen(&'a (dyn Fn(MessageKey) -> bool + Sync), Option<&'a KeyMemo>),
    /// No message: only spans without a message id (no key is computed).
    NoMessage,
}

impl SpanStore {
    /// When the newest span of the store started (`None` when it holds
    /// none): the end of the data, history's "now". Read from each segment's
    /// column statistics, without a scan.
    pub fn newest_start_ns(&self) -> Result<Option<u64>, StoreError> {
        let mut newest = None;
        for segment in self.searcher().segment_readers() {
            if segment.num_docs() == 0 {
                continue;
            }
            if let Some(column) = segment.fast_fields().column_opt::<u64>("start_ns")? {
                newest = newest.max(Some(column.max_value()));
            }
        }
        Ok(newest)
    }

    /// How many spans started in `[start_ns, end_ns)`.
    pub fn count_in_window(&self, start_ns: u64, end_ns: u64) -> Result<u64, StoreError> {
        let query = self.time_query(Some(start_ns), Some(end_ns));
        Ok(self.searcher().search(query.as_ref(), &Count)? as u64)
    }

    /// The spans of `messages` that started in `[start_ns, end_ns)`, one
    /// part per segment, in no particular order. Segments are read in
    /// parallel (rayon); only the chosen spans' records are read from the
    /// document store. `progress` hears each part as it is read.
    pub fn records_in_window(
        &self,
        start_ns: u64,
        end_ns: u64,
        messages: Messages<'_>,
        progress: &(dyn Fn(&[SpanRecord]) + Sync),
    ) -> Result<Vec<Vec<SpanRecord>>, StoreError> {
        use rayon::prelude::*;
        let searcher = self.searcher();
        let parts: Vec<Vec<SpanRecord>> = searcher
            .segment_readers()
            .par_iter()
            .map(|segment| {
                let part = self.segment_records(segment, start_ns, end_ns, messages)?;
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
        messages: Messages<'_>,
    ) -> Result<Vec<SpanRecord>, StoreError> {
        let start = segment.fast_fields().column_opt::<u64>("start_ns")?;
        // Whether each message of this segment's dictionary is read, computed once.
        let key = xxhash_rust::xxh3::xxh3_128;
        let read = match messages {
            Messages::In(share) => {
                Mapped::open(segment, "message_id", |id| share.holds_key(key(id)))?
            }
            Messages::Chosen(chosen, memo) => {
                match memo.and_then(|m| m.keys(segment.segment_id())) {
                    Some(keys) => {
                        let values = keys.iter().map(|&k| chosen(k)).collect();
                        Mapped::known(segment, "message_id", values)?
                    }
                    None => Mapped::open(segment, "message_id", |id| chosen(key(id)))?,
                }
            }
            Messages::NoMessage => Mapped::constant(segment, "message_id", false)?,
        };
        if read.never(&true) {
            // Every span has a message id and none is chosen.
            return Ok(Vec::new());
        }
        let store = segment.get_store_reader(64)?;
        let alive = segment.alive_bitset();
        let mut out = Vec::new();
        // Documents chosen a chunk at a time, from the columns.
        let mut chunk = Chunk::default();
        let mut wanted = Vec::new();
        // Start times are looked at only for the chosen spans, and only when
        // the window has a bound.
        let bounded = start_ns > 0 || end_ns < u64::MAX;
        let in_window = |doc| {
            !bounded || {
                let t = start.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
                t >= start_ns && t < end_ns
            }
        };
        let max_doc = segment.max_doc();
        let mut first = 0;
        while first < max_doc {
            let last = max_doc.min(first.saturating_add(CHUNK));
            chunk.start(first..last, |&d| alive.is_none_or(|a| a.is_alive(d)));
            first = last;
            // A span without a message id is always read.
            read.read(&mut chunk, true, &mut wanted);
            for (&doc, &yes) in chunk.docs.iter().zip(&wanted) {
                if yes && in_window(doc) {
                    let StoredRecord(bytes) = store.get(doc)?;
                    out.push(postcard::from_bytes(&bytes)?);
                }
            }
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
