//! The page and its assets, embedded in the binary: `assets/index.html`
//! for every page path (the app routes in the browser, so deep links such
//! as `/message/{id}` or `/search?key=...` can be pasted into a chat),
//! `/ui/app.js`, `/ui/app.css` and the icon. Nothing is fetched from elsewhere.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON: &str = include_str!("../assets/favicon.svg");

/// Paths the app draws a page for.
pub(crate) const PAGES: [&str; 5] = ["/", "/search", "/message/{id}", "/report", "/health"];

/// Pages and assets.
pub(crate) fn router() -> Router {
    let mut router = Router::new()
        .route(
            "/ui/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/ui/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/favicon.ico", get(|| asset(FAVICON, "image/svg+xml")))
        .route("/ui/favicon.svg", get(|| asset(FAVICON, "image/svg+xml")));
    for page in PAGES {
        router = router.route(page, get(|| asset(INDEX, "text/html; charset=utf-8")));
    }
    router
}

async fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // The page runs its own script only; nothing inline, nothing from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}
