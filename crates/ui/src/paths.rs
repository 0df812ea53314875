//! `GET /api/ui/paths?msg_id=|key=|trace_id=`: the paths of the messages a
//! lookup finds, exactly as `lasthop query --format json` writes them (the
//! message page draws its waterfall from this).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Json;
use lasthop_analyzer::JudgedAt;
use lasthop_analyzer::path::{Lookup, paths, paths_json};
use lasthop_collector::SpanStore;
use serde_json::Value;

use crate::UiOptions;
use crate::error::{UiError, blocking};

/// What every UI route reads.
#[derive(Clone)]
pub(crate) struct UiState {
    pub store: SpanStore,
    pub options: UiOptions,
}

impl UiState {
    /// The analyzer's options judged at `at`.
    pub fn rules(&self, at: JudgedAt) -> lasthop_analyzer::Options {
        lasthop_analyzer::Options {
            grace_ns: self.options.grace_ns,
            now_ns: at.ns,
            groups: self.options.groups.clone(),
        }
    }
}

/// The lookup a request asks for, if any (`trace_id`, `msg_id` or `key`).
pub(crate) fn lookup(params: &HashMap<String, String>) -> Result<Option<Lookup>, UiError> {
    Lookup::from_params(|name| params.get(name).map(String::as_str)).map_err(UiError::bad_request)
}

pub(crate) async fn handler(
    State(state): State<UiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, UiError> {
    let lookup = lookup(&params)?
        .ok_or_else(|| UiError::bad_request("give one of msg_id, key or trace_id"))?;
    blocking(move || {
        let all = lookup.find(&state.store).map_err(UiError::internal)?;
        let newest = state.store.newest_start_ns().map_err(UiError::internal)?;
        let at = JudgedAt::resolve(None, newest, None);
        let found = paths(&all, &lookup, &state.rules(at));
        Ok(Json(paths_json(&found, at)))
    })
    .await
}
