//! `lasthop collector`: binds the OTLP gRPC, OTLP HTTP and query API
//! listeners over one pipeline, and shuts them down in order: stop taking
//! requests, finish those in flight, then drain the pipeline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::observer::Plugins;
use crate::otlp::{self, grpc::OtlpGrpc};
use crate::pipeline::{OpenError, Pipeline, PipelineOptions};
use crate::stats::StatsSnapshot;

/// Where and how the collector runs.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub data_dir: PathBuf,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub api: SocketAddr,
    pub max_body_bytes: usize,
    pub pipeline: PipelineOptions,
    /// An observer of indexed spans, more API routes, more metrics.
    pub plugins: Plugins,
}

impl CollectorConfig {
    /// Defaults of DESIGN section 7, bound to loopback only.
    pub fn new(data_dir: PathBuf) -> Self {
        CollectorConfig {
            data_dir,
            otlp_grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http: SocketAddr::from(([127, 0, 0, 1], 4318)),
            api: SocketAddr::from(([127, 0, 0, 1], 16686)),
            max_body_bytes: otlp::DEFAULT_MAX_BODY_BYTES,
            pipeline: PipelineOptions::default(),
            plugins: Plugins::default(),
        }
    }

    /// Every listener on a free loopback port (tests, the embedded demo collector).
    pub fn ephemeral(data_dir: PathBuf) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        CollectorConfig {
            otlp_grpc: any,
            otlp_http: any,
            api: any,
            ..Self::new(data_dir)
        }
    }
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A listener address is taken or not allowed.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A collector that is serving.
#[derive(Debug)]
pub struct RunningCollector {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pipeline: Arc<Pipeline>,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Opens the data directory (replaying the WAL) and starts serving.
pub async fn start(config: CollectorConfig) -> Result<RunningCollector, StartError> {
    let grpc = bind("otlp grpc", config.otlp_grpc).await?;
    let http = bind("otlp http", config.otlp_http).await?;
    let api = bind("query api", config.api).await?;
    let local = |l: &TcpListener, what, addr| {
        l.local_addr()
            .map_err(|source| StartError::Bind { what, addr, source })
    };
    let (grpc_addr, http_addr, api_addr) = (
        local(&grpc, "otlp grpc", config.otlp_grpc)?,
        local(&http, "otlp http", config.otlp_http)?,
        local(&api, "query api", config.api)?,
    );
    let data_dir = config.data_dir.clone();
    let options = config.pipeline.clone();
    let observer = config.plugins.observer.clone();
    let pipeline =
        tokio::task::spawn_blocking(move || Pipeline::open_observed(&data_dir, options, observer))
            .await
            .expect("pipeline open task")?;
    let pipeline = Arc::new(pipeline);
    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let grpc_service = OtlpGrpc::service(pipeline.clone(), config.max_body_bytes);
    let grpc_stop = until_stopped();
    let grpc_task = tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
        let served = tonic::transport::Server::builder()
            .add_service(grpc_service)
            .serve_with_incoming_shutdown(incoming, grpc_stop)
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "otlp grpc server failed");
        }
    });
    let http_router = otlp::http::router(pipeline.clone(), config.max_body_bytes);
    let http_task = serve_axum("otlp http", http, http_router, until_stopped());
    let mut api_router =
        crate::api::router(pipeline.store().clone(), Some(pipeline.clone())).merge(
            crate::metrics::router(pipeline.clone(), &config.plugins.metrics),
        );
    for routes in &config.plugins.routes {
        api_router = api_router.merge(routes(pipeline.store()));
    }
    let api_task = serve_axum("query api", api, api_router, until_stopped());
    tracing::info!(%grpc_addr, %http_addr, %api_addr, data = %config.data_dir.display(), "collector listening");
    Ok(RunningCollector {
        grpc_addr,
        http_addr,
        api_addr,
        pipeline,
        stop,
        servers: vec![grpc_task, http_task, api_task],
    })
}

fn serve_axum(
    what: &'static str,
    listener: TcpListener,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, server = what, "server failed");
        }
    })
}

impl RunningCollector {
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Stops serving, finishes requests in flight, drains and commits the
    /// pipeline, and returns the final counters.
    pub async fn shutdown(self) -> StatsSnapshot {
        let _ = self.stop.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        let pipeline = self.pipeline;
        tokio::task::spawn_blocking(move || match Arc::try_unwrap(pipeline) {
            Ok(pipeline) => pipeline.shutdown(),
            // A request handler still holds it: dropping our handle drains it when that one ends.
            Err(shared) => shared.snapshot(),
        })
        .await
        .unwrap_or_default()
    }
}
