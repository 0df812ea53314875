//! `lasthop watch` against a `lasthop collector` process, as a CI job or a
//! canary uses it: quiet and status 0 while nothing is lost, then after a
//! broker's power cut one line per lost order naming the hop, and with
//! `--fail-on-loss` status 3.

mod support;

use support::{CollectorProcess, lasthop, power_cut};

#[test]
fn watch_prints_each_loss_with_its_hop_and_fails_on_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start_with(&dir.path().join("data"), &["--live-grace", "1"]);
    let server = format!("http://{}", collector.api);
    let watch = |args: &[&str]| {
        lasthop()
            .args(["watch", "--server", &server])
            .args(args)
            .output()
            .unwrap()
    };

    // Nothing lost yet: it waits, prints nothing and ends at its timeout.
    let quiet = watch(&["--fail-on-loss", "--timeout", "1"]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stdout.is_empty());

    let otlp = format!("http://{}", collector.grpc);
    let _broker = power_cut(&dir.path().join("b1"), &otlp);
    let failed = watch(&["--all", "--fail-on-loss", "--timeout", "60"]);
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    let line = String::from_utf8(failed.stdout).unwrap();
    assert!(
        line.contains("LOST lost_at_flush hop=flush topic=order_paid"),
        "{line}"
    );
    assert!(line.contains("keys=ORDER_1"), "{line}");

    // Every loss, one line each, as JSON.
    let all = watch(&["--all", "--format", "json", "--timeout", "1"]);
    assert_eq!(all.status.code(), Some(0));
    let events: Vec<serde_json::Value> = String::from_utf8(all.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut orders: Vec<&str> = events
        .iter()
        .map(|e| e["keys"][0].as_str().unwrap())
        .collect();
    orders.sort_unstable();
    assert_eq!(orders, ["ORDER_1", "ORDER_2", "ORDER_3"]);
    assert!(
        events
            .iter()
            .all(|e| e["verdict"] == "lost_at_flush" && e["broker"] == "b1")
    );

    // A collector that does not judge live says so.
    let dir2 = tempfile::tempdir().unwrap();
    let plain = CollectorProcess::start_with(&dir2.path().join("data"), &["--no-live"]);
    let out = lasthop()
        .args(["watch", "--server", &format!("http://{}", plain.api)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not judge live"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
