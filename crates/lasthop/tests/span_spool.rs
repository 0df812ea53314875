//! A consumer killed with `kill -9` before its spans were exported: they die
//! with it, unless it ran with `--span-spool`, in which case the next consumer
//! started on the same spool sends them, each once.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use lasthop_broker::{BrokerConfig, server};
use lasthop_collector::CollectorConfig;
use lasthop_vocab::Hop;
use support::{Process, eventually, lasthop, send_all};

const GROUP: &str = "red-packet";

/// Starts `lasthop consume` on the spool; returns it once it has printed `n`
/// processed messages.
fn consume(broker: &str, otlp: &str, spool: &Path, n: usize, extra: &[&str]) -> Process {
    let mut child = lasthop()
        .args(["consume", "--topic", support::TOPIC, "--group", GROUP])
        .args(["--broker", broker, "--otlp", otlp])
        .arg("--span-spool")
        .arg(spool)
        .args(extra)
        .env("RUST_LOG", "warn")
        // Nothing is exported before the kill: the spool is all there is.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut processed = 0;
    while processed < n {
        let line = lines.next().expect("consumer output").unwrap();
        processed += usize::from(line.starts_with("processed "));
    }
    std::thread::spawn(move || lines.for_each(drop));
    Process(child)
}

#[test]
fn a_killed_consumers_spans_are_sent_by_the_next_one_on_its_spool() {
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut config = CollectorConfig::ephemeral(dir.path().join("collector"));
    config.pipeline.commit_interval = Duration::from_millis(100);
    let collector = rt
        .block_on(lasthop_collector::server::start(config))
        .unwrap();
    let otlp = format!("http://{}", collector.grpc_addr);
    let broker = rt
        .block_on(server::start(BrokerConfig {
            listen_port: 0,
            store_path_root_dir: dir.path().join("broker"),
            default_topic_queue_nums: 1,
            ..BrokerConfig::default()
        }))
        .unwrap();
    let addr = broker.addr.to_string();
    let spool = dir.path().join("spool");
    let keys: Vec<String> = (0..5).map(|i| format!("ORDER_SPOOL_{i}")).collect();
    rt.block_on(send_all(&addr, keys[..4].iter().cloned()));

    let store = collector.pipeline().store().clone();
    let processed = |key: &str| {
        store
            .by_key(key)
            .unwrap()
            .iter()
            .filter(|s| s.hop == Some(Hop::Process) && s.group.as_deref() == Some(GROUP))
            .count()
    };

    // On receipt: the group's offset is past the four before they are
    // processed, so nothing is delivered again and only the spool can tell.
    // Killed once the fourth is printed, when the span of the third has
    // certainly ended (one thread processes them in turn); the fourth's may not
    // have: a span is spooled when it ends, and the handler prints before that.
    let mut first = consume(&addr, &otlp, &spool, 4, &["--ack", "on-receive"]);
    first.kill9();
    for key in &keys[..4] {
        assert_eq!(processed(key), 0, "{key}'s process span left with the kill");
    }
    let spooled = std::fs::metadata(spool.join("spans.spool")).unwrap().len();
    assert!(spooled > 0, "the killed consumer's spans are in the spool");

    // The next consumer on the spool sends them, then processes one more and stops.
    let mut second = lasthop()
        .args(["consume", "--topic", support::TOPIC, "--group", GROUP])
        .args(["--broker", &addr, "--otlp", &otlp, "--count", "1"])
        .args(["--ack", "on-receive"])
        .arg("--span-spool")
        .arg(&spool)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Process)
        .unwrap();
    rt.block_on(send_all(&addr, keys[4..].iter().cloned()));
    let status = eventually("the second consumer to stop", || {
        second.0.try_wait().unwrap()
    });
    let mut summary = String::new();
    second
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    assert!(status.success(), "{summary}");
    assert!(
        summary.contains("replayed from the span spool"),
        "{summary}"
    );
    for key in keys[..3].iter().chain(&keys[4..]) {
        eventually(&format!("{key}'s process span"), || {
            (processed(key) > 0).then_some(())
        });
        assert_eq!(processed(key), 1, "{key}'s process span, once");
    }
    assert!(
        processed(&keys[3]) <= 1,
        "the fourth's span, if it ended, once"
    );
    let replayed = store.by_key(&keys[0]).unwrap();
    let process = replayed
        .iter()
        .find(|s| s.hop == Some(Hop::Process))
        .unwrap();
    assert_eq!(
        process.service, "lasthop-consumer",
        "sent under its own resource"
    );
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "lock")
        .collect();
    assert!(left.is_empty(), "a clean stop leaves no spans: {left:?}");

    rt.block_on(broker.shutdown()).unwrap();
    rt.block_on(collector.shutdown());
}
