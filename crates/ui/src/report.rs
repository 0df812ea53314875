//! `GET /api/ui/report?since=&until=`: the loss report of a window, the
//! same judging as `lasthop report --since --until --format json`
//! ([`judge_window`], judged as of the newest span, the timeline's buckets
//! sized to the window when it has both ends).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Json;
use lasthop_analyzer::report::{Report, Window, rfc3339_ms};
use lasthop_analyzer::{JudgeOptions, JudgedAt, judge_window};

use crate::error::{UiError, blocking, millis};
use crate::paths::UiState;

pub(crate) async fn handler(
    State(state): State<UiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Report>, UiError> {
    let since = millis("since", params.get("since"))?;
    let until = millis("until", params.get("until"))?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(UiError::bad_request("since must be before until"));
    }
    blocking(move || {
        let store = state.store.pinned();
        let newest = store.newest_start_ns().map_err(UiError::internal)?;
        let at = JudgedAt::resolve(None, newest, until);
        let options = JudgeOptions {
            rules: state.rules(at),
            ..JudgeOptions::default()
        };
        let window = (since.unwrap_or(0), until.unwrap_or(u64::MAX));
        let builder = judge_window(&store, window, &options, &|_| {}).map_err(UiError::internal)?;
        let shown = Window::new(since.map(rfc3339_ms), until.map(rfc3339_ms), at);
        Ok(Json(builder.finish_over(shown, since.zip(until))))
    })
    .await
}
