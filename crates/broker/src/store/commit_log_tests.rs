use super::*;
use crate::store::backend::{FileBackend, PowerLossBackend};
use proptest::prelude::*;

fn msg(i: u64) -> StoredMessage {
    StoredMessage {
        msg_id: format!("M{i}"),
        topic: "order_paid".into(),
        queue_offset: i,
        body: vec![i as u8; (i % 7) as usize * 10],
        ..Default::default()
    }
}

fn open(
    backend: Arc<dyn Backend>,
    dir: &Path,
    seg: u64,
) -> (CommitLog, OpenReport, Vec<(u64, StoredMessage)>) {
    let mut seen = Vec::new();
    let (log, report) =
        CommitLog::open(backend, dir, seg, |off, _, m| seen.push((off, m.clone()))).unwrap();
    (log, report, seen)
}

#[test]
fn records_read_back_by_offset_across_segments_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(FileBackend);
    let (mut log, _, _) = open(backend.clone(), dir.path(), 200);
    let offsets: Vec<u64> = (0..20)
        .map(|i| log.append(&record::encode(&msg(i))).unwrap())
        .collect();
    log.flush().unwrap();
    assert!(backend.list(dir.path()).unwrap().len() > 3);
    for (i, off) in offsets.iter().enumerate() {
        match log.read(*off).unwrap() {
            ReadOutcome::Value { message, .. } => assert_eq!(message, msg(i as u64)),
            other => panic!("record {i}: {other:?}"),
        }
    }
    let end = log.end();
    drop(log);
    let (log, report, seen) = open(backend, dir.path(), 200);
    assert_eq!((report.end, report.truncated_bytes), (end, 0));
    assert_eq!(seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(), offsets);
    assert_eq!(
        log.read(end).unwrap(),
        ReadOutcome::Torn,
        "nothing past the end"
    );
}

#[test]
fn power_loss_keeps_exactly_the_flushed_records() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(PowerLossBackend);
    let (mut log, _, _) = open(backend.clone(), dir.path(), 1 << 20);
    for i in 0..5 {
        log.append(&record::encode(&msg(i))).unwrap();
    }
    let flushed = log.flush().unwrap();
    for i in 5..9 {
        log.append(&record::encode(&msg(i))).unwrap();
    }
    assert!(log.end() > flushed);
    drop(log); // power cut: the unflushed tail was only in memory
    let (log, report, seen) = open(backend, dir.path(), 1 << 20);
    assert_eq!(report.end, flushed);
    assert_eq!(log.end(), flushed);
    assert_eq!(seen.len(), 5);
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(FileBackend);
    let (mut log, _, _) = open(backend.clone(), dir.path(), 1 << 20);
    log.append(&record::encode(&msg(1))).unwrap();
    let whole = record::encode(&msg(2));
    log.append(&whole[..whole.len() / 2]).unwrap(); // a write cut short
    log.flush().unwrap();
    drop(log);
    let (mut log, report, seen) = open(backend.clone(), dir.path(), 1 << 20);
    assert_eq!(seen.len(), 1);
    assert_eq!(report.truncated_bytes, (whole.len() / 2) as u64);
    assert!(!report.truncated_corrupt);
    let off = log.append(&record::encode(&msg(3))).unwrap();
    log.flush().unwrap();
    drop(log);
    let (_, _, seen) = open(backend, dir.path(), 1 << 20);
    assert_eq!(seen.last().unwrap(), &(off, msg(3)));
}

#[test]
fn damage_in_an_older_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(FileBackend);
    let (mut log, _, _) = open(backend.clone(), dir.path(), 100);
    for i in 0..10 {
        log.append(&record::encode(&msg(i))).unwrap();
    }
    log.flush().unwrap();
    drop(log);
    let first = backend.list(dir.path()).unwrap()[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[12] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let err = CommitLog::open(backend, dir.path(), 100, |_, _, _| {}).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { segment: 0, .. }),
        "{err}"
    );
}

#[test]
fn read_raw_returns_whole_records_a_slave_can_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _, _) = open(Arc::new(FileBackend), dir.path(), 150);
    for i in 0..12 {
        log.append(&record::encode(&msg(i))).unwrap();
    }
    let slave_dir = tempfile::tempdir().unwrap();
    let (mut slave, _, _) = open(Arc::new(FileBackend), slave_dir.path(), 150);
    while slave.end() < log.end() {
        let chunk = log.read_raw(slave.end(), 64).unwrap();
        assert!(!chunk.is_empty());
        let mut pos = 0;
        while pos < chunk.len() {
            let ReadOutcome::Value { size, .. } = record::decode(&chunk[pos..]) else {
                panic!("partial record")
            };
            let at = slave.append(&chunk[pos..pos + size as usize]).unwrap();
            assert_eq!(
                log.read(at).unwrap(),
                slave.read(at).unwrap(),
                "same offsets on both"
            );
            pos += size as usize;
        }
    }
    assert_eq!(slave.end(), log.end());
}

#[derive(Debug, Clone)]
enum Op {
    Append,
    Flush,
    PowerLoss,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![6 => Just(Op::Append), 2 => Just(Op::Flush), 1 => Just(Op::PowerLoss)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Model: after any sequence of appends, flushes and power losses, the log
    /// holds exactly the records appended before the last flush preceding each loss.
    #[test]
    fn power_loss_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(PowerLossBackend);
        let (mut log, _, _) = open(backend.clone(), dir.path(), 300);
        let mut durable: Vec<u64> = Vec::new();
        let mut live: Vec<u64> = Vec::new();
        let mut n = 0u64;
        for op in ops {
            match op {
                Op::Append => {
                    log.append(&record::encode(&msg(n))).unwrap();
                    live.push(n);
                    n += 1;
                }
                Op::Flush => {
                    log.flush().unwrap();
                    durable = live.clone();
                }
                Op::PowerLoss => {
                    drop(log);
                    let (reopened, _, seen) = open(backend.clone(), dir.path(), 300);
                    let ids: Vec<u64> = seen.iter().map(|(_, m)| m.queue_offset).collect();
                    // Rolling to a new segment syncs the old one, so more may survive than was flushed.
                    prop_assert!(ids.starts_with(&durable), "lost flushed records: {:?} vs {:?}", ids, durable);
                    prop_assert!(live.starts_with(&ids));
                    live = ids.clone();
                    durable = ids;
                    log = reopened;
                }
            }
        }
    }
}
