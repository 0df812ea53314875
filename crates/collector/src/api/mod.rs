//! The query API on `--api` (default 127.0.0.1:16686).
//!
//! Jaeger's HTTP query API shape: `GET /api/traces/{trace_id}`,
//! `GET /api/services`, `GET /api/services/{service}/operations`,
//! `GET /api/traces?service=&operation=&tags=&start=&end=&limit=`.
//! lasthop's own: `GET /api/spans?trace_id=|msg_id=|key=[&context=true]` (span
//! records as stored; with context, also the spans an analysis of them needs;
//! or `?start_ns=&end_ns=&limit=` for a time window),
//! `GET /api/messages?key=|msg_id=` (spans grouped per message),
//! `GET /api/stats` (the collector's counters).

pub mod jaeger;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use lasthop_vocab::SpanRecord;
use serde_json::{Value, json};

use crate::pipeline::Pipeline;
use crate::store::{SpanQuery, SpanStore, StoreError};

#[derive(Clone)]
struct ApiState {
    store: SpanStore,
    pipeline: Option<Arc<Pipeline>>,
}

/// The API router over a store; `pipeline` adds live counters to `/api/stats`.
pub fn router(store: SpanStore, pipeline: Option<Arc<Pipeline>>) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/spans", get(spans))
        .route("/api/messages", get(messages))
        .route("/api/stats", get(stats))
        .with_state(ApiState { store, pipeline })
}

type ApiResult = Result<Json<Value>, ApiError>;

/// An API failure, as Jaeger shapes it: `{"data":null,"errors":[{code,msg}]}`.
struct ApiError(StatusCode, String);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"data": null, "errors": [{"code": self.0.as_u16(), "msg": self.1}]});
        (self.0, Json(body)).into_response()
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Runs a blocking store call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

fn listing(items: Vec<String>) -> Json<Value> {
    Json(json!({"data": items, "total": items.len(), "limit": 0, "offset": 0, "errors": null}))
}

async fn services(State(s): State<ApiState>) -> ApiResult {
    Ok(listing(blocking(move || s.store.services()).await?))
}

async fn operations(State(s): State<ApiState>, Path(service): Path<String>) -> ApiResult {
    Ok(listing(
        blocking(move || s.store.operations(&service)).await?,
    ))
}

fn traces_body(records: &[SpanRecord]) -> Json<Value> {
    let traces = jaeger::traces(records);
    Json(json!({"data": traces, "total": traces.len(), "limit": 0, "offset": 0, "errors": null}))
}

async fn trace(State(s): State<ApiState>, Path(trace_id): Path<String>) -> ApiResult {
    if !is_hex(&trace_id, 32) {
        return Err(bad_request(format!(
            "trace id {trace_id:?} is not 32 hex digits"
        )));
    }
    let records = blocking(move || s.store.by_trace_id(&trace_id)).await?;
    if records.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, "trace not found".into()));
    }
    Ok(traces_body(&records))
}

async fn search(
    State(s): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let micros = |name: &str| -> Result<Option<u64>, ApiError> {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<u64>().map(|us| us.saturating_mul(1000)))
            .transpose()
            .map_err(|_| bad_request(format!("{name} must be microseconds since the epoch")))
    };
    let duration = |name: &str| -> Result<Option<u64>, ApiError> {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                jaeger::parse_duration_ns(v).ok_or_else(|| {
                    bad_request(format!("{name} {v:?} is not a duration such as 100ms"))
                })
            })
            .transpose()
    };
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| bad_request("limit must be a number"))?,
        None => 20,
    }
    .clamp(1, 1500);
    let tags: Vec<(String, String)> = match params.get("tags").filter(|v| !v.is_empty()) {
        Some(text) => serde_json::from_str::<BTreeMap<String, String>>(text)
            .map_err(|e| bad_request(format!("tags must be a JSON object of strings: {e}")))?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let query = SpanQuery {
        service: params.get("service").filter(|v| !v.is_empty()).cloned(),
        operation: params.get("operation").filter(|v| !v.is_empty()).cloned(),
        tags,
        start_ns: micros("start")?,
        end_ns: micros("end")?,
        limit: limit * 50,
    };
    let (min, max) = (duration("minDuration")?, duration("maxDuration")?);
    let records = blocking(move || {
        let hits = s.store.find(&query)?;
        let mut trace_ids: Vec<String> = Vec::new();
        for r in hits {
            let d = r.duration_ns();
            if min.is_some_and(|m| d < m)
                || max.is_some_and(|m| d > m)
                || trace_ids.contains(&r.trace_id)
            {
                continue;
            }
            trace_ids.push(r.trace_id);
            if trace_ids.len() == limit {
                break;
            }
        }
        let mut all = Vec::new();
        for id in trace_ids {
            all.extend(s.store.by_trace_id(&id)?);
        }
        Ok(all)
    })
    .await?;
    Ok(traces_body(&records))
}

/// Which lookup a `/api/spans` or `/api/messages` request asks for.
fn lookup(params: &HashMap<String, String>) -> Result<(&'static str, String), ApiError> {
    for name in ["trace_id", "msg_id", "key"] {
        if let Some(v) = params.get(name).filter(|v| !v.is_empty()) {
            return Ok((name, v.clone()));
        }
    }
    Err(bad_request("give one of trace_id, msg_id or key"))
}

async fn find_spans(
    store: SpanStore,
    params: &HashMap<String, String>,
) -> Result<Vec<SpanRecord>, ApiError> {
    let (kind, value) = lookup(params)?;
    let context = params
        .get("context")
        .is_some_and(|v| v == "true" || v == "1");
    blocking(move || {
        let found = match kind {
            "trace_id" => store.by_trace_id(&value),
            "msg_id" => store.by_message_id(&value),
            _ => store.by_key(&value),
        }?;
        if context {
            store.with_context(found)
        } else {
            Ok(found)
        }
    })
    .await
}

async fn spans(
    State(s): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    // A time window (`start_ns`, `end_ns`, `limit`) instead of a lookup: for reports.
    if params.contains_key("start_ns") || params.contains_key("end_ns") {
        let number = |name: &str, default: u64| -> Result<u64, ApiError> {
            params.get(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| bad_request(format!("{name} must be a number")))
            })
        };
        let (start, end) = (number("start_ns", 0)?, number("end_ns", u64::MAX)?);
        let limit = number("limit", 1_000_000)? as usize;
        let store = s.store.clone();
        let records = blocking(move || store.by_time_range(start, end, limit)).await?;
        return Ok(Json(json!({"spans": records})));
    }
    let records = find_spans(s.store, &params).await?;
    Ok(Json(json!({"spans": records})))
}

async fn messages(
    State(s): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let records = find_spans(s.store, &params).await?;
    Ok(Json(
        json!({"messages": crate::messages::group_by_message(&records)}),
    ))
}

async fn stats(State(s): State<ApiState>) -> ApiResult {
    let stored = s.store.count();
    let live = s.pipeline.as_ref().map(|p| p.snapshot());
    Ok(Json(json!({"stored_spans": stored, "collector": live})))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}
