//! `lasthop demo` as a newcomer runs it, then the commands it suggests.

mod support;

use support::lasthop;

#[test]
fn the_demo_finds_every_loss_at_its_hop_and_leaves_data_to_explore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = lasthop()
        .args(["demo", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("== power-loss") && stdout.contains("every loss found, at lost_at_flush"),
        "{stdout}"
    );
    assert!(
        stdout.contains("== swallowed-exception")
            && stdout.contains("every loss found, at lost_at_consumer"),
        "{stdout}"
    );
    assert!(
        stdout.contains("== reliable") && stdout.contains("nothing lost, nothing called lost"),
        "{stdout}"
    );
    assert!(!stdout.contains("MISMATCH"));

    // The suggested query names the loss.
    let order = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("lasthop:  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let out = lasthop()
        .args(["query", "--grace", "0", "--key", &order, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("LOST_AT_FLUSH"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let html = dir.path().join("report.html");
    let out = lasthop()
        .args(["report", "--grace", "0", "--format", "html", "--out"])
        .arg(&html)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains("lost_at_flush")
    );

    // Judged a share of its messages at a time (bounded memory), and with the
    // plainly delivered counted from columns, the history gives the same
    // report as every message judged at once from its records.
    let report = |args: &[&str]| {
        let out = lasthop()
            .args(["report", "--grace", "0", "--format", "json", "--data"])
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["window"] = serde_json::Value::Null;
        v
    };
    let whole = report(&["--read-all", "--share-spans", "100000000"]);
    // Every loss the demo named (dead letters aside, which the report does
    // not list as lost) is in the report. How many there are depends on
    // timing: the killed consumer's batch holds two or three orders.
    let named = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("lasthop:  "))
        .filter(|l| l.starts_with("ORDER_") && !l.contains(" dead_lettered "))
        .count();
    assert!(named >= 5, "{stdout}");
    assert!(
        whole["lost_messages"].as_array().unwrap().len() >= named,
        "{whole:#}"
    );
    assert!(
        whole["totals"]["by_verdict"]["delivered"].as_u64().unwrap() >= 20,
        "{whole:#}"
    );
    assert_eq!(report(&[]), whole);
    // Facts shares of 320 spans, record batches of 10.
    assert_eq!(report(&["--share-spans", "10"]), whole);
    assert_eq!(report(&["--share-spans", "10", "--read-all"]), whole);
    // Facts shares of 96 spans, record batches of 3.
    assert_eq!(report(&["--share-spans", "3"]), whole);
}
