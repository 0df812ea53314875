//! lasthop's web UI, served on the collector's API address by `lasthop
//! collector` and on its own by `lasthop ui --data DIR`.
//!
//! The pages are one plain-JavaScript app embedded in the binary
//! ([`assets`]; no CDN, works offline) that reads the JSON routes below.
//! Every figure they show is the analyzer's: the message page is
//! [`lasthop_analyzer::path`] (what `lasthop query` prints), the report page
//! is [`lasthop_analyzer::judge_window`] (what `lasthop report` prints).
//!
//! - `GET /api/ui/meta`: the verdict and hop names (for the search form).
//! - `GET /api/ui/search?key=|msg_id=|trace_id=&topic=&group=&verdict=&since=&until=&limit=`
//!   ([`search`]).
//! - `GET /api/ui/paths?msg_id=|key=|trace_id=`: the paths of `query --format json`.
//! - `GET /api/ui/report?since=&until=`: the report of `report --format json`.
//!
//! Times are milliseconds since the epoch.

mod assets;
mod error;
mod paths;
mod report;
pub mod search;

use axum::Router;
use axum::response::Json;
use axum::routing::get;
use lasthop_analyzer::Verdict;
use lasthop_collector::{Plugins, SpanStore};
use lasthop_vocab::Hop;
use serde_json::{Value, json};

/// How the UI judges.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// Silence shorter than this is not yet loss (as `--grace`).
    pub grace_ns: u64,
    /// Groups expected to consume every topic (as `--group`).
    pub groups: Vec<String>,
}

impl Default for UiOptions {
    fn default() -> Self {
        UiOptions {
            grace_ns: 30_000_000_000,
            groups: Vec::new(),
        }
    }
}

/// The UI's pages, assets and JSON routes over `store`.
pub fn router(store: SpanStore, options: UiOptions) -> Router {
    let state = paths::UiState { store, options };
    Router::new()
        .route("/api/ui/meta", get(meta))
        .route("/api/ui/search", get(search::handler))
        .route("/api/ui/paths", get(paths::handler))
        .route("/api/ui/report", get(report::handler))
        .with_state(state)
        .merge(assets::router())
}

/// `plugins` with the UI's routes added (for `lasthop collector`).
pub fn with_ui(plugins: Plugins, options: UiOptions) -> Plugins {
    plugins.with_routes(move |store| router(store.clone(), options.clone()))
}

async fn meta() -> Json<Value> {
    Json(json!({
        "verdicts": Verdict::ALL.iter().map(|v| json!({"name": v.as_str(), "lost": v.is_lost()})).collect::<Vec<_>>(),
        "hops": Hop::ALL.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
    }))
}
