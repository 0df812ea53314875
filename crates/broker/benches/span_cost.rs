//! What one span costs through lasthop's tracing pipeline: `tracing`,
//! tracing-opentelemetry, the OpenTelemetry SDK's batch processor, lasthop's
//! OTLP encoding and an OTLP/HTTP export to a sink on loopback that keeps
//! nothing. One thread creates spans in a loop; the figures are wall time of
//! that loop and CPU time of the whole process (the batch thread's encoding
//! and export included) per span, after the final flush. With `--spool`,
//! every span is also written to a crash-safe span spool (in a temporary
//! directory) before it is exported.
//!
//! With `--floor`, no span is recorded or exported at all: the subscriber is
//! `tracing-subscriber`'s registry with one layer that reads every field of a
//! new span and throws it away. That is the least any recorder behind the
//! `tracing` API pays per span, whatever it does with the fields after.
//!
//! With `--recorder`, spans go through a prototype recorder of lasthop's own
//! (`recorder/mod.rs`) instead of tracing-opentelemetry and the SDK's tracer,
//! to the same batch processor, encoder and sink.
//!
//! ```text
//! cargo bench -p lasthop-broker --bench span_cost -- [--spans N] [--spool | --floor | --recorder]
//! ```

use std::time::Instant;

use lasthop_broker::trace_context;
use lasthop_telemetry::int;
use lasthop_vocab::attr;

mod common;
mod recorder;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Creates, enters and ends one span: index, message id, properties, keys.
type MakeSpan = fn(u64, &str, &[(String, String)], &[String]);

/// The consumer's `process` span, as `client::consumer` creates it.
fn process_span(i: u64, msg_id: &str) -> tracing::Span {
    tracing::info_span!(
        target: "lasthop_broker::client",
        "consume",
        "otel.name" = "order_paid process",
        "otel.kind" = "consumer",
        "otel.status_code" = tracing::field::Empty,
        { attr::HOP } = "process",
        { attr::MESSAGING_SYSTEM } = "rocketmq",
        { attr::MESSAGING_OPERATION_TYPE } = "process",
        { attr::MESSAGING_MESSAGE_ID } = msg_id,
        { attr::MESSAGING_DESTINATION_NAME } = "order_paid",
        { attr::MESSAGING_DESTINATION_PARTITION_ID } = int(i % 4),
        { attr::MESSAGING_CONSUMER_GROUP_NAME } = "bench",
        { attr::QUEUE_OFFSET } = int(i),
        { attr::COMMITLOG_OFFSET } = int(i * 1100),
        { attr::RECONSUME_COUNT } = 0i64,
        { attr::ERROR_TYPE } = tracing::field::Empty,
    )
}

fn main() {
    let mut spans = 200_000u64;
    let mut spool = false;
    let mut floor = false;
    let mut prototype = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--spans" => spans = args.next().and_then(|v| v.parse().ok()).expect("--spans N"),
            "--spool" => spool = true,
            "--floor" => floor = true,
            "--recorder" => prototype = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let runtime = common::runtime();
    runtime.block_on(async {
        let spool_dir = tempfile::tempdir().unwrap();
        let spool = spool.then(|| spool_dir.path());
        let mut recorder = None;
        let telemetry = if floor {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry().with(ReadFields);
            tracing::subscriber::set_global_default(subscriber).unwrap();
            None
        } else if prototype {
            recorder = Some(install_recorder().await);
            None
        } else {
            Some(common::traced_spooled("lasthop-span-cost", spool).await)
        };
        let properties = vec![(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )];
        let keys = vec!["ORDER_1_2".to_owned()];
        let msg_id = "7F00000100002A9F0000000000001F40".to_owned();
        let kinds: [(&str, MakeSpan); 3] = [
            ("one attribute", |i, _, _, _| {
                let span = tracing::info_span!(target: "lasthop_broker::client", "consume", { attr::HOP } = "process");
                span.in_scope(|| std::hint::black_box(i));
            }),
            ("process span, 12 attributes", |i, id, _, _| {
                process_span(i, id).in_scope(|| std::hint::black_box(i));
            }),
            ("process span joined to its trace, with keys", |i, id, props, keys| {
                let span = process_span(i, id);
                trace_context::join(&span, props);
                trace_context::set_keys(&span, keys);
                span.in_scope(|| std::hint::black_box(i));
            }),
        ];
        for (label, make) in kinds {
            let (properties, keys, msg_id) = (properties.clone(), keys.clone(), msg_id.clone());
            let cpu_before = common::cpu_time();
            let start = Instant::now();
            let loop_time = tokio::task::spawn_blocking(move || {
                for i in 0..spans {
                    make(i, &msg_id, &properties, &keys);
                }
                start.elapsed()
            })
            .await
            .unwrap();
            if let Some(telemetry) = &telemetry {
                tokio::task::block_in_place(|| telemetry.flush());
            }
            if let Some(recorder) = &recorder {
                tokio::task::block_in_place(|| recorder.flush());
            }
            let cpu = common::cpu_time().zip(cpu_before).map(|(after, before)| after - before);
            println!(
                "{label:<46} {:>6.0} ns/span in the loop, {} ns/span of CPU in all ({})",
                loop_time.as_nanos() as f64 / spans as f64,
                cpu.map_or("?".to_owned(), |c| format!("{:.0}", c.as_nanos() as f64 / spans as f64)),
                if floor {
                    "fields read, nothing recorded"
                } else {
                    "export included"
                },
            );
        }
        if let Some(recorder) = recorder {
            let exported = recorder.exported.load(std::sync::atomic::Ordering::Relaxed);
            println!("spans: {} ended, {exported} exported", 3 * spans);
            assert_eq!(exported, 3 * spans, "no span dropped");
        }
        if let Some(telemetry) = telemetry {
            let report = tokio::task::spawn_blocking(move || telemetry.shutdown())
                .await
                .unwrap();
            println!("{report}");
            assert_eq!(report.dropped + report.failed, 0, "no span dropped");
        }
    });
}

/// `--recorder`: the prototype recorder, exporting to a sink.
async fn install_recorder() -> recorder::Recorder {
    use tracing_subscriber::layer::SubscriberExt;
    let sink = common::sink().await;
    let recorder =
        recorder::Recorder::start(format!("http://{sink}/v1/traces"), "lasthop-span-cost");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .unwrap();
    recorder
}

/// `--floor`: visits every field of every new span and of every later
/// `record`, keeps nothing.
struct ReadFields;

struct Discard;

impl tracing::field::Visit for Discard {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        std::hint::black_box((field, value));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        std::hint::black_box((field, value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        std::hint::black_box((field, value));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ReadFields {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        attrs.record(&mut Discard);
    }
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        values.record(&mut Discard);
    }
}
