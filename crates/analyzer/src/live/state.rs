//! Live judging's state machine, without threads or clocks of its own
//! (every call is told "now"), so a test can drive it span by span.
//!
//! ## Lifecycle of a message
//! 1. **Open** at its first span; every span of it that arrives pushes its
//!    first judging to `settle` after the last one (a message's spans come
//!    in bursts: send, store, flush, process within milliseconds).
//! 2. **Judged when due**, with the same rules as `report` ([`crate::analyze`]
//!    over [`Evidence::with_globals`]): its own spans, the recent context
//!    spans and what every span so far says about the groups.
//! 3. **Settled** when its verdict can no longer change by waiting:
//!    delivered, rolled back or dead-lettered for every group it is
//!    expected in ([`SettleReason::Final`]); or a loss verdict once it has
//!    been quiet for the grace period ([`SettleReason::Grace`]); or open for
//!    `max_open_age` ([`SettleReason::Expired`]: taken as it stands, in
//!    flight or incomplete). Otherwise it is judged again a grace period on.
//! 4. **Remembered** once settled (its verdict per group, no spans): a later
//!    span reopens it, its earlier spans are read back from the store, and
//!    the new verdicts are compared with the remembered ones by the caller.
//!
//! ## Bounds
//! At most `max_open` open messages (the oldest go first, counted in
//! [`LiveCounters::evicted`]; `report` still judges them from the store),
//! `max_remembered` settled ones, and the context of [`Context`].
//! Each span costs one map update; each message is judged a few times.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use lasthop_vocab::{Hop, SpanRecord};

use super::context::Context;
use super::plain::plainly_delivered;
use crate::{Evidence, Globals, MessageVerdicts, Options, Verdict};

/// How live judging waits and what it keeps.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Silence after a message's last span before a loss verdict is final.
    pub grace: Duration,
    /// Quiet after a message's last span before it is first judged.
    pub settle: Duration,
    /// Groups expected to consume every topic, besides those seen consuming it.
    pub groups: Vec<String>,
    /// Most messages waiting for a verdict.
    pub max_open: usize,
    /// Most settled messages remembered for re-judging.
    pub max_remembered: usize,
    /// A message open this long is settled with the verdict it has.
    pub max_open_age: Duration,
    /// How long context spans (flushes, offset commits ...) are kept.
    pub context_horizon: Duration,
    /// Judge every message by the rules, also those whose spans show them
    /// plainly delivered (see `plain.rs`; slower, for checking).
    pub read_all: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions::with_grace(Duration::from_secs(30))
    }
}

impl LiveOptions {
    /// Defaults scaled to a grace period: settle after a second (or the
    /// grace, if shorter), give up waiting after twenty grace periods, keep
    /// context for as long.
    pub fn with_grace(grace: Duration) -> LiveOptions {
        LiveOptions {
            grace,
            settle: grace.min(Duration::from_secs(1)),
            groups: Vec::new(),
            max_open: 200_000,
            max_remembered: 1_000_000,
            max_open_age: (grace * 20).max(Duration::from_secs(60)),
            context_horizon: (grace * 20).max(Duration::from_secs(600)),
            read_all: false,
        }
    }
}

/// Why a message was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleReason {
    /// Delivered, rolled back or dead-lettered for every group.
    Final,
    /// A loss verdict, quiet for the grace period.
    Grace,
    /// Open for `max_open_age`; its verdict as it stood.
    Expired,
}

/// A verdict per group, as remembered.
pub type GroupVerdicts = Vec<(Option<String>, Verdict)>;

/// A message settled by [`LiveState::judge_due`].
#[derive(Debug, Clone)]
pub struct Settled {
    pub message: MessageVerdicts,
    /// What it was settled with before, when a late span reopened it.
    pub previous: Option<GroupVerdicts>,
    pub reason: SettleReason,
}

/// What live judging has done, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LiveCounters {
    pub spans: u64,
    /// Open messages let go to stay within `max_open`.
    pub evicted: u64,
    /// Settled messages forgotten to stay within `max_remembered`.
    pub forgotten: u64,
    /// Judgings of a message (several per message: first judging, re-checks).
    pub judgings: u64,
}

struct Open {
    spans: Vec<SpanRecord>,
    first_seen: u64,
    last_seen: u64,
    due: u64,
    /// Its earlier spans were already read back from the store.
    backfilled: bool,
    previous: Option<GroupVerdicts>,
}

/// Live judging's state (see the module doc).
pub struct LiveState {
    options: LiveOptions,
    open: HashMap<String, Open>,
    /// (due, message id); stale entries (rescheduled, evicted) are skipped.
    schedule: BTreeSet<(u64, String)>,
    /// (first seen, message id), oldest first, for eviction.
    arrivals: VecDeque<(u64, String)>,
    remembered: HashMap<String, GroupVerdicts>,
    remembered_order: VecDeque<String>,
    context: Context,
    globals: Globals,
    pub counters: LiveCounters,
}

impl std::fmt::Debug for LiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveState")
            .field("open", &self.open.len())
            .field("remembered", &self.remembered.len())
            .field("context", &self.context.len())
            .finish_non_exhaustive()
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// Range spans belong to their broker, not to the message they may name.
fn is_range(r: &SpanRecord) -> bool {
    matches!(
        r.hop,
        Some(Hop::Flush | Hop::Replicate | Hop::Recover | Hop::Failover)
    )
}

impl LiveState {
    pub fn new(options: LiveOptions) -> LiveState {
        LiveState {
            options,
            open: HashMap::new(),
            schedule: BTreeSet::new(),
            arrivals: VecDeque::new(),
            remembered: HashMap::new(),
            remembered_order: VecDeque::new(),
            context: Context::default(),
            globals: Globals::default(),
            counters: LiveCounters::default(),
        }
    }

    /// Messages waiting for a verdict.
    pub fn open_messages(&self) -> usize {
        self.open.len()
    }

    /// Takes in spans that arrived at `now` (ns since the epoch).
    pub fn observe(&mut self, batch: Vec<SpanRecord>, now: u64) {
        self.counters.spans += batch.len() as u64;
        let due = now + ns(self.options.settle);
        for r in batch {
            self.globals.note_span(&r);
            let Some(id) = r.message_id.as_deref().filter(|_| !is_range(&r)) else {
                if Context::wanted(&r) {
                    self.context.push(now, r);
                }
                continue;
            };
            // A message already open keeps its place in the schedule: when
            // that comes, a later `due` puts it back (see `judge_due`).
            if let Some(open) = self.open.get_mut(id) {
                open.spans.push(r);
                open.last_seen = now;
                open.due = due;
                continue;
            }
            let id = id.to_owned();
            let previous = self.remembered.remove(&id);
            self.arrivals.push_back((now, id.clone()));
            self.schedule.insert((due, id.clone()));
            let open = Open {
                spans: vec![r],
                first_seen: now,
                last_seen: now,
                due,
                // A remembered message's earlier spans are in the store.
                backfilled: false,
                previous,
            };
            self.open.insert(id, open);
        }
        while self.open.len() > self.options.max_open {
            let Some((first_seen, id)) = self.arrivals.pop_front() else {
                break;
            };
            if self
                .open
                .get(&id)
                .is_some_and(|o| o.first_seen == first_seen)
            {
                self.open.remove(&id);
                self.counters.evicted += 1;
            }
        }
        let horizon = now.saturating_sub(ns(self.options.context_horizon));
        self.context.prune(horizon);
    }

    /// When the next message is due, if any.
    pub fn next_due(&self) -> Option<u64> {
        self.schedule.first().map(|(due, _)| *due)
    }

    /// Judges every message due at `now` and returns those settled.
    /// `earlier(id)` reads a message's spans from the store: asked once per
    /// message that was reopened or opened without its send (its first
    /// spans arrived before this judge started).
    pub fn judge_due(
        &mut self,
        now: u64,
        earlier: &dyn Fn(&str) -> Vec<SpanRecord>,
    ) -> Vec<Settled> {
        let mut due_ids = Vec::new();
        while let Some((due, _)) = self.schedule.first() {
            if *due > now {
                break;
            }
            let Some((due, id)) = self.schedule.pop_first() else {
                break;
            };
            match self.open.get(&id).map(|o| o.due) {
                Some(d) if d <= now => due_ids.push(id),
                // A span came since: it is due later.
                Some(later) if later > due => {
                    self.schedule.insert((later, id));
                }
                // Settled or evicted meanwhile.
                _ => {}
            }
        }
        if due_ids.is_empty() {
            return Vec::new();
        }
        due_ids.sort_unstable();
        due_ids.dedup();
        for id in &due_ids {
            let Some(open) = self.open.get_mut(id) else {
                continue;
            };
            let sent = |s: &SpanRecord| {
                matches!(
                    s.hop,
                    Some(Hop::Send | Hop::Store | Hop::TxPrepare | Hop::Intent)
                )
            };
            let needs = open.previous.is_some() || !open.spans.iter().any(sent);
            if needs && !open.backfilled {
                open.backfilled = true;
                let have: HashSet<(String, String)> = (open.spans.iter())
                    .map(|s| (s.trace_id.clone(), s.span_id.clone()))
                    .collect();
                let missing = earlier(id)
                    .into_iter()
                    .filter(|s| !have.contains(&(s.trace_id.clone(), s.span_id.clone())));
                open.spans.extend(missing.collect::<Vec<_>>());
            }
        }
        self.counters.judgings += due_ids.len() as u64;
        let judged = self.judge(&due_ids, now);
        self.settle(judged, &due_ids, now)
    }

    fn judge(&mut self, ids: &[String], now: u64) -> Vec<MessageVerdicts> {
        let messages: Vec<(&String, &Open)> = (ids.iter())
            .filter_map(|id| Some((id, self.open.get(id)?)))
            .collect();
        // What these messages say about their groups (the newest message
        // each processed) joins what earlier spans said.
        for (_, open) in &messages {
            self.globals.note_message(open.spans.iter());
        }
        let mut judged = Vec::new();
        let mut others = Vec::new();
        for (id, open) in messages {
            let plain = (!self.options.read_all)
                .then(|| plainly_delivered(id, &open.spans, &self.globals, &self.options.groups));
            match plain.flatten() {
                Some(verdicts) => judged.push(verdicts),
                None => others.push(open),
            }
        }
        if others.is_empty() {
            return judged;
        }
        let own = others.iter().flat_map(|o| o.spans.iter());
        let all = own.chain(self.context.iter());
        let evidence = Evidence::with_globals(all, &self.globals);
        let options = Options {
            grace_ns: ns(self.options.grace),
            now_ns: now,
            groups: self.options.groups.clone(),
        };
        judged.extend(crate::analyze(&evidence, &options));
        judged
    }

    fn settle(&mut self, judged: Vec<MessageVerdicts>, ids: &[String], now: u64) -> Vec<Settled> {
        let grace = ns(self.options.grace);
        let max_age = ns(self.options.max_open_age);
        let mut settled = Vec::new();
        let mut unjudged: HashSet<&str> = ids.iter().map(String::as_str).collect();
        for message in judged {
            if !unjudged.remove(message.message_id.as_str()) {
                continue;
            }
            let Some(open) = self.open.get_mut(&message.message_id) else {
                continue;
            };
            let verdicts = &message.verdicts;
            let done = !verdicts.is_empty()
                && verdicts.iter().all(|v| {
                    matches!(
                        v.verdict,
                        Verdict::Delivered | Verdict::RolledBack | Verdict::DeadLettered
                    )
                });
            let quiet = now.saturating_sub(open.last_seen) >= grace;
            let lost = verdicts.iter().any(|v| v.verdict.is_lost());
            let reason = if done {
                SettleReason::Final
            } else if quiet && lost {
                SettleReason::Grace
            } else if now.saturating_sub(open.first_seen) >= max_age {
                SettleReason::Expired
            } else {
                open.due = if quiet { now } else { open.last_seen } + grace;
                self.schedule.insert((open.due, message.message_id.clone()));
                continue;
            };
            let Some(open) = self.open.remove(&message.message_id) else {
                continue;
            };
            self.remember(&message);
            settled.push(Settled {
                message,
                previous: open.previous,
                reason,
            });
        }
        // A message the rules said nothing of (none of its spans places it)
        // waits like one in flight.
        for id in unjudged {
            if let Some(open) = self.open.get_mut(id) {
                if now.saturating_sub(open.first_seen) >= max_age {
                    self.open.remove(id);
                    self.counters.evicted += 1;
                    continue;
                }
                open.due = now + grace;
                self.schedule.insert((open.due, id.to_owned()));
            }
        }
        settled
    }

    fn remember(&mut self, m: &MessageVerdicts) {
        let verdicts = (m.verdicts.iter())
            .map(|v| (v.group.clone(), v.verdict))
            .collect();
        if self
            .remembered
            .insert(m.message_id.clone(), verdicts)
            .is_none()
        {
            self.remembered_order.push_back(m.message_id.clone());
        }
        while self.remembered.len() > self.options.max_remembered {
            let Some(id) = self.remembered_order.pop_front() else {
                break;
            };
            if self.remembered.remove(&id).is_some() {
                self.counters.forgotten += 1;
            }
        }
    }
}
