//! A window's facts from fast-field columns, without reading a record: one
//! compact [`MessageState`] per message, folded per segment (in parallel,
//! dense by dictionary ordinal) and merged across segments by
//! [`MessageKey`]; beside them what the consumer groups did (which consume
//! each topic, when each last processed) and how far flushes and replication
//! covered each broker's log.
//!
//! From these come the window-wide [`Globals`] and the [`PlainDelivered`]
//! messages, the ones the rules would call delivered for every group, which
//! are counted without reading their records. Everything else is judged from
//! records by the rules.
//!
//! Consumers, (group, topic) pairs, are bits of a `u64`: a window with more
//! than 64 of them is reported as such ([`WindowFacts::too_many_consumers`])
//! and the caller judges it from records instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use lasthop_collector::{
    FactBatch, MessageKey, NONE, Names, Share, ShareMemo, SpanStore, StoreError,
};

use lasthop_vocab::{Hop, SpanRecord};
use polars::prelude::{PlHashMap, PlHashSet};
use rayon::prelude::*;

use crate::evidence::Globals;

/// A set of message keys.
pub type KeySet = PlHashSet<MessageKey>;

/// Most consumers ((group, topic) pairs) a window's facts can tell apart.
const MAX_CONSUMERS: usize = 64;
/// `MessageState::topic` when the message was seen on several topics.
const SEVERAL: u32 = NONE - 1;

const SENT: u8 = 1;
const RECEIVED: u8 = 2;
const UNPLACED_STORE: u8 = 4;
/// Merged into the entry of the same message in an earlier piece.
const MERGED: u8 = 8;

/// What the columns say about one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MessageState {
    /// Start of its first `send` span, `u64::MAX` if none.
    first_send: u64,
    /// Epoch and end offset of its placed `store` span (the last one seen).
    store_epoch: u64,
    store_end: u64,
    /// Consumer bits: an ok `process` span, any `process` span, a `dlq` span.
    ok: u64,
    processed: u64,
    dead_lettered: u64,
    /// Its topic (retry and dead-letter topics aside), [`NONE`] or [`SEVERAL`].
    topic: u32,
    store_broker: u32,
    spans: u32,
    /// Placed `store` spans, up to 255.
    stores: u8,
    flags: u8,
}

impl Default for MessageState {
    fn default() -> Self {
        MessageState {
            first_send: u64::MAX,
            store_epoch: 0,
            store_end: 0,
            ok: 0,
            processed: 0,
            dead_lettered: 0,
            topic: NONE,
            store_broker: NONE,
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
    fn merge(&mut self, o: &MessageState) {
        self.first_send = self.first_send.min(o.first_send);
        if o.stores > 0 {
            (self.store_epoch, self.store_end, self.store_broker) =
                (o.store_epoch, o.store_end, o.store_broker);
        }
        self.stores = self.stores.saturating_add(o.stores);
        self.ok |= o.ok;
        self.processed |= o.processed;
        self.dead_lettered |= o.dead_lettered;
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

/// Broker, epoch, and whether replication (else flush): how far its ranges reached.
type Coverage = PlHashMap<(u32, u64, bool), u64>;

/// One segment's fold.
struct SegmentFold<'a> {
    consumers: &'a Consumers,
    /// Retry and dead-letter topics (`%...`) by name number.
    internal_topic: Vec<bool>,
    local_consumers: PlHashMap<(u32, u32), Option<u8>>,
    /// Where each dictionary ordinal's message is: part << 26 | position
    /// (a part of a segment holds at most 2^31 / 64 messages).
    slot_of_ord: Vec<u32>,
    /// The segment's messages, split by [`part_of`] as they are first seen.
    messages: Vec<Vec<(MessageKey, MessageState)>>,
    covered: Coverage,
    consuming: PlHashSet<(u32, u32)>,
    last_processing: PlHashMap<(u32, u32), u64>,
    too_many_consumers: bool,
}

impl<'a> SegmentFold<'a> {
    /// `share_of` is how many shares the window is read in (to size the fold).
    fn new(keys: &[MessageKey], names: &Names, consumers: &'a Consumers, share_of: u32) -> Self {
        SegmentFold {
            consumers,
            internal_topic: names.all().iter().map(|n| n.starts_with('%')).collect(),
            local_consumers: PlHashMap::default(),
            slot_of_ord: vec![NONE; keys.len()],
            messages: {
                // Room for what a part gets with near certainty (keys are
                // uniform hashes), so that parts do not double their size.
                let expected = (keys.len() / share_of.max(1) as usize / PARTS) as f64;
                let room = (expected + 4.0 * expected.sqrt()) as usize + 16;
                (0..PARTS).map(|_| Vec::with_capacity(room)).collect()
            },
            covered: Coverage::default(),
            consuming: PlHashSet::default(),
            last_processing: PlHashMap::default(),
            too_many_consumers: false,
        }
    }

    fn consumer_bit(&mut self, group: u32, topic: u32) -> u64 {
        let consumers = self.consumers;
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

    fn add(&mut self, keys: &[MessageKey], b: &FactBatch) {
        for i in 0..b.len() {
            let (hop, group, topic, t) = (b.hop[i], b.group[i], b.topic[i], b.start_ns[i]);
            if let (Some(h @ (Hop::Flush | Hop::Replicate)), Some(ep), Some(end)) =
                (hop, b.epoch[i], b.range_end[i])
                && b.broker[i] != NONE
            {
                let slot = self
                    .covered
                    .entry((b.broker[i], ep, h == Hop::Replicate))
                    .or_default();
                *slot = (*slot).max(end);
            }
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
                    }
                }
                Some(Hop::Dlq) => m.dead_lettered |= bit,
                Some(Hop::Store) => match (b.broker[i], b.epoch[i], b.commitlog_offset[i]) {
                    (broker, Some(epoch), Some(offset)) if broker != NONE => {
                        m.stores = m.stores.saturating_add(1);
                        m.store_broker = broker;
                        m.store_epoch = epoch;
                        m.store_end = offset + b.commitlog_size[i].unwrap_or(1);
                    }
                    _ => m.flags |= UNPLACED_STORE,
                },
                _ => {}
            }
        }
    }
}

/// The facts of one share of a window.
#[derive(Debug, Default)]
pub struct WindowFacts {
    names: Vec<Arc<str>>,
    /// (group, topic) of each consumer bit.
    consumers: Vec<(u32, u32)>,
    /// One entry per message, in pieces: a segment's messages of one part
    /// (see [`merge_by_key`]).
    messages: Vec<Vec<(MessageKey, MessageState)>>,
    covered: Coverage,
    consuming: PlHashSet<(u32, u32)>,
    last_processing: PlHashMap<(u32, u32), u64>,
    /// More than 64 consumers: these facts cannot tell them apart.
    pub too_many_consumers: bool,
}

impl WindowFacts {
    /// The facts of the spans of `share` that started in `window`, from
    /// the store's fast fields. With no share, only what does not need
    /// messages: the consumers of each topic, their last processing, the
    /// flush and replicate coverage; no message is read. `memo` is shared by
    /// the passes over one pinned store.
    pub fn read(
        store: &SpanStore,
        window: (u64, u64),
        share: Option<Share>,
        memo: Option<&ShareMemo>,
    ) -> Result<Self, StoreError> {
        let names = Names::default();
        let consumers = Consumers::default();
        let folds = store.fold_facts(
            window,
            share,
            memo,
            &names,
            |keys| SegmentFold::new(keys, &names, &consumers, share.map_or(1, |s| s.of)),
            |fold, keys, batch| fold.add(keys, batch),
        )?;
        Ok(WindowFacts::merge(folds, &names, &consumers))
    }

    /// The same facts from records, as one segment (tests check the store's
    /// facts against these).
    pub fn of_records<'a>(spans: impl IntoIterator<Item = &'a SpanRecord>) -> Self {
        let names = Names::default();
        let consumers = Consumers::default();
        let (keys, batch) = FactBatch::of_records(spans, &names);
        let mut fold = SegmentFold::new(&keys, &names, &consumers, 1);
        fold.add(&keys, &batch);
        WindowFacts::merge(vec![fold], &names, &consumers)
    }

    fn merge(folds: Vec<SegmentFold<'_>>, names: &Names, consumers: &Consumers) -> Self {
        let mut facts = WindowFacts {
            names: names.all(),
            consumers: consumers
                .pairs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ..WindowFacts::default()
        };
        let mut runs = Vec::with_capacity(folds.len());
        for fold in folds {
            facts.too_many_consumers |= fold.too_many_consumers;
            for (k, v) in fold.covered {
                let slot = facts.covered.entry(k).or_default();
                *slot = (*slot).max(v);
            }
            facts.consuming.extend(fold.consuming);
            for (k, v) in fold.last_processing {
                let slot = facts.last_processing.entry(k).or_default();
                *slot = (*slot).max(v);
            }
            runs.push(fold.messages);
        }
        // A message whose spans sit in several segments is merged here.
        facts.messages = merge_by_key(runs);
        facts
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n.as_ref())
    }

    fn each_message(&self) -> impl Iterator<Item = &(MessageKey, MessageState)> {
        self.messages.iter().flatten()
    }
}

/// Parts a window's messages are merged in (by the top bits of their keys).
const PARTS: usize = 64;

/// The part of a message: the top bits of its key.
fn part_of(key: MessageKey) -> usize {
    (key >> (128 - PARTS.trailing_zeros())) as usize
}

/// The messages of every segment, already split by [`part_of`], merged by
/// key, parts in parallel. Most messages sit in one segment, so entries stay
/// where the segments put them: within a part, a message seen in an earlier
/// piece is merged into that entry and dropped ([`merge_part`]). Returns the
/// pieces, one entry per message across all of them.
fn merge_by_key(
    segments: Vec<Vec<Vec<(MessageKey, MessageState)>>>,
) -> Vec<Vec<(MessageKey, MessageState)>> {
    let mut by_part: Vec<Vec<Vec<(MessageKey, MessageState)>>> = vec![Vec::new(); PARTS];
    for parts in segments {
        for (p, messages) in parts.into_iter().enumerate() {
            if !messages.is_empty() {
                by_part[p].push(messages);
            }
        }
    }
    by_part
        .par_iter_mut()
        .for_each_init(Vec::new, |table, pieces| merge_part(pieces, table));
    by_part.into_iter().flatten().collect()
}

/// Merges the pieces of one part (each one entry per key) so that each key
/// has one entry, in the first piece that has it. `table` is scratch: an
/// open-addressing table sized to fit in cache (keys are uniform hashes, so
/// their low bits place them; an entry is 32 more bits of the key, to skip
/// most false matches, and where the entry is).
fn merge_part(pieces: &mut [Vec<(MessageKey, MessageState)>], table: &mut Vec<u64>) {
    if pieces.len() <= 1 {
        return;
    }
    let starts: Vec<usize> = pieces
        .iter()
        .scan(0, |at, p| {
            let start = *at;
            *at += p.len();
            Some(start)
        })
        .collect();
    let total = starts.last().copied().unwrap_or(0) + pieces.last().map_or(0, Vec::len);
    let size = (total * 2).next_power_of_two().max(16);
    table.clear();
    table.resize(size, 0);
    let mask = size - 1;
    let mut merged = false;
    for p in 0..pieces.len() {
        let (earlier, rest) = pieces.split_at_mut(p);
        let piece = &mut rest[0];
        for (position, (key, state)) in piece.iter_mut().enumerate() {
            let tag = (*key >> 64) as u32;
            let mut slot = (*key as usize) & mask;
            loop {
                let entry = table[slot];
                if entry == 0 {
                    // Where the entry is, plus one (0 is an empty slot).
                    let at = (starts[p] + position + 1) as u64;
                    table[slot] = u64::from(tag) << 32 | at;
                    break;
                }
                if (entry >> 32) as u32 == tag {
                    let at = (entry as u32 - 1) as usize;
                    // Pieces hold unique keys: a match is in an earlier piece.
                    let q = starts.partition_point(|&s| s <= at) - 1;
                    if let Some(seen) = earlier.get_mut(q).and_then(|e| e.get_mut(at - starts[q]))
                        && seen.0 == *key
                    {
                        seen.1.merge(state);
                        state.flags |= MERGED;
                        merged = true;
                        break;
                    }
                }
                slot = (slot + 1) & mask;
            }
        }
    }
    if merged {
        for piece in pieces {
            piece.retain(|(_, m)| m.flags & MERGED == 0);
        }
    }
}

impl Globals {
    /// Adds what one share's facts say (every message is whole in one share).
    pub fn absorb_facts(&mut self, f: &WindowFacts) {
        for &(topic, group) in &f.consuming {
            let known = self
                .groups_by_topic
                .entry(f.name(topic).to_owned())
                .or_default();
            known.insert(f.name(group).to_owned());
        }
        let raise = |into: &mut HashMap<(String, String), u64>, (g, t): (u32, u32), v| {
            let slot = into
                .entry((f.name(g).to_owned(), f.name(t).to_owned()))
                .or_default();
            *slot = (*slot).max(v);
        };
        for (&pair, &t) in &f.last_processing {
            raise(&mut self.last_processing, pair, t);
        }
        // Per consumer, the newest first send of a message it processed
        // (pieces in parallel).
        let newest_in = |piece: &Vec<(MessageKey, MessageState)>| {
            let mut newest = vec![None::<u64>; f.consumers.len()];
            for (_, m) in piece.iter().filter(|(_, m)| m.first_send != u64::MAX) {
                let mut rest = m.ok;
                while rest != 0 {
                    let bit = rest.trailing_zeros() as usize;
                    if let Some(slot) = newest.get_mut(bit) {
                        *slot = Some(slot.unwrap_or(0).max(m.first_send));
                    }
                    rest &= rest - 1;
                }
            }
            newest
        };
        let newest = (f.messages.par_iter().map(newest_in)).reduce(
            || vec![None; f.consumers.len()],
            |a, b| a.into_iter().zip(b).map(|(a, b)| a.max(b)).collect(),
        );
        for (&(g, t), newest) in f.consumers.iter().zip(newest) {
            if let Some(sent) = newest.filter(|_| t != NONE) {
                raise(&mut self.newest_processed, (g, t), sent);
            }
        }
    }
}

/// The messages of one share that are plainly delivered, judged from
/// facts without reading their records: every expected group has an ok
/// `process` span of it and none dead-lettered it, it has exactly one
/// placed `store` span, a `receive` span, and one topic. The rules would call
/// each of them `delivered` for every group; the `others` are judged from
/// records.
///
/// The facts and the records must come from the same commit of the store
/// ([`SpanStore::pinned`]): a message the facts did not see is neither here
/// nor in `others`.
#[derive(Debug, Default, Clone)]
pub struct PlainDelivered {
    /// How many messages are plainly delivered.
    pub messages: u64,
    /// The messages of the facts that are not.
    pub others: KeySet,
    /// Their spans (none of which needs reading).
    pub spans: u64,
    /// (message, group) verdicts, all `delivered`.
    pub verdicts: u64,
    /// Messages that reached send, store, flush, replicate, receive, process.
    pub funnel: [u64; 6],
    /// Spans of the `others`.
    pub other_spans: u64,
}

impl PlainDelivered {
    /// Finds the plainly delivered messages among `f` (one share's facts),
    /// with the groups consuming each topic over the whole window (only
    /// `globals.groups_by_topic` is read, so the other shares' facts need
    /// not be in yet) and the groups expected besides (`extra_groups`).
    pub fn find(f: &WindowFacts, globals: &Globals, extra_groups: &[String]) -> PlainDelivered {
        if f.too_many_consumers {
            return PlainDelivered::none(f);
        }
        // Groups as bits: every group a message could be expected by.
        let mut group_bits: HashMap<String, u64> = HashMap::new();
        let mut bit_of = |name: &str| -> Option<u64> {
            let next = group_bits.len() as u32;
            let bit = *group_bits
                .entry(name.to_owned())
                .or_insert_with(|| 1u64.checked_shl(next).unwrap_or(0));
            (bit != 0).then_some(bit)
        };
        let mut consumer_group = Vec::with_capacity(f.consumers.len());
        for &(g, _) in &f.consumers {
            consumer_group.push(bit_of(f.name(g)));
        }
        let mut expected_extra = 0;
        for g in extra_groups {
            expected_extra |= bit_of(g).unwrap_or(0);
        }
        // By name number: the groups consuming the topic of that name, if
        // any is known.
        let mut topic_groups: Vec<Option<Option<u64>>> = vec![None; f.names.len()];
        for (slot, name) in topic_groups.iter_mut().zip(&f.names) {
            if let Some(groups) = globals.groups_by_topic.get(name.as_ref()) {
                *slot = Some(groups.iter().try_fold(0, |acc, g| Some(acc | bit_of(g)?)));
            }
        }
        if group_bits.len() > 64 {
            return PlainDelivered::none(f);
        }
        let groups_of = |consumers: u64| -> u64 {
            let mut bits = 0;
            let mut rest = consumers;
            while rest != 0 {
                let c = rest.trailing_zeros() as usize;
                bits |= consumer_group.get(c).copied().flatten().unwrap_or(0);
                rest &= rest - 1;
            }
            bits
        };
        // Pieces in parallel.
        let find_in = |piece: &Vec<(MessageKey, MessageState)>| {
            let mut plain = PlainDelivered::default();
            // How far flushes and replication covered the last broker and
            // epoch looked up: messages of a window mostly share one.
            let mut coverage = None;
            for (key, m) in piece {
                let expected = plain_groups(m, &topic_groups, expected_extra, groups_of);
                let Some(expected) = expected else {
                    plain.others.insert(*key);
                    plain.other_spans += u64::from(m.spans);
                    continue;
                };
                let (flushed, replicated) = match coverage {
                    Some((at, covered)) if at == (m.store_broker, m.store_epoch) => covered,
                    _ => {
                        let reach = |replicate: bool| {
                            f.covered
                                .get(&(m.store_broker, m.store_epoch, replicate))
                                .copied()
                        };
                        let covered = (reach(false), reach(true));
                        coverage = Some(((m.store_broker, m.store_epoch), covered));
                        covered
                    }
                };
                let reached = |end: Option<u64>| end.is_some_and(|c| c >= m.store_end);
                let stages = [
                    m.flags & SENT != 0,
                    true,
                    reached(flushed),
                    reached(replicated),
                    true,
                    true,
                ];
                for (n, yes) in plain.funnel.iter_mut().zip(stages) {
                    *n += u64::from(yes);
                }
                plain.verdicts += u64::from(expected.count_ones());
                plain.spans += u64::from(m.spans);
                plain.messages += 1;
            }
            plain
        };
        (f.messages.par_iter().map(find_in)).reduce(PlainDelivered::default, PlainDelivered::sum)
    }

    /// Both counts together.
    fn sum(mut self, other: PlainDelivered) -> PlainDelivered {
        self.messages += other.messages;
        self.others.extend(other.others);
        self.spans += other.spans;
        self.verdicts += other.verdicts;
        for (n, more) in self.funnel.iter_mut().zip(other.funnel) {
            *n += more;
        }
        self.other_spans += other.other_spans;
        self
    }

    /// Every message of `f`, judged from records.
    pub fn none(f: &WindowFacts) -> PlainDelivered {
        PlainDelivered {
            others: f.each_message().map(|(k, _)| *k).collect(),
            other_spans: f.each_message().map(|(_, m)| u64::from(m.spans)).sum(),
            ..PlainDelivered::default()
        }
    }
}

/// The groups that delivered `m` plainly, as bits, or `None` if it is not
/// plainly delivered.
fn plain_groups(
    m: &MessageState,
    topic_groups: &[Option<Option<u64>>],
    expected_extra: u64,
    groups_of: impl Fn(u64) -> u64,
) -> Option<u64> {
    if m.topic == SEVERAL
        || m.stores != 1
        || m.flags & UNPLACED_STORE != 0
        || m.flags & RECEIVED == 0
    {
        return None;
    }
    let by_topic = match topic_groups.get(m.topic as usize) {
        Some(Some(bits)) => (*bits)?,
        _ => 0,
    };
    let (ok, dead) = (groups_of(m.ok), groups_of(m.dead_lettered));
    let expected = by_topic | expected_extra | groups_of(m.processed) | dead;
    (expected != 0 && expected & ok == expected && expected & dead == 0).then_some(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, hop: Hop, group: &str, topic: &str) -> SpanRecord {
        SpanRecord {
            message_id: Some(id.into()),
            hop: Some(hop),
            group: Some(group.into()),
            topic: Some(topic.into()),
            ..SpanRecord::default()
        }
    }

    fn state(spans: u32, send: u64) -> MessageState {
        MessageState {
            spans,
            first_send: send,
            ..MessageState::default()
        }
    }

    proptest::proptest! {
        /// Pieces with keys in common (a message whose spans sit in several
        /// segments) merge into one entry per key, each the merge of all of
        /// its pieces' states in order, whatever the keys' bits; nothing else
        /// changes.
        #[test]
        fn merging_a_part_leaves_one_entry_per_key(
            pieces in proptest::collection::vec(
                proptest::collection::btree_map(0u32..400, (1u32..5, 0u64..1000), 0..120),
                0..6,
            ),
            spread in proptest::prelude::any::<u128>(),
        ) {
            // Keys share their low bits (one table slot) or differ only in
            // their tags, as well as being far apart.
            let key = |k: u32| match k % 3 {
                0 => u128::from(k) << 96 | (spread & 0xffff),
                1 => u128::from(k) << 64,
                _ => u128::from(k).wrapping_mul(spread | 1),
            };
            let mut expected: std::collections::BTreeMap<MessageKey, MessageState> = Default::default();
            let mut input = Vec::new();
            for piece in &pieces {
                let mut entries = Vec::new();
                for (&k, &(spans, send)) in piece {
                    let s = state(spans, send);
                    entries.push((key(k), s));
                    expected.entry(key(k)).and_modify(|m| m.merge(&s)).or_insert(s);
                }
                input.push(entries);
            }
            let mut table = vec![7; 3];
            merge_part(&mut input, &mut table);
            let got: Vec<(MessageKey, MessageState)> = input.into_iter().flatten().collect();
            let mut sorted = got.clone();
            sorted.sort_by_key(|(k, _)| *k);
            proptest::prop_assert_eq!(sorted, expected.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn more_consumers_than_bits_sends_every_message_to_the_rules() {
        let mut spans = Vec::new();
        for n in 0..=MAX_CONSUMERS {
            spans.push(span(&format!("M{n}"), Hop::Process, &format!("g{n}"), "t"));
        }
        let facts = WindowFacts::of_records(&spans);
        assert!(facts.too_many_consumers);
        let plain = PlainDelivered::find(&facts, &Globals::default(), &[]);
        assert_eq!((plain.messages, plain.others.len()), (0, MAX_CONSUMERS + 1));

        spans.pop();
        let facts = WindowFacts::of_records(&spans);
        assert!(!facts.too_many_consumers, "64 consumers fit");
    }
}
