//! A window's facts from fast-field columns, without reading a record: one
//! compact `MessageState` per message, folded per segment (in parallel,
//! dense by dictionary ordinal) and merged across segments by
//! [`MessageKey`]; beside them what the consumer groups did (which consume
//! each topic, when each last processed) and how far flushes and replication
//! covered each broker's log. One pass reads a whole window
//! ([`WindowShares`]); a window larger than one share keeps its messages'
//! states in a temporary file until their share's turn (`spill.rs`).
//!
//! From these come the window-wide [`Globals`](crate::evidence::Globals)
//! and the [`PlainVerdicts`] messages, the ones the facts show the rules
//! would call delivered or in flight, which are counted without reading
//! their records. Everything else is judged from records by the rules.
//!
//! Consumers, (group, topic) pairs, are bits of a `u64`: a window with more
//! than 64 of them is reported as such ([`WindowFacts::too_many_consumers`])
//! and the caller judges it from records instead.

use std::sync::{Arc, Mutex, PoisonError};

use lasthop_collector::{
    FactBatch, FactsFold, KeyMemo, MessageKey, NONE, Names, SpanStore, StoreError,
};

use lasthop_vocab::{Hop, SpanRecord};
use polars::prelude::{PlHashMap, PlHashSet};

mod merge;
mod plain;
mod spill;

pub use plain::PlainVerdicts;

use merge::{PARTS, merge_by_key, merge_pieces, part_of};
use spill::Spill;

/// A set of message keys.
pub type KeySet = PlHashSet<MessageKey>;

/// A [`KeySet`] behind a bitmap of its keys' low bits (keys are uniform
/// hashes): asking about the many keys that are not in a small set mostly
/// reads the bitmap, which stays in cache where the set's table would not.
#[derive(Debug)]
pub struct KeyFilter<'a> {
    bits: Vec<u64>,
    keys: &'a KeySet,
}

impl<'a> KeyFilter<'a> {
    /// About 16 bits per key: one key in 16 not in the set reaches it.
    pub fn new(keys: &'a KeySet) -> Self {
        let size = (keys.len() * 16).next_power_of_two().max(64) / 64;
        let mut bits = vec![0u64; size];
        let mask = size * 64 - 1;
        for &key in keys {
            let bit = key as usize & mask;
            bits[bit / 64] |= 1 << (bit % 64);
        }
        KeyFilter { bits, keys }
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: MessageKey) -> bool {
        let bit = key as usize & (self.bits.len() * 64 - 1);
        self.bits[bit / 64] & 1 << (bit % 64) != 0 && self.keys.contains(&key)
    }
}

/// Messages' entries, each key once: a segment's messages of one part, or
/// a share's after merging.
type Entries = Vec<(MessageKey, MessageState)>;

/// Most consumers ((group, topic) pairs) a window's facts can tell apart.
const MAX_CONSUMERS: usize = 64;
/// `MessageState::topic` when the message was seen on several topics.
const SEVERAL: u32 = NONE - 1;

const SENT: u8 = 1;
const RECEIVED: u8 = 2;
const UNPLACED_STORE: u8 = 4;
/// Merged into the entry of the same message in an earlier piece.
const MERGED: u8 = 8;
/// Dead-lettered by some consumer (such a message is never plainly
/// delivered, whichever consumer it was).
const DEAD_LETTERED: u8 = 16;
/// Its placed `store` span has a queue id and offset ([`MessageState::queue`]).
const QUEUE_PLACED: u8 = 32;
/// It has an ok `process` span (of any group, or none).
const OK_PROCESS: u8 = 64;

/// What the columns say about one message. A window's facts hold one per
/// message of a share, so its size sets how many messages a share can hold
/// in a given memory: with its key, 80 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MessageState {
    /// Start of its first `send` span, `u64::MAX` if none.
    first_send: u64,
    /// End offset of its placed `store` span (the last one seen).
    store_end: u64,
    /// Queue id and offset of that span in one number, the id in the top
    /// 16 bits, if [`QUEUE_PLACED`] (see [`MessageState::queue`]).
    queue: u64,
    /// Consumer bits: an ok `process` span, any `process` span.
    ok: u64,
    processed: u64,
    /// Its topic (retry and dead-letter topics aside), [`NONE`] or [`SEVERAL`].
    topic: u32,
    /// Broker and epoch of its placed `store` span, as their number in the
    /// window's [`Placements`]; [`NONE`] if none.
    placement: u32,
    spans: u32,
    /// Placed `store` spans, up to 255.
    stores: u8,
    flags: u8,
}

const _: () = assert!(size_of::<(MessageKey, MessageState)>() == 80);

impl Default for MessageState {
    fn default() -> Self {
        MessageState {
            first_send: u64::MAX,
            store_end: 0,
            queue: 0,
            ok: 0,
            processed: 0,
            topic: NONE,
            placement: NONE,
            spans: 0,
            stores: 0,
            flags: 0,
        }
    }
}

fn merge_topic(a: u32, b: u32) -> u32 {
    match (a, b) {
        (NONE, x) | (x, NONE) => x,
        (x, y) if x == y => x,
        _ => SEVERAL,
    }
}

impl MessageState {
    /// Places its store in a queue, if the id and offset fit.
    fn set_queue(&mut self, queue_id: u64, queue_offset: u64) {
        if queue_id < 1 << 16 && queue_offset < 1 << 48 {
            self.queue = queue_id << 48 | queue_offset;
            self.flags |= QUEUE_PLACED;
        }
    }

    /// The queue id and offset of its placed store, if known.
    fn queue(&self) -> Option<(u64, u64)> {
        (self.flags & QUEUE_PLACED != 0).then_some((self.queue >> 48, self.queue & ((1 << 48) - 1)))
    }

    fn merge(&mut self, o: &MessageState) {
        self.first_send = self.first_send.min(o.first_send);
        if o.stores > 0 {
            (self.store_end, self.placement, self.queue) = (o.store_end, o.placement, o.queue);
        }
        self.stores = self.stores.saturating_add(o.stores);
        self.ok |= o.ok;
        self.processed |= o.processed;
        self.topic = merge_topic(self.topic, o.topic);
        self.spans += o.spans;
        self.flags |= o.flags;
    }
}

/// Consumers numbered across the segments of one window.
#[derive(Debug, Default)]
struct Consumers {
    pairs: Mutex<Vec<(u32, u32)>>,
}

impl Consumers {
    /// The number of (group, topic), `None` past [`MAX_CONSUMERS`].
    fn id(&self, pair: (u32, u32)) -> Option<u8> {
        let mut pairs = self.pairs.lock().unwrap_or_else(PoisonError::into_inner);
        let at = match pairs.iter().position(|p| *p == pair) {
            Some(at) => at,
            None => {
                pairs.push(pair);
                pairs.len() - 1
            }
        };
        (at < MAX_CONSUMERS).then_some(at as u8)
    }
}

/// (broker, epoch) pairs of placed `store` spans numbered across the
/// segments of one window.
#[derive(Debug, Default)]
struct Placements {
    numbers: Mutex<PlHashMap<(u32, u64), u32>>,
}

impl Placements {
    /// The number of (broker, epoch).
    fn id(&self, pair: (u32, u64)) -> u32 {
        let mut numbers = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        let next = u32::try_from(numbers.len()).unwrap_or(NONE);
        *numbers.entry(pair).or_insert(next)
    }

    /// Every (broker, epoch), indexed by number.
    fn all(&self) -> Vec<(u32, u64)> {
        let numbers = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = vec![(NONE, 0); numbers.len()];
        for (&pair, &id) in numbers.iter() {
            all[id as usize] = pair;
        }
        all
    }
}

/// Broker, epoch, and whether replication (else flush): how far its ranges reached.
type Coverage = PlHashMap<(u32, u64, bool), u64>;

/// Group, topic, queue id and epoch (if any) of offset commits (`settle`
/// spans without a message id): the highest offset committed.
type Commits = PlHashMap<(u32, u32, u64, Option<u64>), u64>;

/// Each key's highest value over both maps, in `into`.
fn max_into<K: std::hash::Hash + Eq>(into: &mut PlHashMap<K, u64>, from: PlHashMap<K, u64>) {
    for (k, v) in from {
        let slot = into.entry(k).or_default();
        *slot = (*slot).max(v);
    }
}

/// What the spans that describe many messages at once say: how far
/// flushes and replication covered each broker's log, and enough to know
/// when the rules would find nothing in them about a message.
#[derive(Debug, Default, Clone)]
struct Ranges {
    covered: Coverage,
    commits: Commits,
    /// Per broker: the highest epoch of its `recover` and `failover` spans.
    restarted: PlHashMap<u32, u64>,
    /// Topics with broker `receive` spans (deliveries of pulled batches).
    delivering: PlHashSet<u32>,
}

impl Ranges {
    /// Adds what span `i` of `b` says, if it is such a span.
    fn add(&mut self, b: &FactBatch, i: usize) {
        let (group, topic, broker) = (b.group[i], b.topic[i], b.broker[i]);
        match b.hop[i] {
            Some(hop @ (Hop::Flush | Hop::Replicate)) if broker != NONE => {
                if let (Some(epoch), Some(end)) = (b.epoch[i], b.range_end[i]) {
                    let slot = (self.covered)
                        .entry((broker, epoch, hop == Hop::Replicate))
                        .or_default();
                    *slot = (*slot).max(end);
                }
            }
            Some(Hop::Recover | Hop::Failover) if broker != NONE => {
                if let Some(epoch) = b.epoch[i] {
                    let slot = self.restarted.entry(broker).or_default();
                    *slot = (*slot).max(epoch);
                }
            }
            Some(hop @ (Hop::Settle | Hop::Receive))
                if b.message[i] == NONE && group != NONE && topic != NONE =>
            {
                let Some(queue) = b.queue_id[i] else { return };
                if hop == Hop::Receive {
                    self.delivering.insert(topic);
                } else if let Some(offset) = b.queue_offset[i] {
                    let slot = (self.commits)
                        .entry((group, topic, queue, b.epoch[i]))
                        .or_default();
                    *slot = (*slot).max(offset);
                }
            }
            _ => {}
        }
    }

    fn merge(&mut self, o: Ranges) {
        max_into(&mut self.covered, o.covered);
        max_into(&mut self.commits, o.commits);
        max_into(&mut self.restarted, o.restarted);
        self.delivering.extend(o.delivering);
    }
}

/// What the segments of one window's fold number together.
#[derive(Debug, Default)]
struct WindowTables {
    consumers: Consumers,
    placements: Placements,
}

/// One segment's fold.
struct SegmentFold<'a> {
    tables: &'a WindowTables,
    /// Retry and dead-letter topics (`%...`) by name number.
    internal_topic: Vec<bool>,
    local_consumers: PlHashMap<(u32, u32), Option<u8>>,
    local_placements: PlHashMap<(u32, u64), u32>,
    /// Where each dictionary ordinal's message is: part << 26 | position
    /// (a part of a segment holds at most 2^31 / 64 messages).
    slot_of_ord: Vec<u32>,
    /// The segment's messages, split by [`part_of`] as they are first seen.
    messages: Vec<Vec<(MessageKey, MessageState)>>,
    ranges: Ranges,
    consuming: PlHashSet<(u32, u32)>,
    last_processing: PlHashMap<(u32, u32), u64>,
    too_many_consumers: bool,
    /// Where the messages go once the segment is folded, and the segment's
    /// position in the pass; without, they are kept until the merge.
    spill: Option<(&'a Spill, u32)>,
    /// Hears how many spans each chunk added.
    progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl<'a> SegmentFold<'a> {
    fn new(keys: &[MessageKey], names: &Names, tables: &'a WindowTables) -> Self {
        SegmentFold {
            spill: None,
            progress: None,
            tables,
            internal_topic: names.all().iter().map(|n| n.starts_with('%')).collect(),
            local_consumers: PlHashMap::default(),
            local_placements: PlHashMap::default(),
            slot_of_ord: vec![NONE; keys.len()],
            messages: {
                // Room for what a part gets with near certainty (keys are
                // uniform hashes), so that parts do not double their size.
                let expected = (keys.len() / PARTS) as f64;
                let room = (expected + 4.0 * expected.sqrt()) as usize + 16;
                (0..PARTS).map(|_| Vec::with_capacity(room)).collect()
            },
            ranges: Ranges::default(),
            consuming: PlHashSet::default(),
            last_processing: PlHashMap::default(),
            too_many_consumers: false,
        }
    }

    fn placement(&mut self, broker: u32, epoch: u64) -> u32 {
        let placements = &self.tables.placements;
        *(self.local_placements.entry((broker, epoch)))
            .or_insert_with(|| placements.id((broker, epoch)))
    }

    fn consumer_bit(&mut self, group: u32, topic: u32) -> u64 {
        let consumers = &self.tables.consumers;
        let id = *self
            .local_consumers
            .entry((group, topic))
            .or_insert_with(|| consumers.id((group, topic)));
        match id {
            Some(id) => 1 << id,
            None => {
                self.too_many_consumers = true;
                0
            }
        }
    }
}

impl FactsFold for SegmentFold<'_> {
    fn add(&mut self, keys: &[MessageKey], b: &FactBatch) {
        if let Some(progress) = self.progress {
            progress(b.len() as u64);
        }
        for i in 0..b.len() {
            let (hop, group, topic, t) = (b.hop[i], b.group[i], b.topic[i], b.start_ns[i]);
            self.ranges.add(b, i);
            let grouped = group != NONE && topic != NONE;
            if grouped && matches!(hop, Some(Hop::Receive | Hop::Process | Hop::Settle)) {
                self.consuming.insert((topic, group));
            }
            if grouped && hop == Some(Hop::Process) && b.ok[i] {
                let last = self.last_processing.entry((group, topic)).or_default();
                *last = (*last).max(t);
            }
            let ord = b.message[i];
            if ord == NONE
                || matches!(
                    hop,
                    Some(Hop::Flush | Hop::Replicate | Hop::Recover | Hop::Failover)
                )
            {
                continue;
            }
            let bit = match hop {
                Some(Hop::Process | Hop::Dlq) if group != NONE => self.consumer_bit(group, topic),
                _ => 0,
            };
            let placement = match (hop, b.broker[i], b.epoch[i]) {
                (Some(Hop::Store), broker, Some(epoch)) if broker != NONE => {
                    Some(self.placement(broker, epoch))
                }
                _ => None,
            };
            let slot = &mut self.slot_of_ord[ord as usize];
            if *slot == NONE {
                let key = keys[ord as usize];
                let part = &mut self.messages[part_of(key)];
                *slot = (part_of(key) as u32) << 26 | part.len() as u32;
                part.push((key, MessageState::default()));
            }
            let m = &mut self.messages[(*slot >> 26) as usize][(*slot & 0x3ff_ffff) as usize].1;
            m.spans += 1;
            if topic != NONE
                && !self
                    .internal_topic
                    .get(topic as usize)
                    .copied()
                    .unwrap_or(false)
            {
                m.topic = merge_topic(m.topic, topic);
            }
            match hop {
                Some(Hop::Send) => {
                    m.flags |= SENT;
                    m.first_send = m.first_send.min(t);
                }
                Some(Hop::TxPrepare) => m.flags |= SENT,
                Some(Hop::Receive) => m.flags |= RECEIVED,
                Some(Hop::Process) => {
                    m.processed |= bit;
                    if b.ok[i] {
                        m.ok |= bit;
                        m.flags |= OK_PROCESS;
                    }
                }
                Some(Hop::Dlq) if bit != 0 => m.flags |= DEAD_LETTERED,
                Some(Hop::Store) => match (placement, b.commitlog_offset[i]) {
                    (Some(placement), Some(offset)) => {
                        m.stores = m.stores.saturating_add(1);
                        m.placement = placement;
                        m.store_end = offset + b.commitlog_size[i].unwrap_or(1);
                        if let (Some(q), Some(qo)) = (b.queue_id[i], b.queue_offset[i]) {
                            m.set_queue(q, qo);
                        }
                    }
                    _ => m.flags |= UNPLACED_STORE,
                },
                _ => {}
            }
        }
    }

    /// Where each ordinal's message is is no longer needed once the
    /// segment is folded; every segment's fold is kept until the merge,
    /// its messages in the spill if there is one.
    fn finish(&mut self) {
        self.slot_of_ord = Vec::new();
        if let Some((spill, segment)) = self.spill {
            spill.write(segment, &mut self.messages);
            self.messages = Vec::new();
        }
    }
}

/// The facts of one share of a window.
#[derive(Debug, Default)]
pub struct WindowFacts {
    names: Vec<Arc<str>>,
    /// (group, topic) of each consumer bit.
    consumers: Vec<(u32, u32)>,
    /// (broker, epoch) of each [`MessageState::placement`].
    placements: Vec<(u32, u64)>,
    /// One entry per message, in pieces: a segment's messages of one part
    /// (see [`merge_by_key`]).
    messages: Vec<Vec<(MessageKey, MessageState)>>,
    ranges: Ranges,
    consuming: PlHashSet<(u32, u32)>,
    last_processing: PlHashMap<(u32, u32), u64>,
    /// More than 64 consumers: these facts cannot tell them apart.
    pub too_many_consumers: bool,
}

impl WindowFacts {
    /// The same facts from records, as one segment (tests check the store's
    /// facts against these).
    pub fn of_records<'a>(spans: impl IntoIterator<Item = &'a SpanRecord>) -> Self {
        let names = Names::default();
        let tables = WindowTables::default();
        let (keys, batch) = FactBatch::of_records(spans, &names);
        let mut fold = SegmentFold::new(&keys, &names, &tables);
        fold.add(&keys, &batch);
        WindowFacts::merge(vec![fold], &names, &tables)
    }

    fn merge(folds: Vec<SegmentFold<'_>>, names: &Names, tables: &WindowTables) -> Self {
        let (mut facts, runs) = WindowFacts::tables(folds, names, tables);
        // A message whose spans sit in several segments is merged here.
        facts.messages = merge_by_key(runs);
        facts
    }

    /// The window-wide facts of the folds, without messages; and each
    /// fold's messages.
    fn tables(
        folds: Vec<SegmentFold<'_>>,
        names: &Names,
        tables: &WindowTables,
    ) -> (Self, Vec<Vec<Entries>>) {
        let mut facts = WindowFacts {
            names: names.all(),
            placements: tables.placements.all(),
            consumers: (tables.consumers)
                .pairs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ..WindowFacts::default()
        };
        let mut runs = Vec::with_capacity(folds.len());
        for fold in folds {
            facts.too_many_consumers |= fold.too_many_consumers;
            facts.ranges.merge(fold.ranges);
            facts.consuming.extend(fold.consuming);
            max_into(&mut facts.last_processing, fold.last_processing);
            runs.push(fold.messages);
        }
        (facts, runs)
    }

    /// These facts without their messages.
    fn without_messages(&self) -> Self {
        WindowFacts {
            names: self.names.clone(),
            consumers: self.consumers.clone(),
            placements: self.placements.clone(),
            messages: Vec::new(),
            ranges: self.ranges.clone(),
            consuming: self.consuming.clone(),
            last_processing: self.last_processing.clone(),
            too_many_consumers: self.too_many_consumers,
        }
    }

    /// The (broker, epoch) of a [`MessageState::placement`].
    fn placement(&self, id: u32) -> (u32, u64) {
        self.placements
            .get(id as usize)
            .copied()
            .unwrap_or((NONE, 0))
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n.as_ref())
    }

    fn each_message(&self) -> impl Iterator<Item = &(MessageKey, MessageState)> {
        self.messages.iter().flatten()
    }
}

/// A window's facts from one pass over its fast fields, handed out a share
/// of its messages at a time ([`WindowShares::share`]). With one share the
/// messages are kept in memory; with more they wait in a temporary file
/// (see `spill.rs`), so that memory holds one share's messages at once
/// however many shares there are, and no share reads the store again.
#[derive(Debug)]
pub struct WindowShares {
    /// Window-wide facts, without messages.
    window: WindowFacts,
    of: u32,
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// The one share's messages, until handed out.
    InMemory(Vec<Vec<(MessageKey, MessageState)>>),
    /// The spill, and the directory it is in.
    Spilled(Spill, std::path::PathBuf),
}

/// Why a window's facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The temporary file that holds shares' messages could not be written
    /// or read.
    #[error("cannot keep message facts in a temporary file in {}: {source}", dir.display())]
    Spill {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl WindowShares {
    /// Reads the facts of every span that started in `window`, in one pass,
    /// to be handed out in `of` shares; past one share, their messages wait
    /// in a temporary file in `spill_dir`. With one share, `memo` keeps each
    /// segment's message keys for the records pass that follows.
    /// `progress` hears how many spans were read, a chunk at a time.
    pub fn read(
        store: &SpanStore,
        window: (u64, u64),
        (of, spill_dir): (u32, &std::path::Path),
        memo: Option<&KeyMemo>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Self, FactsError> {
        let names = Names::default();
        let tables = WindowTables::default();
        let failed = |source| FactsError::Spill {
            dir: spill_dir.to_owned(),
            source,
        };
        let spill = match of {
            0 | 1 => None,
            _ => Some(Spill::new(of, spill_dir).map_err(failed)?),
        };
        let memo = memo.filter(|_| spill.is_none());
        let folds = store.fold_facts(window, memo, &names, |at, keys| {
            let mut fold = SegmentFold::new(keys, &names, &tables);
            fold.spill = spill.as_ref().map(|s| (s, at));
            fold.progress = Some(progress);
            fold
        })?;
        let (window, runs) = WindowFacts::tables(folds, &names, &tables);
        let held = match spill {
            Some(spill) => {
                if let Some(e) = spill.failure() {
                    return Err(failed(e));
                }
                Held::Spilled(spill, spill_dir.to_owned())
            }
            None => Held::InMemory(merge_by_key(runs)),
        };
        Ok(WindowShares {
            window,
            of: of.max(1),
            held,
        })
    }

    /// How many shares the messages are handed out in.
    pub fn of(&self) -> u32 {
        self.of
    }

    /// The facts of share `index` (of [`WindowShares::of`]): its messages,
    /// and the window-wide facts of the whole window.
    pub fn share(&mut self, index: u32) -> Result<WindowFacts, FactsError> {
        let mut facts = self.window.without_messages();
        facts.messages = match &mut self.held {
            Held::InMemory(messages) => std::mem::take(messages),
            Held::Spilled(spill, dir) => {
                let failed = |source| FactsError::Spill {
                    dir: dir.clone(),
                    source,
                };
                let parts = spill.read(index, merge_pieces).map_err(failed)?;
                parts.into_iter().flatten().collect()
            }
        };
        Ok(facts)
    }
}
