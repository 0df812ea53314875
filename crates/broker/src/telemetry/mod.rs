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

mod otlp_encode;
mod otlp_export;

use otlp_export::OtlpExporter;
pub use otlp_export::{GRPC_EXPORT, Protocol, RawCodec};

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
        )
    }
}

/// The installed tracing pipeline; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    counters: Arc<Counters>,
    /// Whether spans are exported at all (no endpoint: they are only counted).
    exporting: bool,
}

/// Counts every ended span, then hands it on. Wrapping (rather than adding a
/// second processor) matters: the SDK clones a span for every processor but the last.
#[derive(Debug)]
struct CountEnded<P> {
    inner: P,
    counters: Arc<Counters>,
}

impl<P: SpanProcessor> SpanProcessor for CountEnded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }
    fn on_end(&self, span: SpanData) {
        self.counters.ended.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
struct CountExported<E> {
    inner: E,
    counters: Arc<Counters>,
}

impl<E: SpanExporter> SpanExporter for CountExported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = if result.is_ok() {
            &self.counters.exported
        } else {
            &self.counters.failed
        };
        counter.fetch_add(n, Ordering::Relaxed);
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
    init_with(default_service, otlp, Protocol::from_env(), default_log)
}

/// [`init`] with the transport given rather than read from the environment.
pub fn init_with(
    default_service: &str,
    otlp: Option<&str>,
    protocol: Protocol,
    default_log: &str,
) -> Result<Telemetry, String> {
    let counters = Arc::new(Counters::default());
    let endpoint = otlp
        .map(str::to_owned)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let Some(endpoint) = endpoint else {
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .map_err(|e| e.to_string())?;
        return Ok(Telemetry {
            provider: None,
            counters,
            exporting: false,
        });
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service.to_owned());
    let exporter = OtlpExporter::new(&endpoint, protocol)
        .map_err(|e| format!("cannot export spans to {endpoint}: {e}"))?;
    let batch = BatchSpanProcessor::builder(CountExported {
        inner: exporter,
        counters: counters.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(1 << 17)
            .with_max_export_batch_size(512)
            .with_scheduled_delay(Duration::from_millis(200))
            .build(),
    )
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(CountEnded {
            inner: batch,
            counters: counters.clone(),
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
    })
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
        self.report()
    }
}
