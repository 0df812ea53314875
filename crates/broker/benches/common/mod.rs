//! What the broker benchmarks share.

/// An OTLP/HTTP endpoint that takes every request and keeps nothing.
pub async fn sink() -> std::net::SocketAddr {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/traces",
        post(|_body: axum::body::Bytes| async {
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
