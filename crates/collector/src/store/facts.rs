//! Fast-field facts for judging a whole window: the few columns that say
//! what happened to each message, read a chunk of documents at a time, with
//! nothing allocated per span.
//!
//! - A message id becomes a [`MessageKey`] (128-bit xxh3 of its bytes),
//!   computed once per term of a segment's dictionary; a span points at its
//!   segment's key by dictionary ordinal. At 128 bits two ids of one window
//!   colliding is far less likely than a disk error.
//! - Group, topic and broker become small numbers in a [`Names`] table shared
//!   by every segment of a scan (each segment's dictionary is interned once).
//! - The hop is parsed once per dictionary term.
//!
//! Segments are read in parallel (rayon); each folds its chunks into a state
//! the caller defines, so what a scan holds is what the caller keeps, not
//! the window's rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use lasthop_vocab::{Hop, SpanRecord};
use tantivy::SegmentReader;
use tantivy::columnar::Column;
use tantivy::index::SegmentId;

use super::chunk::{CHUNK, Chunk, Mapped, numbers};
use super::{SpanStore, StoreError};

/// A message id as batch work sees it: its 128-bit xxh3 hash.
pub type MessageKey = u128;

/// The [`MessageKey`] of a message id.
pub fn message_key(message_id: &str) -> MessageKey {
    xxhash_rust::xxh3::xxh3_128(message_id.as_bytes())
}

/// "No value" in the `u32` columns of a [`FactBatch`].
pub const NONE: u32 = u32::MAX;

/// Small strings (groups, topics, brokers) numbered in order of first sight.
#[derive(Debug, Default)]
pub struct Names {
    inner: Mutex<NameTable>,
}

#[derive(Debug, Default)]
struct NameTable {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    /// The number of `name`, given one if it has none yet.
    pub fn id(&self, name: &str) -> u32 {
        let mut t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = t.ids.get(name) {
            return id;
        }
        let id = u32::try_from(t.names.len()).unwrap_or(NONE);
        let name: Arc<str> = Arc::from(name);
        t.names.push(name.clone());
        t.ids.insert(name, id);
        id
    }

    /// The number of `name` if it was seen.
    pub fn get(&self, name: &str) -> Option<u32> {
        let t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        t.ids.get(name).copied()
    }

    /// Every name, indexed by number.
    pub fn all(&self) -> Vec<Arc<str>> {
        let t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        t.names.clone()
    }
}

/// The facts of a chunk of spans, one entry per span in every column.
#[derive(Debug, Default, Clone)]
pub struct FactBatch {
    /// Position of the span's message in the segment's keys; [`NONE`] for a
    /// span without a message id.
    pub message: Vec<u32>,
    pub hop: Vec<Option<Hop>>,
    /// Numbers in the scan's [`Names`], or [`NONE`].
    pub group: Vec<u32>,
    pub topic: Vec<u32>,
    pub broker: Vec<u32>,
    pub start_ns: Vec<u64>,
    /// Neither an error status nor an error type.
    pub ok: Vec<bool>,
    pub epoch: Vec<Option<u64>>,
    pub commitlog_offset: Vec<Option<u64>>,
    pub commitlog_size: Vec<Option<u64>>,
    pub range_end: Vec<Option<u64>>,
    pub queue_id: Vec<Option<u64>>,
    pub queue_offset: Vec<Option<u64>>,
}

impl FactBatch {
    pub fn len(&self) -> usize {
        self.start_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start_ns.is_empty()
    }

    /// The keys and facts of records: what a store scan would give for them
    /// as one segment (tests check the store's facts against these).
    pub fn of_records<'a>(
        spans: impl IntoIterator<Item = &'a SpanRecord>,
        names: &Names,
    ) -> (Vec<MessageKey>, FactBatch) {
        let mut keys = Vec::new();
        let mut positions: HashMap<&str, u32> = HashMap::new();
        let mut b = FactBatch::default();
        let id = |v: &Option<String>| v.as_deref().map_or(NONE, |s| names.id(s));
        for s in spans {
            let message = s.message_id.as_deref().map_or(NONE, |m| {
                *positions.entry(m).or_insert_with(|| {
                    keys.push(message_key(m));
                    (keys.len() - 1) as u32
                })
            });
            b.message.push(message);
            b.hop.push(s.hop);
            b.group.push(id(&s.group));
            b.topic.push(id(&s.topic));
            b.broker.push(id(&s.broker));
            b.start_ns.push(s.start_ns);
            b.ok.push(!s.is_error());
            b.epoch.push(s.epoch);
            b.commitlog_offset.push(s.commitlog_offset);
            b.commitlog_size.push(s.commitlog_size);
            b.range_end.push(s.range_end);
            b.queue_id.push(s.queue_id.map(u64::from));
            b.queue_offset.push(s.queue_offset);
        }
        (keys, b)
    }
}

/// What a facts pass folds each segment's chunks into
/// ([`SpanStore::fold_facts`]).
pub trait FactsFold: Send {
    /// Adds a chunk of the segment's spans; `keys` are the segment's message
    /// keys, which [`FactBatch::message`] points into.
    fn add(&mut self, keys: &[MessageKey], batch: &FactBatch);

    /// Called once the segment's last chunk is in: the states of every
    /// segment are kept until the pass ends, so scratch is freed here.
    fn finish(&mut self) {}
}

/// What a facts pass over a pinned store can keep for the records pass
/// that follows it: each segment's message keys by dictionary ordinal
/// (16 bytes per term), so that the records pass picks its messages
/// without hashing every id again.
#[derive(Debug, Default)]
pub struct KeyMemo {
    keys: Mutex<HashMap<SegmentId, Arc<Vec<MessageKey>>>>,
}

impl KeyMemo {
    /// Keeps the message keys of `segment` by dictionary ordinal.
    fn keep_keys(&self, segment: SegmentId, keys: Vec<MessageKey>) {
        let mut kept = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        kept.insert(segment, Arc::new(keys));
    }

    /// The message keys of `segment` by dictionary ordinal, if a pass kept
    /// them.
    pub(super) fn keys(&self, segment: SegmentId) -> Option<Arc<Vec<MessageKey>>> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(&segment).cloned()
    }
}

/// A segment's message keys by dictionary ordinal, kept in `memo` if given.
fn segment_keys(
    segment: &SegmentReader,
    memo: Option<&KeyMemo>,
) -> Result<Mapped<MessageKey>, StoreError> {
    let keys = Mapped::open(segment, "message_id", xxhash_rust::xxh3::xxh3_128)?;
    if let Some(memo) = memo {
        memo.keep_keys(segment.segment_id(), keys.values.clone());
    }
    Ok(keys)
}

impl SpanStore {
    /// Folds the facts of the spans that started in `[start_ns, end_ns)`:
    /// per segment (in parallel), `init` makes a state from the segment's
    /// position in the pass and its message keys, and each chunk is added
    /// to it (a span without a message id comes with message [`NONE`]).
    /// `memo` keeps each segment's message keys for a records pass over the
    /// same commit (see [`SpanStore::pinned`]). Returns the states, one per
    /// segment, in segment order.
    pub fn fold_facts<S: FactsFold>(
        &self,
        (start_ns, end_ns): (u64, u64),
        memo: Option<&KeyMemo>,
        names: &Names,
        init: impl Fn(u32, &[MessageKey]) -> S + Sync,
    ) -> Result<Vec<S>, StoreError> {
        use rayon::prelude::*;
        let searcher = self.searcher();
        searcher
            .segment_readers()
            .par_iter()
            .enumerate()
            .map(|(position, segment)| {
                let keys = segment_keys(segment, memo)?;
                fold_segment(segment, (start_ns, end_ns), &keys, names, |keys| {
                    init(position as u32, keys)
                })
            })
            .collect()
    }
}

/// The columns a facts pass reads, opened once per segment, and the
/// buffers their reads reuse.
struct FactColumns {
    hop: Mapped<Option<Hop>>,
    group: Mapped<u32>,
    topic: Mapped<u32>,
    broker: Mapped<u32>,
    error_type: Mapped<bool>,
    status: Option<Column<u64>>,
    epoch: Option<Column<u64>>,
    cl_offset: Option<Column<u64>>,
    cl_size: Option<Column<u64>>,
    r_end: Option<Column<u64>>,
    q_id: Option<Column<u64>>,
    q_offset: Option<Column<u64>>,
    errors: Vec<bool>,
    statuses: Vec<Option<u64>>,
}

impl FactColumns {
    fn open(segment: &SegmentReader, names: &Names) -> Result<Self, StoreError> {
        let name = |bytes: &[u8]| names.id(&String::from_utf8_lossy(bytes));
        let hop = Mapped::open(segment, "hop", |b| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<Hop>().ok())
        })?;
        Ok(FactColumns {
            hop,
            group: Mapped::open(segment, "group", name)?,
            topic: Mapped::open(segment, "topic", name)?,
            broker: Mapped::open(segment, "broker", name)?,
            error_type: Mapped::open(segment, "error_type", |_| true)?,
            status: numbers(segment, "status")?,
            epoch: numbers(segment, "epoch")?,
            cl_offset: numbers(segment, "commitlog_offset")?,
            cl_size: numbers(segment, "commitlog_size")?,
            r_end: numbers(segment, "range_end")?,
            q_id: numbers(segment, "queue_id")?,
            q_offset: numbers(segment, "queue_offset")?,
            errors: Vec::new(),
            statuses: Vec::new(),
        })
    }

    /// Whether each of the chunk's documents is neither an error status
    /// nor has an error type.
    fn read_ok(&mut self, chunk: &mut Chunk, out: &mut Vec<bool>) {
        self.error_type.read(chunk, false, &mut self.errors);
        chunk.numbers(self.status.as_ref(), &mut self.statuses);
        out.clear();
        out.extend(
            (self.statuses.iter().zip(&self.errors))
                .map(|(status, error)| *status != Some(2) && !error),
        );
    }

    /// Every fact of the chunk's documents but their start times and
    /// messages, which `batch` already has.
    fn read(&mut self, chunk: &mut Chunk, batch: &mut FactBatch) {
        self.hop.read(chunk, None, &mut batch.hop);
        self.group.read(chunk, NONE, &mut batch.group);
        self.topic.read(chunk, NONE, &mut batch.topic);
        self.broker.read(chunk, NONE, &mut batch.broker);
        self.read_ok(chunk, &mut batch.ok);
        chunk.numbers(self.epoch.as_ref(), &mut batch.epoch);
        chunk.numbers(self.cl_offset.as_ref(), &mut batch.commitlog_offset);
        chunk.numbers(self.cl_size.as_ref(), &mut batch.commitlog_size);
        chunk.numbers(self.r_end.as_ref(), &mut batch.range_end);
        chunk.numbers(self.q_id.as_ref(), &mut batch.queue_id);
        chunk.numbers(self.q_offset.as_ref(), &mut batch.queue_offset);
    }
}

/// One segment's part of [`SpanStore::fold_facts`]. `init` runs once the
/// segment's names are in `names`. Returns the state.
fn fold_segment<S: FactsFold>(
    segment: &SegmentReader,
    (lo, hi): (u64, u64),
    keys: &Mapped<MessageKey>,
    names: &Names,
    init: impl Fn(&[MessageKey]) -> S,
) -> Result<S, StoreError> {
    let mut columns = FactColumns::open(segment, names)?;
    let message = Mapped {
        ords: keys.ords.clone(),
        values: (0..keys.values.len() as u32).collect(),
    };
    let start = numbers(segment, "start_ns")?;
    let alive = segment.alive_bitset();
    let mut state = init(&keys.values);

    let mut batch = FactBatch::default();
    let mut chunk = Chunk::default();
    let mut times: Vec<Option<u64>> = Vec::new();
    let mut messages: Vec<u32> = Vec::new();
    let max_doc = segment.max_doc();
    let mut first = 0;
    while first < max_doc {
        let last = max_doc.min(first.saturating_add(CHUNK));
        chunk.start(first..last, |&d| alive.is_none_or(|a| a.is_alive(d)));
        first = last;
        // In the window.
        chunk.numbers(start.as_ref(), &mut times);
        message.read(&mut chunk, NONE, &mut messages);
        let mut kept = 0;
        for i in 0..chunk.docs.len() {
            let t = times[i].unwrap_or(0);
            if t < lo || t >= hi {
                continue;
            }
            chunk.docs[kept] = chunk.docs[i];
            times[kept] = Some(t);
            messages[kept] = messages[i];
            kept += 1;
        }
        chunk.docs.truncate(kept);
        if kept == 0 {
            continue;
        }
        batch.start_ns.clear();
        batch
            .start_ns
            .extend(times[..kept].iter().map(|t| t.unwrap_or(0)));
        batch.message.clear();
        batch.message.extend_from_slice(&messages[..kept]);
        columns.read(&mut chunk, &mut batch);
        state.add(&keys.values, &batch);
    }
    state.finish();
    Ok(state)
}
