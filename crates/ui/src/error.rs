//! The UI routes' failures, shaped like the query API's:
//! `{"data":null,"errors":[{"code","msg"}]}`, so that a page can tell
//! "query failed" (this) from "no spans found" (an empty answer).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

/// A failed UI request: its status and a short lowercase reason.
#[derive(Debug)]
pub(crate) struct UiError(pub StatusCode, pub String);

impl UiError {
    /// The request itself is wrong (a bad parameter).
    pub fn bad_request(msg: impl Into<String>) -> UiError {
        UiError(StatusCode::BAD_REQUEST, msg.into())
    }

    /// Reading or judging the store failed.
    pub fn internal(e: impl std::fmt::Display) -> UiError {
        UiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        tracing::warn!(status = self.0.as_u16(), error = %self.1, "ui request failed");
        let body = json!({"data": null, "errors": [{"code": self.0.as_u16(), "msg": self.1}]});
        (self.0, Json(body)).into_response()
    }
}

/// Runs blocking store work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(UiError::internal)?
}

/// A time parameter: milliseconds since the epoch, as ns.
pub(crate) fn millis(name: &str, value: Option<&String>) -> Result<Option<u64>, UiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>()
                .map(|ms| ms.saturating_mul(1_000_000))
                .map_err(|_| {
                    UiError::bad_request(format!(
                        "{name} must be milliseconds since the epoch, got {v:?}"
                    ))
                })
        })
        .transpose()
}
