//! The live judge's routes on the collector's API address:
//! `GET /api/live/losses?after=SEQ&limit=N&wait_ms=MS` (the feed's events
//! after SEQ, waiting up to MS for one; what `lasthop watch` reads) and
//! `GET /api/live/status` (what the judge holds and has done).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Json;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;

/// Longest a request may wait for an event.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct LossesQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    wait_ms: Option<u64>,
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/live/losses", get(losses))
        .route("/api/live/status", get(status))
        .with_state(shared)
}

async fn losses(State(shared): State<Arc<Shared>>, Query(q): Query<LossesQuery>) -> Json<Value> {
    if let Some(ms) = q.wait_ms {
        let wait = Duration::from_millis(ms).min(MAX_WAIT);
        shared.feed.wait_after(q.after, wait).await;
    }
    let events = shared
        .feed
        .after(q.after, q.limit.unwrap_or(1000).clamp(1, 10_000));
    Json(json!({"newest": shared.feed.newest(), "events": events}))
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let s = shared.status();
    Json(json!({
        "open": s.open,
        "spans": s.spans,
        "evicted": s.evicted,
        "forgotten": s.forgotten,
        "judgings": s.judgings,
        "settled": s.settled,
        "newest_event": shared.feed.newest(),
        "alerts": {
            "sent": shared.alerts.sent(),
            "retried": shared.alerts.retried(),
            "failed": shared.alerts.failed(),
        },
    }))
}
