//! Live judging end to end: a collector with the live judge, real brokers
//! and services running every scenario of the demo (power loss, a swallowed
//! exception, a consumer crash, disk loss, a network flap, poison messages,
//! transactions, the reliable setup), and a webhook receiver. The webhook gets exactly the messages the
//! ledgers lost, each once, at its hop, and nothing for the delivered;
//! `/metrics`, parsed as Prometheus text, counts what `report` counts over
//! the same store.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use lasthop_analyzer::live::{LiveJudge, LiveOptions};
use lasthop_analyzer::report::Window;
use lasthop_analyzer::{JudgeOptions, JudgedAt, Options, judge_window};
use lasthop_samples::{Plan, SCENARIOS, Session};
use serde_json::Value;

/// Longer than a consumer's restart after the consumer-crash scenario's
/// kill: with less, its redelivered messages are first reported lost, then
/// recovered (the change is reported, see `live_judging.rs`), where this
/// test wants exactly the losses.
const GRACE: Duration = Duration::from_secs(8);

type Received = Arc<Mutex<Vec<Value>>>;

async fn hook(State(received): State<Received>, Json(body): Json<Value>) {
    received.lock().unwrap().push(body);
}

/// Starts a webhook receiver; its URL and what it receives.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Waits until the judge holds no open message and the webhook has
/// answered every event of the feed.
async fn until_settled(api: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = get_json(&format!("{api}/api/live/status")).await;
        let alerts = &status["alerts"];
        let answered = alerts["sent"].as_u64().unwrap() + alerts["failed"].as_u64().unwrap();
        if status["open"] == 0 && answered == status["newest_event"].as_u64().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "not settled: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_live_judge_alerts_on_exactly_the_lost_messages_of_every_scenario_at_their_hop() {
    support::runtime().block_on(async {
        let (url, received) = receiver().await;
        let options = LiveOptions {
            max_open_age: Duration::from_secs(20),
            ..LiveOptions::with_grace(GRACE)
        };
        let live = LiveJudge::start(options, Some(url), &tokio::runtime::Handle::current());
        let dir = tempfile::tempdir().unwrap();
        let exe = env!("CARGO_BIN_EXE_lasthop").into();
        let session = Session::start_with(exe, dir.path().join("data"), live.plugins())
            .await
            .unwrap();
        let mut outcomes = Vec::new();
        for (i, name) in SCENARIOS.iter().map(|s| s.name).enumerate() {
            let scenario = SCENARIOS.iter().find(|s| s.name == name).unwrap();
            let outcome = session.run(Plan::demo(scenario), i as u64).await.unwrap();
            outcomes.push((scenario, outcome));
        }
        let api = format!("http://{}", session.api_addr());
        let status = until_settled(&api).await;
        assert_eq!(status["alerts"]["failed"], 0, "{status}");

        // The webhook: one document per lost message, at the scenario's hop.
        let received = received.lock().unwrap().clone();
        let mut alerted: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
        for body in &received {
            assert_eq!(body["event"], "lost", "{body}");
            let order = body["keys"][0].as_str().unwrap().to_owned();
            let verdict = body["verdict"].as_str().unwrap().to_owned();
            let hop = body["hop"].as_str().map(str::to_owned);
            assert!(body["explanation"].as_str().is_some_and(|e| !e.is_empty()));
            assert!(body["fix"].as_str().is_some(), "{body}");
            let again = alerted.insert(order.clone(), (verdict, hop));
            assert!(again.is_none(), "{order} alerted twice");
        }
        let mut lost = BTreeSet::new();
        for (scenario, outcome) in &outcomes {
            // Dead-lettered (poison) is not a loss; reliable and tx-check-back lose nothing.
            let Some(expected) = scenario.expected.filter(|v| v.is_lost()) else {
                continue;
            };
            let expected = expected.as_str();
            for order in &outcome.lost {
                let (verdict, hop) = alerted.get(order).unwrap_or_else(|| {
                    panic!(
                        "{}: {order} lost and not alerted: {alerted:?}",
                        scenario.name
                    )
                });
                assert_eq!(verdict, expected, "{order}");
                let finding = &outcome.verdicts[order];
                assert_eq!(hop, &finding.hop, "{order}");
                lost.insert(order.clone());
            }
        }
        let alerted_orders: BTreeSet<String> = alerted.keys().cloned().collect();
        assert_eq!(
            alerted_orders, lost,
            "alerts for orders the ledgers did not lose"
        );

        // /metrics against report over the same store.
        let text = reqwest::get(format!("{api}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let sum_by = |metric: &str, label: &str| {
            let mut out: BTreeMap<String, u64> = BTreeMap::new();
            for s in scrape.samples.iter().filter(|s| s.metric == metric) {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                    ref other => panic!("{metric}: {other:?}"),
                };
                *out.entry(s.labels.get(label).unwrap_or("").to_owned())
                    .or_default() += value as u64;
            }
            out.retain(|_, n| *n > 0);
            out
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let judge = JudgeOptions {
            rules: Options {
                grace_ns: GRACE.as_nanos() as u64,
                now_ns: now,
                groups: vec![],
            },
            ..JudgeOptions::default()
        };
        let at = JudgedAt {
            ns: now,
            from: "--now",
        };
        let report = judge_window(session.store(), (0, u64::MAX), &judge, &|_| {})
            .unwrap()
            .finish(Window::new(None, None, at));
        let mut by_verdict = report.totals.by_verdict.clone();
        by_verdict.retain(|_, n| *n > 0);
        let mut by_hop = report.by_hop.clone();
        by_hop.retain(|_, n| *n > 0);
        assert_eq!(
            sum_by("lasthop_messages_judged_total", "verdict"),
            by_verdict
        );
        assert_eq!(sum_by("lasthop_messages_lost_total", "hop"), by_hop);
        assert_eq!(report.lost() as usize, alerted.len());
        let gauge = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                    ref other => panic!("{name}: {other:?}"),
                })
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(gauge("lasthop_messages_open"), 0.0);
        assert_eq!(gauge("lasthop_spans_dropped_total"), 0.0);
        assert!(gauge("lasthop_spans_acknowledged_total") > 0.0);
        session.finish().await.unwrap();
    });
}
