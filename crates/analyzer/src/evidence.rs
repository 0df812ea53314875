//! The spans an analysis reads, indexed: per-message spans by message id,
//! range spans by broker (flush, replicate, recover, failover) and offset
//! commits by group, topic and queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lasthop_vocab::{Hop, SpanRecord};

/// Spans indexed for analysis. Borrowed: building it copies nothing.
#[derive(Debug, Default)]
pub struct Evidence<'a> {
    pub(crate) by_message: BTreeMap<&'a str, Vec<&'a SpanRecord>>,
    pub(crate) intents_by_key: HashMap<&'a str, Vec<&'a SpanRecord>>,
    /// Per broker: flush, replicate, recover and failover spans.
    pub(crate) ranges: HashMap<&'a str, Vec<&'a SpanRecord>>,
    /// Per (group, topic, queue id): offset commits.
    pub(crate) settles: HashMap<(&'a str, &'a str, u32), Vec<&'a SpanRecord>>,
    /// Per (group, topic, queue id): the broker's deliveries of pulled batches.
    pub(crate) deliveries: HashMap<(&'a str, &'a str, u32), Vec<&'a SpanRecord>>,
    /// Groups seen consuming each topic.
    pub(crate) groups_by_topic: HashMap<&'a str, BTreeSet<&'a str>>,
    /// Per (group, topic): the latest send time of a message the group processed.
    pub(crate) newest_processed: HashMap<(&'a str, &'a str), u64>,
    /// Per (group, topic): when the group last processed a message successfully.
    pub(crate) last_processing: HashMap<(&'a str, &'a str), u64>,
}

impl<'a> Evidence<'a> {
    pub fn new(spans: &'a [SpanRecord]) -> Evidence<'a> {
        Evidence::of(spans)
    }

    /// The same from spans held in several parts (e.g. one per segment).
    pub fn of(spans: impl IntoIterator<Item = &'a SpanRecord> + Clone) -> Evidence<'a> {
        let mut e = Evidence::default();
        // Records that name no topic take their message's (RocketMQ's
        // SubBefore and SubAfter name only the msgId; its Pub names the
        // topic), in whatever file or format the other record came.
        // (Only where some consumer record lacks one: lasthop's own never do.)
        let mut topic_of: HashMap<&'a str, &'a str> = HashMap::new();
        let consumer_side =
            |s: &SpanRecord| matches!(s.hop, Some(Hop::Receive | Hop::Process | Hop::Settle));
        if spans
            .clone()
            .into_iter()
            .any(|s| s.topic.is_none() && s.message_id.is_some() && consumer_side(s))
        {
            for s in spans.clone() {
                if let (Some(id), Some(topic)) = (s.message_id.as_deref(), s.topic.as_deref()) {
                    topic_of.entry(id).or_insert(topic);
                }
            }
        }
        let topic = |s: &'a SpanRecord| -> Option<&'a str> {
            s.topic
                .as_deref()
                .or_else(|| topic_of.get(s.message_id.as_deref()?).copied())
        };
        for s in spans.clone() {
            let hop = s.hop;
            if let (Some(group), Some(topic)) = (s.group.as_deref(), topic(s))
                && matches!(hop, Some(Hop::Receive | Hop::Process | Hop::Settle))
            {
                e.groups_by_topic.entry(topic).or_default().insert(group);
            }
            match (hop, s.message_id.as_deref()) {
                (Some(Hop::Flush | Hop::Replicate | Hop::Recover | Hop::Failover), _) => {
                    if let Some(b) = s.broker.as_deref() {
                        e.ranges.entry(b).or_default().push(s);
                    }
                }
                (Some(hop @ (Hop::Settle | Hop::Receive)), None) => {
                    if let (Some(g), Some(t), Some(q)) =
                        (s.group.as_deref(), s.topic.as_deref(), s.queue_id)
                    {
                        let index = if hop == Hop::Settle {
                            &mut e.settles
                        } else {
                            &mut e.deliveries
                        };
                        index.entry((g, t, q)).or_default().push(s);
                    }
                }
                (Some(Hop::Intent), None) => {
                    for k in &s.keys {
                        e.intents_by_key.entry(k.as_str()).or_default().push(s);
                    }
                }
                (_, Some(id)) => e.by_message.entry(id).or_default().push(s),
                _ => {}
            }
        }
        for spans in e.by_message.values_mut() {
            spans.sort_by_key(|s| (s.start_ns, s.span_id.as_str()));
            // OTLP delivery is at least once: an exporter that resends a
            // request the collector had acknowledged (a lost response, a span
            // spool replayed after a crash) stores the same span twice. One
            // span is one attempt, one delivery, one processing; only a
            // record identical to the one before it is dropped.
            spans.dedup_by(|a, b| a.span_id == b.span_id && a == b);
        }
        for p in spans
            .into_iter()
            .filter(|s| s.hop == Some(Hop::Process) && !s.is_error())
        {
            if let (Some(g), Some(t)) = (p.group.as_deref(), topic(p)) {
                let last = e.last_processing.entry((g, t)).or_default();
                *last = (*last).max(p.start_ns);
            }
        }
        // Which later messages each group got: "it consumed messages sent after it".
        for spans in e.by_message.values() {
            let Some(sent) = spans
                .iter()
                .filter(|s| s.hop == Some(Hop::Send))
                .map(|s| s.start_ns)
                .min()
            else {
                continue;
            };
            for p in spans
                .iter()
                .filter(|s| s.hop == Some(Hop::Process) && !s.is_error())
            {
                if let (Some(g), Some(t)) = (p.group.as_deref(), topic(p)) {
                    let newest = e.newest_processed.entry((g, t)).or_default();
                    *newest = (*newest).max(sent);
                }
            }
        }
        e
    }

    /// The spans of one share of a window's messages (with every span
    /// without a message id), judged with what the whole window says about
    /// the groups: which consume each topic, when each last processed, and
    /// the newest message each processed.
    pub fn with_globals(
        spans: impl IntoIterator<Item = &'a SpanRecord> + Clone,
        globals: &'a Globals,
    ) -> Evidence<'a> {
        let mut e = Evidence::of(spans);
        e.groups_by_topic = globals
            .groups_by_topic
            .iter()
            .map(|(t, gs)| (t.as_str(), gs.iter().map(String::as_str).collect()))
            .collect();
        let pairs = |m: &'a HashMap<(String, String), u64>| {
            m.iter()
                .map(|((g, t), v)| ((g.as_str(), t.as_str()), *v))
                .collect()
        };
        e.newest_processed = pairs(&globals.newest_processed);
        e.last_processing = pairs(&globals.last_processing);
        e
    }

    /// Message ids, sorted.
    pub fn message_ids(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.by_message.keys().copied()
    }

    pub(crate) fn ranges_of(
        &self,
        broker: &str,
        hop: Hop,
    ) -> impl Iterator<Item = &&'a SpanRecord> {
        self.ranges
            .get(broker)
            .into_iter()
            .flatten()
            .filter(move |s| s.hop == Some(hop))
    }

    /// How far `hop` (flush or replicate) covered `broker`'s log in `epoch`.
    pub(crate) fn covered_up_to(&self, broker: &str, hop: Hop, epoch: u64) -> Option<u64> {
        self.ranges_of(broker, hop)
            .filter(|s| s.epoch == Some(epoch))
            .filter_map(|s| s.range_end)
            .max()
    }
}

/// What judging one message needs to know about the others of its window,
/// gathered share by share when a window is judged a share at a time.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Globals {
    pub(crate) groups_by_topic: HashMap<String, BTreeSet<String>>,
    pub(crate) newest_processed: HashMap<(String, String), u64>,
    pub(crate) last_processing: HashMap<(String, String), u64>,
}

impl Globals {
    /// Adds what one share's evidence says.
    pub fn absorb(&mut self, e: &Evidence<'_>) {
        for (topic, groups) in &e.groups_by_topic {
            let known = self.groups_by_topic.entry((*topic).to_owned()).or_default();
            known.extend(groups.iter().map(|g| (*g).to_owned()));
        }
        let merge = |into: &mut HashMap<(String, String), u64>,
                     from: &HashMap<(&str, &str), u64>| {
            for ((g, t), v) in from {
                let slot = into.entry(((*g).to_owned(), (*t).to_owned())).or_default();
                *slot = (*slot).max(*v);
            }
        };
        merge(&mut self.newest_processed, &e.newest_processed);
        merge(&mut self.last_processing, &e.last_processing);
    }
}

impl Globals {
    /// Adds what one span says when it names its group and topic: a
    /// consumer of the topic, and when the group last processed. The same
    /// as [`Globals::absorb`] of that span, without building an
    /// [`Evidence`] (live judging calls it for every span).
    pub(crate) fn note_span(&mut self, s: &SpanRecord) {
        if let Some(topic) = s.topic.as_deref() {
            self.note_consumer(s, topic);
        }
    }

    /// [`Globals::note_span`] for `s` as a span of `topic`.
    fn note_consumer(&mut self, s: &SpanRecord, topic: &str) {
        let Some(group) = s.group.as_deref() else {
            return;
        };
        if !matches!(s.hop, Some(Hop::Receive | Hop::Process | Hop::Settle)) {
            return;
        }
        if !self
            .groups_by_topic
            .get(topic)
            .is_some_and(|g| g.contains(group))
        {
            let groups = self.groups_by_topic.entry(topic.to_owned()).or_default();
            groups.insert(group.to_owned());
        }
        if s.hop == Some(Hop::Process) && !s.is_error() {
            let key = (group.to_owned(), topic.to_owned());
            let last = self.last_processing.entry(key).or_default();
            *last = (*last).max(s.start_ns);
        }
    }

    /// Adds what one message's spans say of its groups, as
    /// [`Globals::absorb`] does: its consumers' spans that name no topic
    /// (RocketMQ's consumer trace records) count for the message's, and the
    /// newest message each group processed (by send time).
    pub(crate) fn note_message<'a>(&mut self, spans: impl Iterator<Item = &'a SpanRecord> + Clone) {
        let topic = spans.clone().find_map(|s| s.topic.as_deref());
        if let Some(topic) = topic {
            for s in spans.clone().filter(|s| s.topic.is_none()) {
                self.note_consumer(s, topic);
            }
        }
        let Some(sent) = (spans.clone())
            .filter(|s| s.hop == Some(Hop::Send))
            .map(|s| s.start_ns)
            .min()
        else {
            return;
        };
        for p in spans.filter(|s| s.hop == Some(Hop::Process) && !s.is_error()) {
            if let (Some(g), Some(t)) = (p.group.as_deref(), p.topic.as_deref().or(topic)) {
                let newest = (self.newest_processed)
                    .entry((g.to_owned(), t.to_owned()))
                    .or_default();
                *newest = (*newest).max(sent);
            }
        }
    }
}
