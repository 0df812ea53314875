//! From one share's facts: what it adds to the window's [`Globals`], and
//! which of its messages are plainly delivered (counted without reading
//! their records).

use std::collections::HashMap;

use rayon::prelude::*;

use super::{
    DEAD_LETTERED, KeySet, MessageKey, MessageState, NONE, RECEIVED, SENT, SEVERAL, UNPLACED_STORE,
    WindowFacts,
};
use crate::evidence::Globals;

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
/// ([`SpanStore::pinned`](lasthop_collector::SpanStore::pinned)): a message the facts did not see is neither here
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
                    Some((at, covered)) if at == m.placement => covered,
                    _ => {
                        let (broker, epoch) = f.placement(m.placement);
                        let reach =
                            |replicate: bool| f.covered.get(&(broker, epoch, replicate)).copied();
                        let covered = (reach(false), reach(true));
                        coverage = Some((m.placement, covered));
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
    if m.flags & DEAD_LETTERED != 0 {
        return None;
    }
    let ok = groups_of(m.ok);
    let expected = by_topic | expected_extra | groups_of(m.processed);
    (expected != 0 && expected & ok == expected).then_some(expected)
}

#[cfg(test)]
mod tests {
    use lasthop_vocab::{Hop, SpanRecord};

    use super::super::MAX_CONSUMERS;
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

    /// Sent, stored on broker-a, received and processed ok by `red-packet`.
    fn delivered(id: &str) -> Vec<SpanRecord> {
        let mut spans = vec![
            span(id, Hop::Send, "", "order_paid"),
            span(id, Hop::Store, "", "order_paid"),
            span(id, Hop::Receive, "red-packet", "order_paid"),
            span(id, Hop::Process, "red-packet", "order_paid"),
        ];
        for s in &mut spans {
            s.group = s.group.take().filter(|g| !g.is_empty());
        }
        spans[1].broker = Some("broker-a".into());
        spans[1].epoch = Some(1);
        spans[1].commitlog_offset = Some(100);
        spans
    }

    #[test]
    fn a_dead_lettered_message_is_never_plainly_delivered() {
        let mut spans = delivered("M1");
        spans.extend(delivered("M2"));
        let facts = WindowFacts::of_records(&spans);
        let plain = PlainDelivered::find(&facts, &Globals::default(), &[]);
        assert_eq!((plain.messages, plain.others.len()), (2, 0));

        // Dead-lettered by the group that also processed it ok.
        spans.push(span("M2", Hop::Dlq, "red-packet", "order_paid"));
        let facts = WindowFacts::of_records(&spans);
        let plain = PlainDelivered::find(&facts, &Globals::default(), &[]);
        assert_eq!((plain.messages, plain.others.len()), (1, 1));
        assert!(plain.others.contains(&lasthop_collector::message_key("M2")));
    }

    proptest::proptest! {
        /// The filter holds exactly the set's keys, for keys that share
        /// their low bits with the set's as well as any.
        #[test]
        fn a_key_filter_holds_exactly_its_sets_keys(
            keys in proptest::collection::vec(proptest::prelude::any::<u128>(), 0..300),
            probes in proptest::collection::vec(proptest::prelude::any::<u128>(), 0..300),
        ) {
            let set: KeySet = keys.iter().copied().collect();
            let filter = super::super::KeyFilter::new(&set);
            // Same low bits as a key of the set, other high bits.
            let near = keys.iter().map(|k| k ^ (1 << 100));
            for key in keys.iter().copied().chain(probes).chain(near) {
                proptest::prop_assert_eq!(filter.contains(key), set.contains(&key));
            }
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
