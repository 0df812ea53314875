//! Tracing for lasthop's own processes: `tracing` spans become OpenTelemetry
//! spans (tracing-opentelemetry) exported over OTLP to `--otlp URL` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, named by `OTEL_SERVICE_NAME` when set; gRPC
//! unless `OTEL_EXPORTER_OTLP_PROTOCOL` is `http/protobuf`.
//!
//! Spans are encoded to OTLP by lasthop itself (`otlp_encode`: the SDK's own
//! conversion cost as much CPU as creating the span) and sent by
//! `otlp_export`.
//!
//! Nothing is dropped silently: every span that ends is counted, every span
//! the exporter delivers or fails to deliver is counted, and the difference
//! after the final flush is reported as dropped. The batch queue is sized so
//! that the benchmark load does not overflow it.
//!
//! With a span spool (`spool`, opt-in), every ended span is also written to a
//! file until its export was attempted, so a killed process does not take its
//! last spans along: the next process on the same spool sends them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub mod metrics;
mod otlp_encode;
mod otlp_export;
mod spool;

pub use otlp_encode::encode_request;
use otlp_export::OtlpExporter;
pub use otlp_export::{GRPC_EXPORT, Protocol, RawCodec};
use spool::Spool;

/// An unsigned number as the `i64` an OpenTelemetry integer attribute holds.
/// tracing-opentelemetry records `u64` (and so `u32`) fields through `Debug`,
/// as strings, at a formatting and an allocation each; `i64` stays an integer.
pub fn int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

#[derive(Debug, Default)]
struct Counters {
    ended: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    replayed: AtomicU64,
    unspooled: AtomicU64,
}

/// What happened to this process's spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanReport {
    pub ended: u64,
    pub exported: u64,
    /// Spans the exporter tried and failed to deliver.
    pub failed: u64,
    /// Spans that never reached the exporter (batch queue overflow).
    pub dropped: u64,
    /// Whether an OTLP endpoint was configured (without one no span is made).
    pub exporting: bool,
    /// Spans a previous process left in the span spool, sent by this one.
    pub replayed: u64,
    /// Spans the span spool could not keep (they were still exported).
    pub unspooled: u64,
}

impl std::fmt::Display for SpanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.exporting {
            return write!(
                f,
                "spans: not traced (no --otlp endpoint and no OTEL_EXPORTER_OTLP_ENDPOINT)"
            );
        }
        write!(
            f,
            "spans: {} ended, {} exported, {} failed, {} dropped",
            self.ended, self.exported, self.failed, self.dropped
        )?;
        if self.replayed > 0 {
            write!(f, ", {} replayed from the span spool", self.replayed)?;
        }
        if self.unspooled > 0 {
            write!(f, ", {} not kept in the span spool", self.unspooled)?;
        }
        Ok(())
    }
}

/// The installed tracing pipeline; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    counters: Arc<Counters>,
    /// Whether spans are exported at all (no endpoint: they are only counted).
    exporting: bool,
    spool: Option<Arc<Spool>>,
    /// Sends what a previous process left in the spool.
    replay: Option<std::thread::JoinHandle<()>>,
}

/// Counts every ended span, then hands it on. Wrapping (rather than adding a
/// second processor) matters: the SDK clones a span for every processor but the last.
#[derive(Debug)]
struct CountEnded<P> {
    inner: P,
    counters: Arc<Counters>,
    spool: Option<Arc<Spool>>,
}

impl<P: SpanProcessor> SpanProcessor for CountEnded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }
    fn on_end(&self, span: SpanData) {
        self.counters.ended.fetch_add(1, Ordering::Relaxed);
        let Some(spool) = &self.spool else {
            self.inner.on_end(span);
            return;
        };
        if let Err(e) = spool.append(span, |span| self.inner.on_end(span))
            && self.counters.unspooled.fetch_add(1, Ordering::Relaxed) == 0
        {
            // Not through `tracing`: this runs while a span closes.
            eprintln!(
                "lasthop: cannot write spans to the span spool ({e}); they are exported but not kept"
            );
        }
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        if let Some(spool) = &self.spool {
            spool.set_resource(resource);
        }
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
struct CountExported<E> {
    inner: E,
    counters: Arc<Counters>,
    spool: Option<Arc<Spool>>,
}

impl<E: SpanExporter> SpanExporter for CountExported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let last = batch.last().map(spool::key_of);
        let result = self.inner.export(batch).await;
        let counter = if result.is_ok() {
            &self.counters.exported
        } else {
            &self.counters.failed
        };
        counter.fetch_add(n, Ordering::Relaxed);
        if let (Some(spool), Some(last)) = (&self.spool, last)
            && let Err(e) = spool.exported(n, &last)
        {
            eprintln!("lasthop: cannot note exported spans in the span spool: {e}");
        }
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Installs logging (stderr, `RUST_LOG` or `default_log`) and, when an OTLP
/// endpoint is given or set in the environment, span export. Must run inside
/// a tokio runtime (the gRPC exporter lives on it).
pub fn init(
    default_service: &str,
    otlp: Option<&str>,
    default_log: &str,
) -> Result<Telemetry, String> {
    init_spooled(default_service, otlp, default_log, None)
}

/// [`init`], keeping every ended span in the crash-safe span spool in
/// `spool` (when given) until it is exported; first sends what a previous
/// process left there.
pub fn init_spooled(
    default_service: &str,
    otlp: Option<&str>,
    default_log: &str,
    spool: Option<&Path>,
) -> Result<Telemetry, String> {
    init_with(
        default_service,
        otlp,
        Protocol::from_env(),
        default_log,
        spool,
    )
}

/// [`init_spooled`] with the transport given rather than read from the environment.
pub fn init_with(
    default_service: &str,
    otlp: Option<&str>,
    protocol: Protocol,
    default_log: &str,
    spool_dir: Option<&Path>,
) -> Result<Telemetry, String> {
    let counters = Arc::new(Counters::default());
    // "none" (the flag's or the variable's): no export, as `--help` says.
    let endpoint = otlp
        .map(str::to_owned)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.trim().eq_ignore_ascii_case("none"));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let Some(endpoint) = endpoint else {
        if let Some(dir) = spool_dir {
            return Err(format!(
                "the span spool {} needs an OTLP endpoint (--otlp or OTEL_EXPORTER_OTLP_ENDPOINT)",
                dir.display()
            ));
        }
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .map_err(|e| e.to_string())?;
        return Ok(Telemetry {
            provider: None,
            counters,
            exporting: false,
            spool: None,
            replay: None,
        });
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service.to_owned());
    let exporter = OtlpExporter::new(&endpoint, protocol)
        .map_err(|e| format!("cannot export spans to {endpoint}: {e}"))?;
    let (spool, replay) = match spool_dir {
        None => (None, None),
        Some(dir) => {
            let (spool, files) = Spool::open(dir)
                .map_err(|e| format!("cannot open the span spool {}: {e}", dir.display()))?;
            let replay = (!files.is_empty())
                .then(|| start_replay(exporter.clone(), files, counters.clone()))
                .transpose()?;
            (Some(Arc::new(spool)), replay)
        }
    };
    let batch = BatchSpanProcessor::builder(CountExported {
        inner: exporter,
        counters: counters.clone(),
        spool: spool.clone(),
    })
    .with_batch_config({
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(1 << 17)
            .with_max_export_batch_size(512);
        // 200 ms unless OTEL_BSP_SCHEDULE_DELAY says otherwise (read by the SDK).
        if std::env::var_os("OTEL_BSP_SCHEDULE_DELAY").is_some() {
            config.build()
        } else {
            config
                .with_scheduled_delay(Duration::from_millis(200))
                .build()
        }
    })
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(CountEnded {
            inner: batch,
            counters: counters.clone(),
            spool: spool.clone(),
        })
        .with_resource(
            Resource::builder()
                .with_service_name(service.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("lasthop");
    // Only the attributes lasthop's spans set: no source location, thread,
    // target or busy/idle time (eight more attributes and two clock reads a
    // span that nobody reads, a measurable share of a message's cost).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        // Parents are set and read through the span (`trace_context`), never
        // through OpenTelemetry's current context: no context switch per enter.
        .with_context_activation(false)
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target("lasthop", tracing::Level::INFO),
        );
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(Telemetry {
        provider: Some(provider),
        counters,
        exporting: true,
        spool,
        replay,
    })
}

/// Largest request body a replay sends.
const REPLAY_BODY: usize = 4 << 20;

/// Sends the spool's replay files on a thread of their own, deleting each once
/// sent; a file that cannot be sent (after a few tries) stays for the next start.
fn start_replay(
    exporter: OtlpExporter,
    files: Vec<PathBuf>,
    counters: Arc<Counters>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "the span spool must be opened inside a tokio runtime".to_owned())?;
    let replay = move || {
        for file in files {
            let bodies = match spool::replay_bodies(&file, REPLAY_BODY) {
                Ok(bodies) => bodies,
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "cannot read spooled spans");
                    continue;
                }
            };
            let sent = bodies.into_iter().all(|(body, n)| {
                let mut tries = 0;
                loop {
                    match exporter.send_body(body.clone(), &runtime) {
                        Ok(()) => {
                            counters.replayed.fetch_add(n, Ordering::Relaxed);
                            return true;
                        }
                        Err(e) => {
                            tries += 1;
                            if tries == 3 {
                                tracing::warn!(file = %file.display(), error = %e, "cannot send spooled spans; kept for the next start");
                                return false;
                            }
                            std::thread::sleep(Duration::from_millis(250 << tries));
                        }
                    }
                }
            });
            if sent && let Err(e) = std::fs::remove_file(&file) {
                tracing::warn!(file = %file.display(), error = %e, "cannot remove sent spooled spans");
            }
        }
    };
    std::thread::Builder::new()
        .name("lasthop-spool-replay".into())
        .spawn(replay)
        .map_err(|e| format!("cannot start the span spool's replay: {e}"))
}

impl Telemetry {
    /// Counts so far (before the final flush, `dropped` may include spans still queued).
    pub fn report(&self) -> SpanReport {
        let ended = self.counters.ended.load(Ordering::Relaxed);
        let exported = self.counters.exported.load(Ordering::Relaxed);
        let failed = self.counters.failed.load(Ordering::Relaxed);
        let dropped = if self.exporting {
            ended.saturating_sub(exported + failed)
        } else {
            0
        };
        SpanReport {
            ended,
            exported,
            failed,
            dropped,
            exporting: self.exporting,
            replayed: self.counters.replayed.load(Ordering::Relaxed),
            unspooled: self.counters.unspooled.load(Ordering::Relaxed),
        }
    }

    /// Exports every span ended so far (the process goes on).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }

    /// Exports every pending span, stops the exporter and returns the final counts.
    pub fn shutdown(mut self) -> SpanReport {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
        if let Some(replay) = self.replay.take() {
            let _ = replay.join();
        }
        let report = self.report();
        // Every span's export was attempted: the spool has nothing left to keep.
        if let Some(spool) = &self.spool
            && report.dropped == 0
            && let Err(e) = spool.close()
        {
            tracing::warn!(error = %e, "cannot clear the span spool");
        }
        report
    }
}
