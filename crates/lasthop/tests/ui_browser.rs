//! The web UI against a collector filled by every demo scenario (real
//! brokers, real faults, the ledgers' truth):
//!
//! - its JSON tells the CLI's story: `/api/ui/report` is `lasthop report
//!   --format json` over the same store, `/api/ui/paths` is `lasthop query
//!   --format json`;
//! - in headless Chromium (Debian's, driven by playwright-core, both
//!   installed by `scripts/install-peers.sh`), `crates/ui/e2e/ui.e2e.mjs`
//!   searches a lost order's key, opens it, finds the verdict, its hop, the
//!   fix and the marked evidence; follows a report count to its lost
//!   messages; and sees a span full of markup and script shown as text.
//!   Screenshots land in `target/ui-screenshots/`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lasthop_analyzer::Verdict;
use lasthop_collector::Plugins;
use lasthop_samples::{Plan, SCENARIOS, ScenarioOutcome, Session};
use lasthop_ui::UiOptions;
use serde_json::{Value, json};

use support::{lasthop, succeed};

const XSS_MSG_ID: &str = "XSS-<script>1</script>";
/// One key (keys are split at spaces, as RocketMQ's KEYS are), still markup.
const XSS_KEY: &str = "<img/src=x/onerror=window.__lasthop_pwned=2>";
const XSS_ATTR: &str = "<script>window.__lasthop_pwned = 1</script>";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One OTLP/JSON request with a span whose every string is markup.
fn hostile_span() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let s = |v: &str| json!({"stringValue": v});
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": s("<b data-injected>svc</b>")}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": "b7ad6b7169203331",
            "name": "<script>window.__lasthop_pwned = 3</script> send",
            "kind": 4,
            "startTimeUnixNano": (now - 5_000_000).to_string(),
            "endTimeUnixNano": now.to_string(),
            "attributes": [
                {"key": "lasthop.hop", "value": s("send")},
                {"key": "messaging.message.id", "value": s(XSS_MSG_ID)},
                {"key": "messaging.destination.name", "value": s("<i>topic</i>")},
                {"key": "messaging.rocketmq.message.keys", "value": {"arrayValue": {"values": [s(XSS_KEY)]}}},
                {"key": "note", "value": s(XSS_ATTR)}
            ]
        }]}]
    }]})
}

async fn get(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// A filled collector with the UI's routes; each scenario's outcome.
async fn filled(data: &Path) -> (Session, Vec<ScenarioOutcome>) {
    let ui = UiOptions {
        grace_ns: 0,
        groups: vec![],
    };
    let exe = env!("CARGO_BIN_EXE_lasthop").into();
    let plugins = lasthop_ui::with_ui(Plugins::default(), ui);
    let session = Session::start_with(exe, data.to_path_buf(), plugins)
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        outcomes.push(session.run(Plan::demo(scenario), i as u64).await.unwrap());
    }
    let http = format!("http://{}/v1/traces", session.otlp_http_addr());
    let sent = reqwest::Client::new()
        .post(&http)
        .json(&hostile_span())
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    // Searchable from the next commit.
    let api = format!("http://{}", session.api_addr());
    let deadline = Instant::now() + Duration::from_secs(30);
    let url =
        reqwest::Url::parse_with_params(&format!("{api}/api/ui/paths"), &[("msg_id", XSS_MSG_ID)])
            .unwrap();
    while get(url.as_str()).await["messages"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the hostile span never became searchable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (session, outcomes)
}

fn cli_json(args: &[&str]) -> Value {
    let out = succeed(lasthop().args(args));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether the browser and the test driver are here; with
/// `LASTHOP_REQUIRE_PEERS` set their absence fails the test.
fn browser_ready() -> bool {
    let chromium = Path::new("/usr/bin/chromium").exists();
    let driver = repo()
        .join("crates/ui/e2e/node_modules/playwright-core")
        .exists();
    let node = Command::new("node").arg("--version").output().is_ok();
    if chromium && driver && node {
        return true;
    }
    let missing = format!(
        "chromium {chromium}, playwright-core {driver}, node {node}: run scripts/install-peers.sh"
    );
    assert!(
        std::env::var_os("LASTHOP_REQUIRE_PEERS").is_none(),
        "LASTHOP_REQUIRE_PEERS is set and a browser peer is missing ({missing})"
    );
    eprintln!("skipped: {missing}");
    false
}

#[test]
fn the_web_ui_finds_a_lost_order_its_hop_and_evidence_in_a_real_browser() {
    support::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (session, outcomes) = filled(&data).await;
        let api = format!("http://{}", session.api_addr());
        let data_arg = data.to_str().unwrap();

        // The report: the UI's figures are `lasthop report`'s over the same store.
        let mut ui_report = get(&format!("{api}/api/ui/report")).await;
        let mut cli_report = cli_json(&[
            "report", "--data", data_arg, "--grace", "0", "--format", "json",
        ]);
        for r in [&mut ui_report, &mut cli_report] {
            r.as_object_mut().unwrap().remove("window");
        }
        assert_eq!(ui_report, cli_report, "the UI's report is the CLI's");
        // A bounded window too, its timeline sized to the window.
        let (since, until) = (0u64, 4_102_444_800_000u64);
        let mut ui_window = get(&format!("{api}/api/ui/report?since={since}&until={until}")).await;
        let mut cli_window = cli_json(&[
            "report",
            "--data",
            data_arg,
            "--grace",
            "0",
            "--format",
            "json",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
        ]);
        for r in [&mut ui_window, &mut cli_window] {
            r.as_object_mut().unwrap().remove("window");
        }
        assert_eq!(
            ui_window, cli_window,
            "the UI's report of a window is the CLI's"
        );

        // A lost order of the power-loss scenario, by the ledgers.
        let power = outcomes.iter().find(|o| o.name == "power-loss").unwrap();
        let order = power
            .lost
            .iter()
            .next()
            .expect("the power loss lost an order")
            .clone();
        let finding = &power.verdicts[&order];
        assert_eq!(finding.verdict, Verdict::LostAtFlush);
        let hop = finding.hop.clone().unwrap();

        // The message page's path is `lasthop query`'s.
        let ui_path = get(&format!("{api}/api/ui/paths?key={order}")).await;
        let cli_path = cli_json(&[
            "query", "--data", data_arg, "--key", &order, "--grace", "0", "--format", "json",
        ]);
        assert_eq!(ui_path, cli_path, "the UI's path is the CLI's");
        let hops = ui_path["messages"][0]["hops"].as_array().unwrap();
        assert!(
            hops.iter()
                .any(|h| h["role"] == "broker_event" && h["hop"] == "recover"),
            "the restart that took it is on its path: {hops:#?}"
        );

        let lost_total = cli_report["lost_messages"].as_array().unwrap().len();
        let ledger_lost: usize = outcomes
            .iter()
            .filter(|o| o.expected.is_some_and(Verdict::is_lost))
            .map(|o| o.lost.len())
            .sum();
        assert_eq!(
            lost_total, ledger_lost,
            "the report counts what the ledgers lost"
        );
        let hop_lost = cli_report["by_hop"][&hop].as_u64().unwrap();

        if browser_ready() {
            let shots = repo().join("target/ui-screenshots");
            let out = Command::new("node")
                .arg(repo().join("crates/ui/e2e/ui.e2e.mjs"))
                .env("LASTHOP_URL", &api)
                .env("LOST_KEY", &order)
                .env("LOST_VERDICT", finding.verdict.as_str())
                .env("LOST_HOP", &hop)
                .env("EXPECTED_LOST", lost_total.to_string())
                .env("EXPECTED_HOP_LOST", hop_lost.to_string())
                .env("XSS_MSG_ID", XSS_MSG_ID)
                .env("SHOTS_DIR", &shots)
                .output()
                .unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "the browser test failed:\n{said}");
            for name in [
                "search",
                "message",
                "report",
                "report-filtered",
                "escaped",
                "health",
            ] {
                let png = shots.join(format!("{name}.png"));
                let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
                assert!(size > 10_000, "{} is missing or empty", png.display());
            }
        }
        session.finish().await.unwrap();
    });
}
