//! `kill -9` in the middle of a stream of acknowledged exports: after a
//! restart every acknowledged span is found exactly once.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use lasthop_collector::SpanStore;
use prost::Message;
use support::{CollectorProcess, request, trace_hex};

const SPANS_PER_REQUEST: u64 = 40;
const SENDERS: u64 = 3;
/// Acknowledged requests to wait for before the kill.
const ACKED_BEFORE_KILL: usize = 150;

#[test]
fn every_acknowledged_span_survives_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // No commit on the interval before the kill: what was acknowledged can
    // only come back through the WAL.
    let collector = CollectorProcess::start_with(dir.path(), &["--commit-interval", "600000"]);
    let url = format!("http://{}/v1/traces", collector.http);

    let acked = Arc::new((Mutex::new(Vec::<u64>::new()), Condvar::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(1));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (acked, stop, next, url) = (acked.clone(), stop.clone(), next.clone(), url.clone());
            thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let body = request(n, SPANS_PER_REQUEST).encode_to_vec();
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send();
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            let (list, changed) = &*acked;
                            list.lock().unwrap().push(n);
                            changed.notify_all();
                        }
                        // Refused or cut off by the kill: not acknowledged.
                        _ => {}
                    }
                }
            })
        })
        .collect();

    {
        let (list, changed) = &*acked;
        let guard = changed
            .wait_while(list.lock().unwrap(), |l| l.len() < ACKED_BEFORE_KILL)
            .unwrap();
        drop(guard);
    }
    collector.kill9();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let acked: Vec<u64> = acked.0.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    // Restart: the WAL is replayed before the collector listens.
    let collector = CollectorProcess::start(dir.path());
    let stats: serde_json::Value =
        reqwest::blocking::get(format!("http://{}/api/stats", collector.api))
            .and_then(|r| r.json())
            .unwrap();
    let replayed = stats["collector"]["replayed_spans"].as_u64().unwrap();
    assert!(
        replayed > 0,
        "the restart replayed nothing, so this run did not test the WAL: {stats}"
    );
    let store = SpanStore::open(dir.path()).unwrap();
    for n in &acked {
        let spans = store.by_trace_id(&trace_hex(*n)).unwrap();
        assert_eq!(
            spans.len() as u64,
            SPANS_PER_REQUEST,
            "trace {n} after restart"
        );
    }
    // Nothing stored twice, acknowledged or not.
    let columns = store.scan(None, None).unwrap();
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    for row in columns.rows() {
        let key = (
            row.columns.trace_id[row.index].to_string(),
            row.columns.span_id[row.index].to_string(),
        );
        *seen.entry(key).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        duplicates.is_empty(),
        "duplicated spans: {:?}",
        &duplicates[..duplicates.len().min(5)]
    );
    assert!(seen.len() as u64 >= acked.len() as u64 * SPANS_PER_REQUEST);

    // A graceful stop after recovery loses nothing either.
    assert!(collector.terminate().success());
    let store = SpanStore::open(dir.path()).unwrap();
    assert_eq!(store.count(), seen.len() as u64);
}
