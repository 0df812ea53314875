use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
use proptest::prelude::*;
use prost::Message as _;

use super::*;

fn span(n: u64) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(n) << 64 | 7),
            SpanId::from(n + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Consumer,
        name: Cow::Owned(format!("process {n}")),
        start_time: UNIX_EPOCH + Duration::from_secs(n),
        end_time: UNIX_EPOCH + Duration::from_secs(n + 1),
        attributes: vec![KeyValue::new("lasthop.hop", "process")],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Ok,
        instrumentation_scope: InstrumentationScope::builder("lasthop").build(),
    }
}

/// Span names in the replay files of `files`, in order.
fn replayed(files: &[PathBuf]) -> Vec<String> {
    let mut names = Vec::new();
    for file in files {
        for (body, n) in replay_bodies(file, 1 << 20).unwrap() {
            let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            let spans: Vec<String> = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.name.clone())
                .collect();
            assert_eq!(spans.len() as u64, n, "a body holds the spans it says");
            names.extend(spans);
        }
    }
    names
}

fn names(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|n| format!("process {n}")).collect()
}

#[test]
fn what_follows_the_export_mark_is_replayed_by_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, files) = Spool::open(dir.path()).unwrap();
    assert!(files.is_empty());
    let spans: Vec<SpanData> = (0..10).map(span).collect();
    let mut queued = Vec::new();
    for s in &spans {
        spool.append(s.clone(), |s| queued.push(s.name)).unwrap();
    }
    assert_eq!(
        queued,
        names(0..10),
        "each span goes on to the queue, in order"
    );
    spool.exported(4, &key_of(&spans[3])).unwrap();
    // Killed here: no close. The next process finds spans 4 to 9.
    drop(spool);
    let (spool, files) = Spool::open(dir.path()).unwrap();
    assert_eq!(replayed(&files), names(4..10));
    // Replay files stay until sent; the new spool starts empty.
    drop(spool);
    let (spool, again) = Spool::open(dir.path()).unwrap();
    assert_eq!(again, files, "an unsent replay file is offered again");
    std::fs::remove_file(&files[0]).unwrap();
    spool.close().unwrap();
    drop(spool);
    let (_spool, files) = Spool::open(dir.path()).unwrap();
    assert!(files.is_empty(), "a closed spool leaves nothing: {files:?}");
}

#[test]
fn without_an_export_every_span_is_replayed_and_a_torn_tail_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path()).unwrap();
    for n in 0..3 {
        spool.append(span(n), drop).unwrap();
    }
    drop(spool);
    // The process died while writing a fourth record.
    let path = dir.path().join(SPOOL);
    let mut partial = Vec::new();
    encode_record(&[9; 24], b"half a request", &mut partial);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&partial[..partial.len() - 3]);
    std::fs::write(&path, bytes).unwrap();
    let (_spool, files) = Spool::open(dir.path()).unwrap();
    assert_eq!(replayed(&files), names(0..3));
}

#[test]
fn a_second_process_cannot_open_a_spool_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let (_spool, _) = Spool::open(dir.path()).unwrap();
    let err = Spool::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn a_rotated_file_is_removed_once_exports_pass_its_end_and_read_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path()).unwrap();
    let spans: Vec<SpanData> = (0..6).map(span).collect();
    for s in &spans[..3] {
        spool.append(s.clone(), drop).unwrap();
    }
    // Force a rotation after the third span, as ROTATE_BYTES would.
    {
        let mut current = spool.lock();
        std::fs::rename(dir.path().join(SPOOL), dir.path().join(OLD)).unwrap();
        current.file = File::create(dir.path().join(SPOOL)).unwrap();
        current.bytes = 0;
        current.old_until = Some(current.appended);
    }
    for s in &spans[3..] {
        spool.append(s.clone(), drop).unwrap();
    }
    spool.exported(2, &key_of(&spans[1])).unwrap();
    assert!(dir.path().join(OLD).exists(), "span 2 is still only there");
    drop(spool);
    let (spool, files) = Spool::open(dir.path()).unwrap();
    assert_eq!(
        replayed(&files),
        names(2..6),
        "old and current read in order"
    );
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    for s in &spans {
        spool.append(s.clone(), drop).unwrap();
    }
    {
        let mut current = spool.lock();
        std::fs::rename(dir.path().join(SPOOL), dir.path().join(OLD)).unwrap();
        current.file = File::create(dir.path().join(SPOOL)).unwrap();
        current.old_until = Some(current.appended);
    }
    spool.append(span(6), drop).unwrap();
    spool.exported(7, &key_of(&span(6))).unwrap();
    assert!(
        !dir.path().join(OLD).exists(),
        "every span of it was exported"
    );
}

proptest! {
    /// Records read back as written, up to the first torn or damaged one.
    #[test]
    fn records_read_back_up_to_damage(
        requests in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        damage in 0..3u8,
    ) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            encode_record(&[i as u8; 24], r, &mut bytes);
            ends.push(bytes.len());
        }
        let whole = |len: usize| ends.iter().take_while(|&&e| e <= len).count();
        let (bytes, expect) = match damage {
            0 => (bytes.clone(), requests.len()),
            1 => {
                let at = cut.index(bytes.len());
                (bytes[..at].to_vec(), whole(at))
            }
            _ => {
                let at = flip.index(bytes.len());
                let mut b = bytes.clone();
                b[at] ^= 0x40;
                // A flipped length can make the rest look torn; either way
                // nothing from the damaged record on is read.
                (b, whole(at))
            }
        };
        let read = records(&bytes);
        prop_assert_eq!(read.len(), expect);
        for (i, (key, request)) in read.iter().enumerate() {
            prop_assert_eq!(key, &[i as u8; 24]);
            prop_assert_eq!(*request, requests[i].as_slice());
        }
    }
}
