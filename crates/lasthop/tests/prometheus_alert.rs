//! A real Prometheus server (Debian's `prometheus`, installed by
//! `scripts/install-peers.sh`) scrapes a `lasthop collector` and a
//! `lasthop broker --metrics`, both processes, and evaluates the example
//! rules of `deploy/prometheus/lasthop-alerts.yml`: after the broker loses
//! its unflushed messages to a power cut, `LasthopMessageLost` fires with
//! the hop. Without a `prometheus` on the PATH the test says so and passes,
//! unless `LASTHOP_REQUIRE_PEERS` is set (CI sets it).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{CollectorProcess, Process, succeed};

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn peer(name: &str) -> Option<PathBuf> {
    let found = on_path(name);
    if found.is_none() {
        assert!(
            std::env::var_os("LASTHOP_REQUIRE_PEERS").is_none(),
            "{name} is not installed; scripts/install-peers.sh installs it"
        );
        eprintln!("skipped: {name} is not installed (scripts/install-peers.sh installs it)");
    }
    found
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn get(url: &str) -> Option<Value> {
    reqwest::blocking::get(url).ok()?.json().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn prometheus_scrapes_both_and_fires_the_loss_alert_with_its_hop() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    if let Some(promtool) = on_path("promtool") {
        succeed(Command::new(promtool).current_dir(rules_dir()).args([
            "test",
            "rules",
            "lasthop-alerts.test.yml",
        ]));
    }
    let dir = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start_with(&dir.path().join("data"), &["--live-grace", "1"]);
    let otlp = format!("http://{}", collector.grpc);
    let store = dir.path().join("b1");

    let broker = support::power_cut(&store, &otlp);

    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{rules}]\n\
             scrape_configs:\n\
             - {{job_name: lasthop-collector, static_configs: [{{targets: ['{api}']}}]}}\n\
             - {{job_name: lasthop-broker, static_configs: [{{targets: ['{metrics}']}}]}}\n",
            rules = rules_dir().join("lasthop-alerts.yml").display(),
            api = collector.api,
            metrics = broker.metrics,
        ),
    )
    .unwrap();
    let _prometheus = Process(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let firing = loop {
        let alerts = get(&format!("{base}/api/v1/alerts"));
        let found = alerts.as_ref().and_then(|a| {
            a["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "LasthopMessageLost" && a["state"] == "firing"
                })
                .cloned()
        });
        if let Some(alert) = found {
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "the loss alert did not fire: {alerts:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(firing["labels"]["hop"], "flush", "{firing}");
    assert_eq!(firing["labels"]["topic"], "order_paid", "{firing}");
    assert_eq!(firing["labels"]["broker"], "b1", "{firing}");

    // What Prometheus holds of each: three losses, and the broker's second life.
    // Each target is scraped every second; a query waits for its first sample.
    let query = |q: &str| -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer: Option<Value> = reqwest::blocking::Client::new()
                .get(format!("{base}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .ok()
                .and_then(|r| r.json().ok());
            let value = answer
                .as_ref()
                .and_then(|a| a["data"]["result"][0]["value"][1].as_str()?.parse().ok());
            if let Some(value) = value {
                return value;
            }
            assert!(Instant::now() < deadline, "{q}: {answer:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(
        query("sum(lasthop_messages_lost_total{hop=\"flush\"})"),
        3.0
    );
    assert_eq!(query("lasthop_broker_epoch{job=\"lasthop-broker\"}"), 2.0);
    assert_eq!(query("lasthop_spans_dropped_total"), 0.0);
    assert_eq!(query("min(up)"), 1.0);
}
