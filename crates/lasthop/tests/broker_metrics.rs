//! `lasthop broker --metrics`: what the broker's `/metrics` says, parsed as
//! Prometheus text, after three sends and a consumer that took some of them.

mod support;

use std::collections::BTreeMap;

use support::{lasthop, metrics_broker, succeed};

fn scrape(url: &str) -> BTreeMap<String, f64> {
    let text = reqwest::blocking::get(url).unwrap().text().unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let mut out = BTreeMap::new();
    for s in scrape.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            other => panic!("{}: {other:?}", s.metric),
        };
        assert_eq!(s.labels.get("broker"), Some("b1"), "{}", s.metric);
        let mut labels: Vec<String> = (s.labels.iter())
            .filter(|(k, _)| *k != "broker")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        *out.entry(format!("{}{{{}}}", s.metric, labels.join(",")))
            .or_default() += value;
    }
    out
}

#[test]
fn the_brokers_metrics_show_offsets_sends_and_each_groups_lag() {
    let dir = tempfile::tempdir().unwrap();
    let broker = metrics_broker(&dir.path().join("b1"), "none", &["--flush", "sync"]);
    let addr = broker.addr.to_string();
    succeed(lasthop().args([
        "produce",
        "--broker",
        &addr,
        "--topic",
        "order_paid",
        "--count",
        "3",
        "--otlp",
        "none",
    ]));
    let out = succeed(lasthop().args([
        "consume",
        "--broker",
        &addr,
        "--topic",
        "order_paid",
        "--group",
        "red-packet",
        "--count",
        "1",
        "--otlp",
        "none",
    ]));
    // It stops after the batch that reached the count: one message or more.
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let said = stdout.clone() + &stderr;
    let processed = stdout
        .lines()
        .filter(|l| l.starts_with("processed ORDER_"))
        .count() as f64;
    assert!(
        !said.contains("failed"),
        "--otlp none exports nothing: {said}"
    );
    let m = scrape(&format!("http://{}/metrics", broker.metrics));
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing: {m:#?}"));
    assert_eq!(get("lasthop_broker_sends_total{status=SEND_OK}"), 3.0);
    let put = get("lasthop_broker_put_offset{}");
    assert!(put > 0.0);
    // SYNC_FLUSH: every acknowledged send was fsynced.
    assert_eq!(get("lasthop_broker_flushed_offset{}"), put);
    assert_eq!(get("lasthop_broker_epoch{}"), 1.0);
    let lag: f64 = (m.iter())
        .filter(|(k, _)| {
            k.starts_with("lasthop_broker_consumer_lag{") && k.contains("group=red-packet")
        })
        .map(|(_, v)| v)
        .sum();
    let consumed: f64 = (m.iter())
        .filter(|(k, _)| {
            k.starts_with("lasthop_broker_consumer_offset{") && k.contains("group=red-packet")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(processed >= 1.0);
    assert_eq!(consumed, processed, "{m:#?}");
    assert_eq!(lag + consumed, 3.0, "{m:#?}");
}
