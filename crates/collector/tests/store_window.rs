//! Reading a window's records from a store: exactly the spans of the chosen
//! messages (and every span without a message id) that started inside the
//! window, whichever way the messages are chosen and whether or not a facts
//! pass left its message keys in the memo.

use std::collections::BTreeSet;
use std::time::Duration;

use lasthop_collector::{
    FactBatch, FactsFold, KeyMemo, MessageKey, Messages, Names, Pipeline, PipelineOptions, Share,
    SpanStore, message_key,
};
use lasthop_vocab::{Hop, SpanRecord};

/// Ten messages of three spans each (1,000 ns apart per message), and a
/// flush range now and then, in two commits so that messages sit in two
/// segments.
fn history() -> Vec<SpanRecord> {
    let mut spans = Vec::new();
    for m in 0..10u64 {
        for (j, hop) in [Hop::Send, Hop::Store, Hop::Process]
            .into_iter()
            .enumerate()
        {
            spans.push(SpanRecord {
                trace_id: format!("{m:032x}"),
                span_id: format!("{:016x}", m * 10 + j as u64),
                message_id: Some(format!("M{m}")),
                hop: Some(hop),
                start_ns: 1_000 * m + j as u64,
                ..SpanRecord::default()
            });
        }
        if m % 3 == 0 {
            spans.push(SpanRecord {
                trace_id: format!("{:032x}", 100 + m),
                span_id: format!("{:016x}", 900 + m),
                hop: Some(Hop::Flush),
                start_ns: 1_000 * m + 500,
                ..SpanRecord::default()
            });
        }
    }
    spans
}

/// A facts pass run only for what it leaves in the memo.
struct NoFacts;

impl FactsFold for NoFacts {
    fn add(&mut self, _: &[MessageKey], _: &FactBatch) {}
}

fn span_ids(spans: impl IntoIterator<Item = SpanRecord>) -> BTreeSet<String> {
    spans.into_iter().map(|s| s.span_id).collect()
}

/// What a window read must give: `chosen` messages' spans and every span
/// without a message id, started in `[lo, hi)`.
fn expected(
    spans: &[SpanRecord],
    (lo, hi): (u64, u64),
    chosen: impl Fn(MessageKey) -> bool,
) -> BTreeSet<String> {
    span_ids(
        spans
            .iter()
            .filter(|s| {
                s.message_id
                    .as_deref()
                    .is_none_or(|id| chosen(message_key(id)))
            })
            .filter(|s| s.start_ns >= lo && s.start_ns < hi)
            .cloned(),
    )
}

fn read(store: &SpanStore, (lo, hi): (u64, u64), messages: Messages<'_>) -> BTreeSet<String> {
    let parts = store.records_in_window(lo, hi, messages, &|_| {}).unwrap();
    span_ids(parts.into_iter().flatten())
}

#[test]
fn a_window_read_gives_the_chosen_messages_spans_that_started_inside_it() {
    let spans = history();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::open(dir.path(), PipelineOptions::default()).unwrap();
    let (early, late): (Vec<SpanRecord>, Vec<SpanRecord>) = spans
        .iter()
        .cloned()
        .partition(|s| s.hop != Some(Hop::Process));
    for half in [early, late] {
        let lsn = pipeline.accept_blocking(half).unwrap();
        assert!(pipeline.wait_indexed(lsn, Duration::from_secs(30)));
    }
    let store = pipeline.store();
    store.reload().unwrap();
    let store = store.pinned();
    assert!(store.segment_count() >= 2);

    // A facts pass leaves each segment's message keys in the memo.
    let memo = KeyMemo::default();
    store
        .fold_facts((0, u64::MAX), Some(&memo), &Names::default(), |_, _| {
            NoFacts
        })
        .unwrap();

    let picked: BTreeSet<MessageKey> = ["M2", "M5", "M7"].into_iter().map(message_key).collect();
    let chosen = |key| picked.contains(&key);
    let windows = [(0, u64::MAX), (2_001, 7_001), (3_500, 3_501), (0, 5_000)];
    for window in windows {
        let want = expected(&spans, window, chosen);
        assert!(!want.is_empty() || window == (3_500, 3_501), "{window:?}");
        for memo in [None, Some(&memo)] {
            let got = read(&store, window, Messages::Chosen(&chosen, memo));
            assert_eq!(got, want, "{window:?}, memo: {}", memo.is_some());
        }
        let share = Share { index: 1, of: 3 };
        assert_eq!(
            read(&store, window, Messages::In(share)),
            expected(&spans, window, |key| share.holds_key(key)),
            "{window:?}, a share"
        );
        assert_eq!(
            read(&store, window, Messages::NoMessage),
            expected(&spans, window, |_| false),
            "{window:?}, no message"
        );
    }
    pipeline.shutdown();
}
