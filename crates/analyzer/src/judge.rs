//! Judging a window: every message whose spans started in a window of the
//! store, or every message of a set of spans, into one [`ReportBuilder`].
//! One implementation for `lasthop report`, and for whatever else judges a
//! window (a web UI, a live judge in the collector): they call
//! [`judge_window`] or [`judge_spans`] with their own [`JudgeOptions`] and
//! hear how it goes through a [`Progress`] callback.
//!
//! From the store, memory is bounded however long the window: its fast
//! fields are read once, the messages they show plainly delivered or plainly
//! in flight are counted without reading their records, and the others are
//! judged from records in batches of about [`JudgeOptions::share_spans`]
//! spans (see `ARCHITECTURE.md`, "Analyzer").

use std::path::PathBuf;

use lasthop_collector::{KeyMemo, Messages, Share, SpanStore, StoreError};
use lasthop_vocab::SpanRecord;
use polars::prelude::PolarsError;

use crate::facts::{FactsError, KeyFilter, KeySet, PlainVerdicts, WindowShares};
use crate::report::ReportBuilder;
use crate::{Evidence, Globals, Options};

/// How to judge a window.
#[derive(Debug, Clone)]
pub struct JudgeOptions {
    /// How many spans' records are judged at once (about a kilobyte each).
    pub share_spans: u64,
    /// Judge every message from its records, also those whose fast fields
    /// show them plainly delivered or in flight (slower; for checking).
    pub read_all: bool,
    /// Where a window read in several shares keeps the waiting shares'
    /// message facts (the system's temporary directory when `None`).
    pub spill_dir: Option<PathBuf>,
    /// How each message is judged: grace period, "now", expected groups.
    pub rules: Options,
}

impl Default for JudgeOptions {
    fn default() -> Self {
        JudgeOptions {
            share_spans: 2_000_000,
            read_all: false,
            spill_dir: None,
            rules: Options::default(),
        }
    }
}

/// How judging a window goes, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A phase begins that goes through `total` spans.
    Phase { name: &'static str, total: u64 },
    /// `n` more spans of the current phase are done.
    Advance(u64),
    /// The current phase is over.
    Done,
    /// Something a person watching should be told, in one line.
    Note(&'a str),
}

/// Why a window could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The window's facts could not be read or kept.
    #[error(transparent)]
    Facts(#[from] FactsError),
    /// The verdict counts could not be computed.
    #[error("cannot count verdicts: {0}")]
    Report(#[from] PolarsError),
    /// The window holds more shares than can be counted.
    #[error("window too large")]
    WindowTooLarge,
}

/// For each span whose record is judged at once, how many spans' message
/// facts are held at once. The facts keep 80 bytes per message (about 20
/// per span at four spans a message), a record and its evidence about a
/// kilobyte: a share's facts take about an eighth of what a batch of
/// records may. A window with more spans is read in one pass all the same,
/// its shares' facts waiting in a temporary file (see [`WindowShares`]), so
/// more shares cost little time.
const FACTS_PER_RECORDS: u64 = 8;

/// Judges every message of the spans in `spans`, all in memory.
pub fn judge_spans(spans: &[SpanRecord], rules: &Options) -> Result<ReportBuilder, JudgeError> {
    let mut builder = ReportBuilder::new();
    builder.add(&crate::analyze(&Evidence::new(spans), rules))?;
    Ok(builder)
}

/// Judges every message of the store's window `[lo, hi)` with memory for
/// about `options.share_spans` spans' records: with more spans than
/// [`FACTS_PER_RECORDS`] times that, the window's messages are handed out in
/// shares by message key.
///
/// 1. From fast fields only, no record read, in one pass: the
///    [`WindowShares`], and from them per share the window's facts with the
///    share's messages. Each share's facts add to the window's [`Globals`],
///    and the messages they show plainly delivered or plainly in flight
///    are counted ([`PlainVerdicts`]).
/// 2. The other messages' records are read in batches of about
///    `share_spans` spans ([`record_batches`]), each with every span without
///    a message id, and judged by the rules with the window's facts.
///
/// Every pass reads the same commit of the store, however a collector goes
/// on writing.
pub fn judge_window(
    store: &SpanStore,
    window: (u64, u64),
    options: &JudgeOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<ReportBuilder, JudgeError> {
    let (share_spans, rules) = (options.share_spans.max(1), &options.rules);
    let spill_dir = (options.spill_dir.clone()).unwrap_or_else(std::env::temp_dir);
    let store = &store.pinned();
    let (lo, hi) = window;
    let total = store.count_in_window(lo, hi)?;
    let facts_spans = share_spans.saturating_mul(FACTS_PER_RECORDS);
    let of = shares(total, facts_spans)?;
    let mut builder = ReportBuilder::new();
    progress(Progress::Phase {
        name: "reading fast fields",
        total,
    });
    let read = |n| progress(Progress::Advance(n));
    let memo = KeyMemo::default();
    let mut window_shares =
        WindowShares::read(store, window, (of, &spill_dir), Some(&memo), &read)?;
    progress(Progress::Done);
    progress(Progress::Phase {
        name: "judging",
        total,
    });
    let mut globals = Globals::default();
    let mut others = Vec::new();
    for index in 0..of {
        let facts = window_shares.share(index)?;
        if facts.too_many_consumers {
            progress(Progress::Done);
            progress(Progress::Note(
                "more than 64 (group, topic) pairs: judging every message from its records",
            ));
            let mut builder = ReportBuilder::new();
            let record_shares = shares(total, share_spans)?;
            judge_records(store, window, record_shares, rules, &mut builder)?;
            return Ok(builder);
        }
        globals.absorb_facts(&facts);
        let plain = if options.read_all {
            PlainVerdicts::none(&facts)
        } else {
            PlainVerdicts::find(&facts, &globals, &rules.groups)
        };
        builder.add_plain(&plain);
        progress(Progress::Advance(plain.spans));
        others.push(plain);
    }
    for (first, wanted) in record_batches(others, share_spans)
        .iter()
        .enumerate()
        .map(|(i, b)| (i == 0, b))
    {
        // Each span counts once: those without a message id in the first batch only.
        let counted = |part: &[SpanRecord]| {
            let n = part
                .iter()
                .filter(|s| s.message_id.is_some() || first)
                .count();
            progress(Progress::Advance(n as u64));
        };
        let filter = KeyFilter::new(wanted);
        let chosen = |key| filter.contains(key);
        let messages = match wanted.is_empty() {
            true => Messages::NoMessage,
            false => Messages::Chosen(&chosen, Some(&memo)),
        };
        let parts = store.records_in_window(lo, hi, messages, &counted)?;
        let evidence = Evidence::with_globals(parts.iter().flatten(), &globals);
        builder.add(&crate::analyze(&evidence, rules))?;
    }
    progress(Progress::Done);
    Ok(builder)
}

/// How many shares of at most `per_share` spans `total` spans make (one at least).
fn shares(total: u64, per_share: u64) -> Result<u32, JudgeError> {
    u32::try_from(total.div_ceil(per_share).max(1)).map_err(|_| JudgeError::WindowTooLarge)
}

/// Judges every message of the store's window `[lo, hi)` from records:
/// what the groups did over the window ([`Globals`]) first, then the
/// messages a share at a time. For windows whose facts cannot tell their
/// consumers apart.
fn judge_records(
    store: &SpanStore,
    (lo, hi): (u64, u64),
    of: u32,
    rules: &Options,
    builder: &mut ReportBuilder,
) -> Result<(), JudgeError> {
    let mut globals = Globals::default();
    let share = |index| Share { index, of };
    for index in 0..of {
        let parts = store.records_in_window(lo, hi, Messages::In(share(index)), &|_| {})?;
        globals.absorb(&Evidence::of(parts.iter().flatten()));
    }
    for index in 0..of {
        let parts = store.records_in_window(lo, hi, Messages::In(share(index)), &|_| {})?;
        let evidence = Evidence::with_globals(parts.iter().flatten(), &globals);
        builder.add(&crate::analyze(&evidence, rules))?;
    }
    Ok(())
}

/// The messages to read from records, in batches of about `share_spans`
/// spans: shares' other messages together while they fit, a share with more
/// split by key.
fn record_batches(shares: Vec<PlainVerdicts>, share_spans: u64) -> Vec<KeySet> {
    let mut pieces = Vec::new();
    for plain in shares {
        let parts = plain.other_spans.div_ceil(share_spans).max(1);
        if parts == 1 {
            pieces.push((plain.others, plain.other_spans));
            continue;
        }
        let mut split = vec![KeySet::default(); parts as usize];
        for key in plain.others {
            split[((key >> 64) as u64 % parts) as usize].insert(key);
        }
        pieces.extend(split.into_iter().map(|p| (p, plain.other_spans / parts)));
    }
    let mut batches: Vec<(KeySet, u64)> = vec![Default::default()];
    for (keys, spans) in pieces {
        let last = batches.last_mut().expect("one batch at least");
        if last.1 > 0 && last.1 + spans > share_spans {
            batches.push((keys, spans));
        } else {
            last.0.extend(keys);
            last.1 += spans;
        }
    }
    batches.into_iter().map(|(keys, _)| keys).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(keys: std::ops::Range<u128>, spans_each: u64) -> PlainVerdicts {
        let others: KeySet = keys
            .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) << 64 | k)
            .collect();
        PlainVerdicts {
            other_spans: others.len() as u64 * spans_each,
            others,
            ..PlainVerdicts::default()
        }
    }

    #[test]
    fn record_batches_hold_every_other_message_once_within_the_budget() {
        // Two small shares fit together; a large one is split by key.
        let shares = vec![share(0..10, 4), share(10..20, 4), share(20..1020, 4)];
        let batches = record_batches(shares, 100);
        let mut seen: Vec<u128> = batches.iter().flatten().map(|k| k & 0xffff).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1020).collect::<Vec<_>>());
        assert_eq!(batches[0].len(), 20, "the two small shares together");
        assert!(batches.len() >= 40, "4000 spans in batches of about 100");
        assert!(
            batches.iter().all(|b| b.len() * 4 <= 200),
            "{:?}",
            batches.iter().map(|b| b.len()).collect::<Vec<_>>()
        );
    }
}
