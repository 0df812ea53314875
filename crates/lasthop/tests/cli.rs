//! The command line as a user runs it: ingest a file with a bad line, query
//! the store directly and through a running collector, and clear errors.

mod support;

use std::io::Write;

use support::{BrokerProcess, CollectorProcess, lasthop, succeed};

const LINE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"order-service"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"order_paid send","kind":4,"startTimeUnixNano":"1763700000000000000","endTimeUnixNano":"1763700000120000000","attributes":[{"key":"lasthop.hop","value":{"stringValue":"send"}},{"key":"messaging.message.id","value":{"stringValue":"M42"}},{"key":"messaging.rocketmq.message.keys","value":{"arrayValue":{"values":[{"stringValue":"ORDER_42"}]}}},{"key":"lasthop.broker","value":{"stringValue":"broker-a"}},{"key":"lasthop.commitlog.offset","value":{"intValue":"81234"}}]}]}]}]}"#;

fn ingest_sample(data: &std::path::Path) -> std::process::Output {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "{LINE}\nthis line is not json\n{}",
        LINE.replace("eee19b7ec3c1b174", "fff19b7ec3c1b174")
    )
    .unwrap();
    lasthop()
        .arg("ingest")
        .arg("--data")
        .arg(data)
        .arg(file.path())
        .output()
        .unwrap()
}

#[test]
fn ingest_reports_the_bad_line_and_loads_the_rest_then_query_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = ingest_sample(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(":2: "),
        "bad line number reported: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("loaded 2 spans"));

    let out = lasthop()
        .args(["query", "--key", "ORDER_42", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("2 spans for key ORDER_42"), "{text}");
    assert!(text.contains("message M42"));
    assert!(text.contains("broker-a, offset 81234"));

    let out = lasthop()
        .args([
            "query",
            "--trace-id",
            "5B8EFFF798038103D269B633813FC60C",
            "--format",
            "json",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hops = v["messages"][0]["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["hop"], "send");
    assert_eq!(hops[0]["attributes"]["lasthop.commitlog.offset"], 81234);
}

#[test]
fn query_through_a_running_collector_matches_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ingest_sample(dir.path()).status.success());
    let direct = lasthop()
        .args(["query", "--msg-id", "M42", "--format", "json", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let collector = CollectorProcess::start(dir.path());
    let server = format!("http://{}", collector.api);
    let remote = lasthop()
        .args([
            "query", "--msg-id", "M42", "--format", "json", "--server", &server,
        ])
        .output()
        .unwrap();
    assert!(
        remote.status.success(),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&remote.stdout),
        String::from_utf8_lossy(&direct.stdout)
    );
    assert!(collector.terminate().success());
}

#[test]
fn a_second_writer_on_the_same_data_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(dir.path());
    let out = ingest_sample(dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another lasthop process"));
    assert!(collector.terminate().success());
}

#[test]
fn clear_errors_for_missing_data_and_bad_ids() {
    let dir = tempfile::tempdir().unwrap();
    let out = lasthop()
        .args(["query", "--key", "K", "--data"])
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lasthop data in"));
    let out = lasthop()
        .args(["query", "--trace-id", "nothex"])
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 hex digits"));
    let out = lasthop()
        .args(["query", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let out = lasthop()
        .args(["query", "--key", "K", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
    let out = lasthop()
        .args(["broker", "--simulate-power-loss", "--span-spool"])
        .arg(dir.path().join("spool"))
        .arg("--store")
        .arg(dir.path().join("store"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not through a power cut"));
}

#[test]
fn a_consumer_without_a_broker_stops_with_the_reason() {
    let mut child = lasthop()
        .args([
            "consume",
            "--broker",
            "127.0.0.1:9",
            "--topic",
            "t",
            "--group",
            "g",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(support::Process)
        .unwrap();
    let status = support::eventually("the consumer to stop", || child.0.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect to broker 127.0.0.1:9"),
        "{stderr}"
    );
    assert!(
        stderr.contains("processed 0 messages"),
        "the summary still comes: {stderr}"
    );
}

#[test]
fn rocketmq_trace_records_and_json_logs_load_together_and_get_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let record = |fields: &[&str]| {
        let mut r = fields.join("\u{1}").into_bytes();
        r.push(0x02);
        r
    };
    let trace = dir.path().join("trace.bin");
    let mut bytes = record(&[
        "Pub",
        "1763700000120",
        "R",
        "order-producer",
        "order_paid",
        "MSG1",
        "",
        "ORDER_1",
        "10.0.0.1:10911",
        "10",
        "3",
        "Normal_Msg",
        "0A00000100002A9F0000000000000000",
        "true",
    ]);
    bytes.extend(record(&[
        "Pub",
        "1763700000130",
        "R",
        "order-producer",
        "order_paid",
        "MSG2",
        "",
        "ORDER_2",
        "10.0.0.1:10911",
        "10",
        "3000",
        "Normal_Msg",
        "",
        "false",
    ]));
    std::fs::write(&trace, bytes).unwrap();
    let log = dir.path().join("red-packet.jsonl");
    std::fs::write(&log, "{\"time\":1763700000500,\"hop\":\"process\",\"message_id\":\"MSG1\",\"topic\":\"order_paid\",\"group\":\"red-packet\",\"service\":\"red-packet\"}\n").unwrap();
    let out = lasthop()
        .arg("ingest")
        .arg("--data")
        .arg(dir.path().join("d"))
        .arg(&trace)
        .arg(&log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("(rocketmq-trace)") && stderr.contains("(jsonl)"),
        "{stderr}"
    );
    let verdict = |key: &str| {
        let out = lasthop()
            .args(["query", "--format", "json", "--key", key, "--data"])
            .arg(dir.path().join("d"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["messages"][0]["verdicts"][0]["verdict"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(verdict("ORDER_1"), "delivered");
    assert_eq!(verdict("ORDER_2"), "lost_at_send");
}

#[test]
fn report_over_files_counts_losses_and_fails_on_loss() {
    let dir = tempfile::tempdir().unwrap();
    let record = |fields: &[&str]| {
        let mut r = fields.join("\u{1}").into_bytes();
        r.push(0x02);
        r
    };
    let trace = dir.path().join("trace.bin");
    let mut bytes = record(&[
        "Pub",
        "1763700000120",
        "R",
        "p",
        "order_paid",
        "MSG1",
        "",
        "ORDER_1",
        "h",
        "10",
        "3",
        "Normal_Msg",
        "",
        "true",
    ]);
    bytes.extend(record(&[
        "Pub",
        "1763700000130",
        "R",
        "p",
        "order_paid",
        "MSG2",
        "",
        "ORDER_2",
        "h",
        "10",
        "3000",
        "Normal_Msg",
        "",
        "false",
    ]));
    std::fs::write(&trace, bytes).unwrap();
    let log = dir.path().join("app.jsonl");
    std::fs::write(&log, "{\"time\":1763700000500,\"hop\":\"process\",\"message_id\":\"MSG1\",\"topic\":\"order_paid\",\"group\":\"red-packet\"}\n").unwrap();
    let out = lasthop()
        .args(["report", "--format", "json", "--fail-on-loss", "--input"])
        .arg(&trace)
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["totals"]["messages"], 2);
    assert_eq!(v["totals"]["by_verdict"]["delivered"], 1);
    assert_eq!(v["totals"]["by_verdict"]["lost_at_send"], 1);
    assert_eq!(v["by_hop"]["send"], 1);
    assert_eq!(v["lost_messages"][0]["keys"][0], "ORDER_2");
    // Loaded into a temporary store first (as large inputs are): the same report.
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let out = lasthop()
        .args([
            "report",
            "--format",
            "json",
            "--spool-above",
            "0",
            "--spool-dir",
        ])
        .arg(&spool)
        .arg("--input")
        .arg(&trace)
        .arg(&log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("temporary store"), "{stderr}");
    let spooled: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spooled, v);
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "temporary store removed"
    );
    let md = dir.path().join("r.md");
    let out = lasthop()
        .args(["report", "--format", "markdown", "--out"])
        .arg(&md)
        .arg("--input")
        .arg(&trace)
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "without --fail-on-loss a loss is not an error"
    );
    assert!(
        std::fs::read_to_string(&md)
            .unwrap()
            .contains("| lost_at_send | 1 |")
    );
}

#[test]
fn report_spills_shares_facts_and_names_the_directory_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Twenty messages' sends: many facts shares at --share-spans 1 (eight
    // spans' facts at once).
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for n in 0..20 {
        let line = LINE
            .replace("eee19b7ec3c1b174", &format!("{:016x}", n + 1))
            .replace("\"M42\"", &format!("\"M{n}\""));
        writeln!(file, "{line}").unwrap();
    }
    succeed(
        lasthop()
            .arg("ingest")
            .arg("--data")
            .arg(&data)
            .arg(file.path()),
    );
    let report = || {
        let mut command = lasthop();
        command
            .args(["report", "--format", "json", "--data"])
            .arg(&data);
        command
    };
    let json = |out: std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let whole = json(succeed(&mut report()));
    assert_eq!(whole["totals"]["messages"], 20);

    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let in_shares = |spill: &std::path::Path| {
        let mut command = report();
        command
            .args(["--share-spans", "1", "--spool-dir"])
            .arg(spill);
        command
    };
    let shared = json(succeed(&mut in_shares(&spill)));
    assert_eq!(shared, whole, "the same report a share at a time");
    let left = std::fs::read_dir(&spill).unwrap().count();
    assert_eq!(left, 0, "nothing left behind");

    let missing = dir.path().join("no-such-dir");
    let out = in_shares(&missing).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot keep message facts in a temporary file in")
            && stderr.contains(&*missing.to_string_lossy()),
        "{stderr}"
    );
}

#[test]
fn report_through_a_running_collector_matches_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ingest_sample(dir.path()).status.success());
    let totals = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["totals"].clone(),
            v["lost_messages"].as_array().map(Vec::len),
        )
    };
    let direct = totals(
        lasthop()
            .args(["report", "--format", "json", "--data"])
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    let collector = CollectorProcess::start(dir.path());
    let server = format!("http://{}", collector.api);
    let remote = totals(
        lasthop()
            .args(["report", "--format", "json", "--server", &server])
            .output()
            .unwrap(),
    );
    assert_eq!(remote, direct);
    assert_eq!(direct.0["messages"], 1);
    assert!(collector.terminate().success());
}

#[test]
fn produce_tx_commits_transactions_a_consumer_then_receives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("store"), &[]);
    let addr = broker.addr.to_string();
    let out = lasthop()
        .args([
            "produce",
            "--tx",
            "--topic",
            "order_paid",
            "--count",
            "3",
            "--broker",
            &addr,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(" TX commit half "))
            .count(),
        3,
        "{stdout}"
    );
    let out = lasthop()
        .args([
            "consume",
            "--topic",
            "order_paid",
            "--group",
            "red-packet",
            "--count",
            "3",
            "--broker",
            &addr,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let processed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("processed "))
        .collect();
    assert_eq!(processed.len(), 3, "{stdout}");
    assert!(stdout.contains("lag 0"), "{stdout}");
    broker.terminate();
}
