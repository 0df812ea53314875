//! The pipeline's commit timing, on its own and on a real pipeline.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn pending_documents_are_due_on_the_interval_or_when_the_input_goes_quiet() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let timing = CommitTiming {
        interval: 1000 * MS,
        idle: Some(50 * MS),
    };
    let interval_only = CommitTiming {
        idle: None,
        ..timing
    };
    // (timing, first pending, last batch, last commit, due), in ms after t0.
    let cases = [
        // The interval comes before the quiet moment.
        (timing, 900, 950, Some(0), 1000),
        // A burst that ended: 50 ms after its last batch.
        (timing, 300, 400, Some(0), 450),
        // Shortly after a commit: not before a quarter interval has passed.
        (timing, 10, 20, Some(0), 250),
        // No commit yet in this run: as soon as the input is quiet.
        (timing, 10, 20, None, 70),
        // Spans arriving without a pause: the interval decides.
        (timing, 0, 990, Some(0), 1000),
        // Without idle commits, only the interval.
        (interval_only, 300, 400, Some(0), 1300),
    ];
    for (timing, first, last_job, last_commit, due) in cases {
        assert_eq!(
            timing.due_at(at(first), at(last_job), last_commit.map(at)),
            at(due),
            "first {first} ms, last batch {last_job} ms, last commit {last_commit:?}"
        );
    }
}

fn record(i: u64) -> SpanRecord {
    SpanRecord {
        trace_id: format!("{i:032x}"),
        span_id: format!("{i:016x}"),
        service: "svc".into(),
        name: "op".into(),
        start_ns: i,
        end_ns: i + 1,
        ..SpanRecord::default()
    }
}

#[test]
fn a_quiet_input_makes_a_burst_searchable_before_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        commit_interval: Duration::from_secs(3600),
        idle_commit: Some(20 * MS),
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::open(dir.path(), options).unwrap();
    let lsn = pipeline
        .accept_blocking(vec![record(1), record(2)])
        .unwrap();
    // An hour-long interval: only the idle commit can make this true in time.
    assert!(pipeline.wait_indexed(lsn, Duration::from_secs(60)));
    assert_eq!(pipeline.store().count(), 2);
    assert_eq!(
        pipeline
            .store()
            .by_trace_id(&format!("{:032x}", 2))
            .unwrap(),
        vec![record(2)]
    );
    // The next burst comes within a quarter interval of that commit: it waits.
    let lsn = pipeline.accept_blocking(vec![record(3)]).unwrap();
    assert!(!pipeline.wait_indexed(lsn, 300 * MS));
    let stats = pipeline.shutdown();
    assert_eq!((stats.indexed_spans, stats.commits), (3, 2));
}

#[test]
fn without_idle_commits_a_batch_waits_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        commit_interval: Duration::from_secs(3600),
        idle_commit: None,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::open(dir.path(), options).unwrap();
    let lsn = pipeline.accept_blocking(vec![record(1)]).unwrap();
    assert!(!pipeline.wait_indexed(lsn, 300 * MS));
    assert_eq!(pipeline.store().count(), 0);
    // Shutdown still commits what is pending.
    assert_eq!(pipeline.shutdown().indexed_spans, 1);
}
