//! From one share's facts: what it adds to the window's [`Globals`], and
//! which of its messages are plainly delivered or plainly in flight
//! (counted without reading their records).

use std::collections::HashMap;

use rayon::prelude::*;

use super::{
    DEAD_LETTERED, KeySet, MessageKey, MessageState, NONE, OK_PROCESS, RECEIVED, SENT, SEVERAL,
    UNPLACED_STORE, WindowFacts,
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

/// The messages of one share whose verdicts the facts alone give, counted
/// without reading their records:
///
/// - **plainly delivered**: every expected group has an ok `process` span of
///   it;
/// - **plainly in flight**: the other expected groups (or, with none known,
///   the message) have nothing past it: no offset commit of theirs at or
///   past its queue offset, no restart of its broker in a later epoch.
///
/// Either way it has exactly one placed `store` span, one topic, no
/// dead-letter span, and whether it reached `receive` is known (its own
/// `receive` span, or no broker delivery spans on its topic). The rules
/// would give each of them these verdicts; the `others` are judged from
/// records.
///
/// The facts and the records must come from the same commit of the store
/// ([`SpanStore::pinned`](lasthop_collector::SpanStore::pinned)): a message the facts did not see is neither here
/// nor in `others`.
#[derive(Debug, Default, Clone)]
pub struct PlainVerdicts {
    /// How many messages the facts judged.
    pub messages: u64,
    /// The messages of the facts that are not.
    pub others: KeySet,
    /// Their spans (none of which needs reading).
    pub spans: u64,
    /// (message, group) verdicts `delivered`.
    pub delivered: u64,
    /// (message, group) verdicts `in_flight`: one per group without an ok
    /// `process` span, or one for a message no group is known to expect.
    pub in_flight: u64,
    /// Messages that reached send, store, flush, replicate, receive, process.
    pub funnel: [u64; 6],
    /// Spans of the `others`.
    pub other_spans: u64,
}

/// What [`PlainVerdicts::find`] works with, for one share's facts.
struct Judge<'a> {
    f: &'a WindowFacts,
    /// Per consumer bit: its group's bit.
    consumer_group: Vec<Option<u64>>,
    /// Per name number: the bits of the groups consuming the topic of that
    /// name, if any is known (`Some(None)`: more groups than bits).
    topic_groups: Vec<Option<Option<u64>>>,
    /// Bits of the groups expected besides.
    expected_extra: u64,
    /// Per group bit: the group's name number in the facts, if it has one.
    group_names: Vec<Option<u32>>,
}

impl PlainVerdicts {
    /// Finds the messages among `f` (one share's facts) that the facts
    /// judge, with the groups consuming each topic over the whole window
    /// (only `globals.groups_by_topic` is read, so the other shares' facts
    /// need not be in yet) and the groups expected besides (`extra_groups`).
    pub fn find(f: &WindowFacts, globals: &Globals, extra_groups: &[String]) -> PlainVerdicts {
        if f.too_many_consumers {
            return PlainVerdicts::none(f);
        }
        let Some(judge) = Judge::new(f, globals, extra_groups) else {
            return PlainVerdicts::none(f);
        };
        // Pieces in parallel.
        let find_in = |piece: &Vec<(MessageKey, MessageState)>| {
            let mut plain = PlainVerdicts::default();
            // How far flushes and replication covered the last broker and
            // epoch looked up: messages of a window mostly share one.
            let mut coverage = None;
            for (key, m) in piece {
                let Some((delivered, in_flight)) = judge.verdicts(m) else {
                    plain.others.insert(*key);
                    plain.other_spans += u64::from(m.spans);
                    continue;
                };
                let (flushed, replicated) = match coverage {
                    Some((at, covered)) if at == m.placement => covered,
                    _ => {
                        let (broker, epoch) = f.placement(m.placement);
                        let reach = |replicate: bool| {
                            f.ranges.covered.get(&(broker, epoch, replicate)).copied()
                        };
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
                    m.flags & RECEIVED != 0,
                    m.flags & OK_PROCESS != 0,
                ];
                for (n, yes) in plain.funnel.iter_mut().zip(stages) {
                    *n += u64::from(yes);
                }
                plain.delivered += u64::from(delivered);
                plain.in_flight += u64::from(in_flight);
                plain.spans += u64::from(m.spans);
                plain.messages += 1;
            }
            plain
        };
        (f.messages.par_iter().map(find_in)).reduce(PlainVerdicts::default, PlainVerdicts::sum)
    }

    /// Both counts together.
    fn sum(mut self, other: PlainVerdicts) -> PlainVerdicts {
        self.messages += other.messages;
        self.others.extend(other.others);
        self.spans += other.spans;
        self.delivered += other.delivered;
        self.in_flight += other.in_flight;
        for (n, more) in self.funnel.iter_mut().zip(other.funnel) {
            *n += more;
        }
        self.other_spans += other.other_spans;
        self
    }

    /// Every message of `f`, judged from records.
    pub fn none(f: &WindowFacts) -> PlainVerdicts {
        PlainVerdicts {
            others: f.each_message().map(|(k, _)| *k).collect(),
            other_spans: f.each_message().map(|(_, m)| u64::from(m.spans)).sum(),
            ..PlainVerdicts::default()
        }
    }
}

impl<'a> Judge<'a> {
    /// `None` if the groups do not fit in bits.
    fn new(f: &'a WindowFacts, globals: &Globals, extra_groups: &[String]) -> Option<Judge<'a>> {
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
        let mut topic_groups: Vec<Option<Option<u64>>> = vec![None; f.names.len()];
        for (slot, name) in topic_groups.iter_mut().zip(&f.names) {
            if let Some(groups) = globals.groups_by_topic.get(name.as_ref()) {
                *slot = Some(groups.iter().try_fold(0, |acc, g| Some(acc | bit_of(g)?)));
            }
        }
        if group_bits.len() > 64 {
            return None;
        }
        let numbers: HashMap<&str, u32> = (f.names.iter().enumerate())
            .map(|(n, name)| (name.as_ref(), n as u32))
            .collect();
        let mut group_names = vec![None; 64];
        for (name, bit) in &group_bits {
            group_names[bit.trailing_zeros() as usize] = numbers.get(name.as_str()).copied();
        }
        Some(Judge {
            f,
            consumer_group,
            topic_groups,
            expected_extra,
            group_names,
        })
    }

    /// The bits of the groups of these consumer bits.
    fn groups_of(&self, consumers: u64) -> u64 {
        let mut bits = 0;
        let mut rest = consumers;
        while rest != 0 {
            let c = rest.trailing_zeros() as usize;
            bits |= self.consumer_group.get(c).copied().flatten().unwrap_or(0);
            rest &= rest - 1;
        }
        bits
    }

    /// `m`'s verdicts as (delivered, in flight) counts, or `None` if its
    /// records must be read: the rules' path through `judge_group` for a
    /// message with one placed store and no dead-letter or transaction
    /// spans, taken only where the facts show that nothing else applies.
    fn verdicts(&self, m: &MessageState) -> Option<(u32, u32)> {
        let f = self.f;
        if m.topic == SEVERAL
            || m.stores != 1
            || m.flags & UNPLACED_STORE != 0
            || m.flags & DEAD_LETTERED != 0
        {
            return None;
        }
        // Reached `receive`: its own span, or a broker delivery (only
        // known from records).
        let delivering = m.topic != NONE && f.ranges.delivering.contains(&m.topic);
        if m.flags & RECEIVED == 0 && delivering {
            return None;
        }
        let by_topic = match self.topic_groups.get(m.topic as usize) {
            Some(Some(bits)) => (*bits)?,
            _ => 0,
        };
        let expected = by_topic | self.expected_extra | self.groups_of(m.processed);
        let ok = self.groups_of(m.ok) & expected;
        let waiting = expected & !ok;
        if expected != 0 && waiting == 0 {
            return Some((ok.count_ones(), 0));
        }
        // Some group has not processed it (or none is known): the rules go
        // on to the broker's restarts and the groups' offset commits.
        let (queue, offset) = m.queue().filter(|_| m.topic != NONE)?;
        let (broker, epoch) = f.placement(m.placement);
        if f.ranges.restarted.get(&broker).is_some_and(|&e| e > epoch) {
            return None;
        }
        let mut rest = waiting;
        while rest != 0 {
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let Some(group) = self.group_names[bit] else {
                continue;
            };
            let past = |epoch| {
                (f.ranges.commits.get(&(group, m.topic, queue, epoch)))
                    .is_some_and(|&committed| committed > offset)
            };
            if past(None) || past(Some(epoch)) {
                return None;
            }
        }
        Some((ok.count_ones(), waiting.count_ones().max(1)))
    }
}

#[cfg(test)]
#[path = "plain_tests.rs"]
mod judged_tests;

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
        let plain = PlainVerdicts::find(&facts, &Globals::default(), &[]);
        assert_eq!((plain.messages, plain.others.len()), (2, 0));

        // Dead-lettered by the group that also processed it ok.
        spans.push(span("M2", Hop::Dlq, "red-packet", "order_paid"));
        let facts = WindowFacts::of_records(&spans);
        let plain = PlainVerdicts::find(&facts, &Globals::default(), &[]);
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
        let plain = PlainVerdicts::find(&facts, &Globals::default(), &[]);
        assert_eq!((plain.messages, plain.others.len()), (0, MAX_CONSUMERS + 1));

        spans.pop();
        let facts = WindowFacts::of_records(&spans);
        assert!(!facts.too_many_consumers, "64 consumers fit");
    }
}
