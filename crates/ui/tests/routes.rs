//! The UI's routes over a store holding a recording of a real client
//! library's instrumentation (pika's, against RabbitMQ, from
//! `recordings/rabbitmq/pika`): search finds each order with the verdict
//! its spans earn (the ledger's `expected_spans_only`), a loss verdict lists
//! exactly the orders the ledger says, and bad requests are told apart from
//! empty answers. The browser side is `crates/lasthop/tests/ui_browser.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use lasthop_collector::ingest::read_file;
use lasthop_collector::{Pipeline, PipelineOptions};
use lasthop_ui::UiOptions;
use serde_json::Value;

struct Served {
    /// Serves the UI; dropped first.
    runtime: tokio::runtime::Runtime,
    base: String,
    ledger: Value,
    /// Open (its store current) for the test's life.
    _pipeline: Pipeline,
    _dir: tempfile::TempDir,
}

/// The pika recording in a fresh store, the UI serving it.
fn served() -> Served {
    let rec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recordings/rabbitmq/pika");
    let ledger: Value =
        serde_json::from_slice(&std::fs::read(rec.join("ledger.json")).unwrap()).unwrap();
    let mut spans = Vec::new();
    read_file(
        &rec.join("spans.otlp.jsonl"),
        None,
        &Default::default(),
        |r| spans.extend(r),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::open(dir.path(), PipelineOptions::default()).unwrap();
    let lsn = pipeline.accept_blocking(spans).unwrap();
    assert!(pipeline.wait_indexed(lsn, Duration::from_secs(30)));
    let store = pipeline.store().clone();
    store.reload().unwrap();
    let options = UiOptions {
        grace_ns: ledger["grace_seconds"].as_u64().unwrap() * 1_000_000_000,
        groups: vec![],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = lasthop_ui::router(store, options);
    runtime.spawn(async move { axum::serve(listener, router).await });
    Served {
        runtime,
        base,
        ledger,
        _pipeline: pipeline,
        _dir: dir,
    }
}

impl Served {
    fn get(&self, path: &str) -> (u16, Value) {
        self.runtime.block_on(async {
            let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap())
        })
    }

    fn fetch(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        self.runtime.block_on(async {
            let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
            let (status, headers) = (r.status().as_u16(), r.headers().clone());
            (status, headers, r.text().await.unwrap())
        })
    }
}

#[test]
fn search_finds_each_recorded_order_with_the_verdict_its_spans_earn() {
    let s = served();
    let orders = s.ledger["orders"].as_object().unwrap();
    for (order, truth) in orders {
        // pika's spans carry message ids, not business keys (those are in
        // the service's log): the spans alone are searched by message id.
        let id = truth["message_id"].as_str().unwrap();
        let (status, body) = s.get(&format!("/api/ui/search?msg_id={id}"));
        assert_eq!(status, 200, "{body}");
        let found = body["messages"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{order}: {body}");
        assert_eq!(found[0]["message_id"], truth["message_id"], "{order}");
        let verdicts: Vec<&str> = found[0]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["verdict"].as_str().unwrap())
            .collect();
        assert_eq!(
            verdicts,
            vec![truth["expected_spans_only"].as_str().unwrap()],
            "{order}"
        );
    }
    // A loss verdict: exactly the orders the ledger gives it.
    for verdict in ["lost_in_transit", "lost_at_consumer", "lost_at_send"] {
        let (status, body) = s.get(&format!("/api/ui/search?verdict={verdict}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["source"], "report");
        let listed: BTreeSet<String> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = orders
            .values()
            .filter(|t| t["expected_spans_only"] == verdict)
            .map(|t| t["message_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, expected, "{verdict}");
    }
    // No filter: the newest messages, each judged.
    let (_, body) = s.get("/api/ui/search?limit=5");
    assert_eq!(body["source"], "recent");
    assert_eq!(body["messages"].as_array().unwrap().len(), 5);
    assert_eq!(body["truncated"], true, "the recording has 14 orders");
}

#[test]
fn a_bad_request_is_an_error_and_nothing_found_is_an_empty_answer() {
    let s = served();
    let (status, body) = s.get("/api/ui/search?key=NO_SUCH_ORDER");
    assert_eq!(
        (status, body["messages"].as_array().unwrap().len()),
        (200, 0)
    );
    for (path, says) in [
        ("/api/ui/search?trace_id=xyz", "32 hex digits"),
        ("/api/ui/search?verdict=gone", "no verdict is called"),
        (
            "/api/ui/search?since=yesterday",
            "milliseconds since the epoch",
        ),
        (
            "/api/ui/report?since=5&until=1",
            "since must be before until",
        ),
        ("/api/ui/paths", "give one of"),
    ] {
        let (status, body) = s.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        let msg = body["errors"][0]["msg"].as_str().unwrap();
        assert!(msg.contains(says), "{path}: {msg}");
    }
}

#[test]
fn every_page_is_the_embedded_app_under_a_strict_content_security_policy() {
    let s = served();
    for page in [
        "/",
        "/search?key=ORDER_1",
        "/message/msg-0001-bb2b308a",
        "/report",
        "/health",
    ] {
        let (status, headers, html) = s.fetch(page);
        assert_eq!(status, 200, "{page}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{page}: {csp}");
        assert!(html.contains("<script src=\"/ui/app.js\""), "{page}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no asset from elsewhere"
        );
    }
    let (_, headers, js) = s.fetch("/ui/app.js");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        !js.contains("innerHTML")
            && !js.contains("insertAdjacentHTML")
            && !js.contains("document.write"),
        "the app never parses strings as HTML"
    );
    let (_, meta) = s.get("/api/ui/meta");
    assert_eq!(
        meta["verdicts"].as_array().unwrap().len(),
        lasthop_analyzer::Verdict::ALL.len()
    );
}
