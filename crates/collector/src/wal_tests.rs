use super::*;
use proptest::prelude::*;

fn collect(dir: &Path, from: Lsn) -> Vec<(Lsn, Vec<u8>)> {
    let mut out = Vec::new();
    replay(dir, from, |lsn, p| out.push((lsn, p.to_vec()))).unwrap();
    out
}

fn last_segment(dir: &Path) -> PathBuf {
    list_segments(dir).unwrap().pop().unwrap().1
}

#[test]
fn frames_read_back_across_segments_and_from_any_frame_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 64).unwrap();
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 10 + i as usize]).collect();
    let ends: Vec<Lsn> = payloads.iter().map(|p| wal.append(p).unwrap()).collect();
    wal.sync().unwrap();
    assert!(
        list_segments(dir.path()).unwrap().len() > 3,
        "small segments roll"
    );
    let all = collect(dir.path(), 0);
    assert_eq!(
        all.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        payloads
    );
    assert_eq!(all.iter().map(|(l, _)| *l).collect::<Vec<_>>(), ends);
    let tail = collect(dir.path(), ends[9]);
    assert_eq!(tail.len(), 10);
    assert_eq!(tail[0].1, payloads[10]);
}

#[test]
fn reopen_continues_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
    wal.append(b"one").unwrap();
    wal.sync().unwrap();
    let end = wal.end();
    drop(wal);
    let (mut wal, report) = Wal::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_eq!(wal.end(), end);
    wal.append(b"two").unwrap();
    wal.sync().unwrap();
    let got: Vec<Vec<u8>> = collect(dir.path(), 0).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
    wal.append(b"kept").unwrap();
    wal.sync().unwrap();
    let end = wal.end();
    drop(wal);
    // A frame header announcing 100 bytes, of which only 3 arrived.
    let mut f = OpenOptions::new()
        .append(true)
        .open(last_segment(dir.path()))
        .unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
    drop(f);
    let (wal, report) = Wal::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(report.truncated_bytes, 11);
    assert!(!report.truncated_corrupt);
    assert_eq!(wal.end(), end);
    assert_eq!(collect(dir.path(), 0).len(), 1);
}

#[test]
fn corrupt_last_frame_is_reported_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
    wal.append(b"good").unwrap();
    wal.append(b"flipped").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let path = last_segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let (_, report) = Wal::open(dir.path(), 1 << 20).unwrap();
    assert!(report.truncated_corrupt);
    assert_eq!(collect(dir.path(), 0).len(), 1);
}

#[test]
fn corruption_in_an_older_segment_is_an_error_not_a_silent_skip() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 16).unwrap();
    for _ in 0..4 {
        wal.append(&[7; 20]).unwrap();
    }
    wal.sync().unwrap();
    let first = list_segments(dir.path()).unwrap()[0].1.clone();
    let mut bytes = fs::read(&first).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&first, bytes).unwrap();
    let err = replay(dir.path(), 0, |_, _| {}).unwrap_err();
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

#[test]
fn remove_below_keeps_what_is_not_yet_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 16).unwrap();
    let ends: Vec<Lsn> = (0..6u8).map(|i| wal.append(&[i; 20]).unwrap()).collect();
    wal.sync().unwrap();
    let removed = remove_below(dir.path(), ends[2]).unwrap();
    assert_eq!(removed, 3);
    let rest: Vec<Vec<u8>> = collect(dir.path(), ends[2])
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(rest, (3..6u8).map(|i| vec![i; 20]).collect::<Vec<_>>());
    assert!(matches!(
        replay(dir.path(), 0, |_, _| {}),
        Err(WalError::Missing { .. })
    ));
}

proptest! {
    /// Cutting the log anywhere (a crash mid-write) leaves, after reopening,
    /// exactly a prefix of whole frames, and appends continue after it.
    #[test]
    fn any_cut_leaves_a_prefix_of_whole_frames(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 1..12),
        cut_fraction in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let ends: Vec<Lsn> = payloads.iter().map(|p| wal.append(p).unwrap()).collect();
        wal.sync().unwrap();
        drop(wal);
        let path = last_segment(dir.path());
        let cut = (fs::metadata(&path).unwrap().len() as f64 * cut_fraction) as u64;
        OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20).unwrap();
        let kept = ends.iter().filter(|e| **e <= cut).count();
        prop_assert_eq!(wal.end(), if kept == 0 { 0 } else { ends[kept - 1] });
        wal.append(b"after").unwrap();
        wal.sync().unwrap();
        let got: Vec<Vec<u8>> = collect(dir.path(), 0).into_iter().map(|(_, p)| p).collect();
        let mut expected = payloads[..kept].to_vec();
        expected.push(b"after".to_vec());
        prop_assert_eq!(got, expected);
    }
}
