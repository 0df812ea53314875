//! Collector throughput and lookup latency (DESIGN section 9).
//!
//! ```text
//! cargo bench -p lasthop-collector --bench collector -- [--spans N] [--rounds R] [--lookup-only] [--clients C] [--keep-data DIR] [--fail-every N]
//! ```
//!
//! 1. Reference: bare tantivy indexing of the same span records (documents
//!    built by the same schema code, one commit at the end).
//! 2. Collector: concurrent OTLP/gRPC clients send the same spans to a running
//!    collector; the clock stops when every span is durable and searchable.
//!
//!    Steps 1 and 2 run `--rounds` times (default 3), in turn, and the median
//!    ratio is reported: this VM's speed drifts by up to 2x within minutes.
//! 3. Lookups: p50/p99 of by-trace-id, by-key and by-message-id lookups on the
//!    last round's store.
//!
//! With `--lookup-only` the reference run is skipped and requests are
//! generated while sending (for sizes that do not fit in memory twice).
//!
//! With `--live`, each round runs the collector twice instead, without and
//! with the analyzer's live judge (`lasthop collector`'s default), and the
//! median ratio with / without is reported (DESIGN section 9: >= 0.9).
//! `--live-null` hands the spans to an observer that drops them instead
//! (what the seam alone costs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lasthop_analyzer::live::{LiveJudge, LiveOptions};
use lasthop_collector::normalize::normalize_request;
use lasthop_collector::otlp::proto::decode_request;
use lasthop_collector::store::SpanSchema;
use lasthop_collector::{CollectorConfig, Plugins, SpanStore, server};
use lasthop_telemetry::{GRPC_EXPORT, RawCodec};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status as SpanStatus,
};

/// The same allocator as the `lasthop` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Spans per export request (the SDKs' default batch is 512).
const BATCH_SPANS: usize = 512;
/// Each message leaves these hops, one span each.
const HOPS: [&str; 4] = ["send", "store", "receive", "process"];

struct Args {
    spans: usize,
    lookup_only: bool,
    clients: usize,
    /// Leave the collector's data here (for `lasthop report --data DIR`).
    keep_data: Option<std::path::PathBuf>,
    /// Reference-then-collector pairs to run; the median ratio is the figure.
    rounds: usize,
    /// Compare the collector with live judging against without.
    live: bool,
}

/// With `--live-null`, the "live" runs hand their spans to an observer
/// that drops them: what the seam alone costs.
static NULL_OBSERVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct Drops;

impl lasthop_collector::SpanObserver for Drops {
    fn indexed(&self, records: Vec<lasthop_vocab::SpanRecord>) {
        drop(records);
    }
}

/// With `--fail-every N`, every N-th message's `process` span is an error
/// (a history with losses to judge; 0: none).
static FAIL_EVERY: AtomicU64 = AtomicU64::new(0);

fn args() -> Args {
    let mut a = Args {
        spans: 1_000_000,
        lookup_only: false,
        clients: 4,
        keep_data: None,
        rounds: 3,
        live: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--spans" => a.spans = it.next().and_then(|v| v.parse().ok()).expect("--spans N"),
            "--clients" => a.clients = it.next().and_then(|v| v.parse().ok()).expect("--clients N"),
            "--lookup-only" => a.lookup_only = true,
            "--live" => a.live = true,
            "--live-null" => {
                a.live = true;
                NULL_OBSERVER.store(true, Ordering::Relaxed);
            }
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--keep-data" => a.keep_data = it.next().map(Into::into),
            "--fail-every" => FAIL_EVERY.store(
                it.next()
                    .and_then(|v| v.parse().ok())
                    .expect("--fail-every N"),
                Ordering::Relaxed,
            ),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn s(v: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v)),
    })
}
fn i(v: i64) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::IntValue(v)),
    })
}
fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..Default::default()
    }
}

fn trace_id(message: u64) -> Vec<u8> {
    let mut id = 0x6c61_7374_686f_7000u64.to_be_bytes().to_vec();
    id.extend_from_slice(&message.to_be_bytes());
    id
}

/// Request `n` of the workload: spans `n*BATCH_SPANS ..` of the message hops.
fn request(n: usize, total_spans: usize) -> ExportTraceServiceRequest {
    let first = n * BATCH_SPANS;
    let last = (first + BATCH_SPANS).min(total_spans);
    let base_ns = 1_763_700_000_000_000_000u64;
    let spans = (first..last)
        .map(|k| {
            let message = (k / HOPS.len()) as u64;
            let hop = HOPS[k % HOPS.len()];
            let start = base_ns + message * 1_000_000 + (k % HOPS.len()) as u64 * 1000;
            let mut attributes = vec![
                kv("lasthop.hop", s(hop.into())),
                kv("messaging.system", s("rocketmq".into())),
                kv("messaging.destination.name", s("order_paid".into())),
                kv("messaging.message.id", s(format!("MSG{message:012}"))),
                kv(
                    "messaging.rocketmq.message.keys",
                    Some(AnyValue {
                        value: Some(any_value::Value::ArrayValue(ArrayValue {
                            values: vec![s(format!("ORDER_{message}")).unwrap()],
                        })),
                    }),
                ),
                kv("lasthop.broker", s("broker-a".into())),
                kv("lasthop.broker.epoch", i(3)),
                kv("lasthop.commitlog.offset", i(message as i64 * 320)),
                kv("lasthop.queue.offset", i(message as i64 / 4)),
                kv(
                    "messaging.destination.partition.id",
                    s(format!("{}", message % 4)),
                ),
            ];
            if hop == "receive" || hop == "process" {
                attributes.push(kv("messaging.consumer.group.name", s("red-packet".into())));
            }
            let fail_every = FAIL_EVERY.load(Ordering::Relaxed);
            let failed = hop == "process" && fail_every > 0 && message.is_multiple_of(fail_every);
            if failed {
                attributes.push(kv("error.type", s("RedPacketServiceTimeout".into())));
            }
            Span {
                status: failed.then(|| SpanStatus {
                    code: 2,
                    message: "red packet service timed out".into(),
                }),
                trace_id: trace_id(message),
                span_id: (k as u64 + 1).to_be_bytes().to_vec(),
                name: format!("order_paid {hop}"),
                kind: if hop == "send" { 4 } else { 5 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + 250_000,
                attributes,
                ..Default::default()
            }
        })
        .collect();
    let service = if n.is_multiple_of(2) {
        "order-service"
    } else {
        "red-packet-service"
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service.into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn requests_needed(spans: usize) -> usize {
    spans.div_ceil(BATCH_SPANS)
}

/// Bare tantivy: the same records, the same schema and writer settings, one commit.
fn reference(requests: &[ExportTraceServiceRequest]) -> Duration {
    let records: Vec<_> = requests
        .iter()
        .flat_map(|r| normalize_request(r.clone()).records)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let schema = SpanSchema::new();
    let index = tantivy::Index::create_in_dir(dir.path(), schema.schema.clone()).unwrap();
    let defaults = lasthop_collector::PipelineOptions::default();
    let mut writer: tantivy::IndexWriter = index
        .writer_with_num_threads(defaults.index_threads, defaults.writer_memory_bytes)
        .unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    for r in &records {
        buf.clear();
        buf = postcard::to_extend(r, buf).unwrap();
        writer.add_document(schema.document(r, &buf)).unwrap();
    }
    writer.commit().unwrap();
    start.elapsed()
}

/// Single-threaded cost of each stage a span passes, in microseconds per span.
fn breakdown(requests: &[ExportTraceServiceRequest], spans: usize) {
    use prost::Message;
    let per_span = |d: Duration| d.as_secs_f64() * 1e6 / spans as f64;
    let t = Instant::now();
    let encoded: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let encode = t.elapsed();
    // One request at a time, as a server meets them: decoding every request
    // into prost's structs first and holding them all (as this did before)
    // charged the decode with a gigabyte of fresh small allocations, 7 us a
    // span against 1.3 us for the same decode of one request at a time.
    let (mut decode, mut normalize) = (Duration::ZERO, Duration::ZERO);
    let mut records: Vec<Vec<lasthop_vocab::SpanRecord>> = Vec::with_capacity(encoded.len());
    for b in &encoded {
        let t = Instant::now();
        let request = ExportTraceServiceRequest::decode(b.as_slice()).unwrap();
        decode += t.elapsed();
        let t = Instant::now();
        records.push(normalize_request(request).records);
        normalize += t.elapsed();
    }
    let t = Instant::now();
    let direct: usize = encoded
        .iter()
        .map(|b| decode_request(b).unwrap().records.len())
        .sum();
    let direct_time = t.elapsed();
    assert_eq!(direct, records.iter().map(Vec::len).sum::<usize>());
    let t = Instant::now();
    let payloads: Vec<Vec<u8>> = records
        .iter()
        .map(|rs| {
            rs.iter()
                .fold(Vec::new(), |buf, r| postcard::to_extend(r, buf).unwrap())
        })
        .collect();
    let postcard_time = t.elapsed();
    let schema = SpanSchema::new();
    let t = Instant::now();
    let mut docs = 0;
    for (rs, p) in records.iter().zip(&payloads) {
        for r in rs {
            docs += schema.document(r, &p[..16]).len();
        }
    }
    let document = t.elapsed();
    assert!(docs > 0);
    println!(
        "stage cost (us/span, one core): protobuf encode {:.2}, prost decode {:.2}, normalize {:.2} (both in one pass, as the collector does: {:.2}), postcard {:.2}, tantivy document {:.2}",
        per_span(encode),
        per_span(decode),
        per_span(normalize),
        per_span(direct_time),
        per_span(postcard_time),
        per_span(document)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn lookups(
    store: &SpanStore,
    messages: u64,
    what: &str,
    f: impl Fn(&SpanStore, u64) -> usize,
) -> (Duration, Duration) {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut times = Vec::with_capacity(2000);
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let m = rng % messages;
        let t = Instant::now();
        let found = f(store, m);
        times.push(t.elapsed());
        assert!(found > 0, "{what} lookup of message {m} found nothing");
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn main() {
    let args = args();
    let n_requests = requests_needed(args.spans);
    let requests: Option<Vec<ExportTraceServiceRequest>> =
        (!args.lookup_only).then(|| (0..n_requests).map(|n| request(n, args.spans)).collect());
    let prepared = requests.as_ref().map(|requests| {
        breakdown(requests, args.spans);
        let encoded: Vec<prost::bytes::Bytes> = requests
            .iter()
            .map(|r| prost::Message::encode_to_vec(r).into())
            .collect();
        Arc::new(encoded)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "spans: {}  requests: {n_requests} x {BATCH_SPANS}  clients: {}",
        args.spans, args.clients
    );
    let rate = |d: Duration| args.spans as f64 / d.as_secs_f64();

    // Reference and collector side by side, round after round: the machine's
    // speed drifts, so each ratio compares two runs minutes apart at most.
    let rounds = if args.lookup_only { 1 } else { args.rounds };
    if args.live {
        return live_rounds(&args, n_requests, prepared, &runtime);
    }
    let mut ratios = Vec::new();
    let mut last = None;
    for round in 1..=rounds {
        let reference_time = requests.as_deref().map(reference);
        let dir = tempfile::tempdir().unwrap();
        let data = match &args.keep_data {
            Some(keep) if round == rounds => keep.clone(),
            _ => dir.path().to_owned(),
        };
        let (collector_time, running) =
            runtime.block_on(collect(&args, n_requests, prepared.clone(), &data, None));
        print!("round {round}: ");
        if let Some(r) = reference_time {
            print!("bare tantivy {:>7.0} spans/s, ", rate(r));
            ratios.push(rate(collector_time) / rate(r));
        }
        print!(
            "collector OTLP/gRPC -> searchable {:>7.0} spans/s ({:.2} s)",
            rate(collector_time),
            collector_time.as_secs_f64()
        );
        match ratios.last() {
            Some(ratio) => println!(", ratio {ratio:.2}"),
            None => println!(),
        }
        if round == rounds {
            last = Some((running, data, dir));
        } else {
            runtime.block_on(running.shutdown());
        }
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        println!(
            "ratio collector / bare tantivy: median {:.2} of {} rounds (min {:.2}, max {:.2})",
            ratios[ratios.len() / 2],
            ratios.len(),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }

    let (running, data, _dir) = last.expect("at least one round");
    let pipeline = running.pipeline().clone();
    let snapshot = pipeline.snapshot();
    let store = pipeline.store().clone();
    let messages = (args.spans / HOPS.len()) as u64;
    let hex = |m: u64| {
        trace_id(m)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let trace = lookups(&store, messages, "trace", |s, m| {
        s.by_trace_id(&hex(m)).unwrap().len()
    });
    let key = lookups(&store, messages, "key", |s, m| {
        s.by_key(&format!("ORDER_{m}")).unwrap().len()
    });
    let msg = lookups(&store, messages, "message", |s, m| {
        s.by_message_id(&format!("MSG{m:012}")).unwrap().len()
    });
    drop(store);
    drop(pipeline);
    runtime.block_on(running.shutdown());
    let index_bytes: u64 = walk_size(&data.join("index"));
    println!(
        "last round: wal bytes: {}  index bytes: {}  commits: {}",
        snapshot.wal_bytes, index_bytes, snapshot.commits
    );
    for (what, (p50, p99)) in [("trace id", trace), ("key", key), ("message id", msg)] {
        println!(
            "lookup by {what:<10}  p50 {:>7.3} ms  p99 {:>7.3} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
}

/// `--live`: rounds of the collector without, then with live judging.
fn live_rounds(
    args: &Args,
    n_requests: usize,
    prepared: Option<Arc<Vec<prost::bytes::Bytes>>>,
    runtime: &tokio::runtime::Runtime,
) {
    let rate = |d: Duration| args.spans as f64 / d.as_secs_f64();
    if let Some(prepared) = &prepared {
        live_stage(prepared, args.spans);
    }
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        let mut rates = [0.0; 2];
        for (with_live, rate_of) in [false, true].into_iter().zip(rates.iter_mut()) {
            let dir = tempfile::tempdir().unwrap();
            let live = with_live.then(|| {
                let _guard = runtime.enter();
                LiveJudge::start(LiveOptions::default(), None, runtime.handle())
            });
            let mut plugins = live.as_ref().map(LiveJudge::plugins);
            let null = NULL_OBSERVER.load(Ordering::Relaxed);
            if null && let Some(p) = &mut plugins {
                p.observer = Some(Arc::new(Drops));
            }
            let start = Instant::now();
            let (mut time, running) = runtime.block_on(collect(
                args,
                n_requests,
                prepared.clone(),
                dir.path(),
                plugins,
            ));
            let indexed = time;
            if let Some(live) = live.as_ref().filter(|_| !null) {
                // Ingested means judged-from too: the clock runs until the
                // live judge has taken in every span.
                while (live.status().spans as usize) < args.spans {
                    std::thread::sleep(Duration::from_millis(1));
                }
                time = start.elapsed();
                let messages = (args.spans / HOPS.len()) as u64;
                while live.status().settled < messages {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let status = live.status();
                println!(
                    "round {round}: with live judging {:>7.0} spans/s taken in by the live judge ({:>7.0} spans/s durable and searchable); every message judged after {:.2} s (a message settles 1 s after its last span), {} open, {} judgings",
                    rate(time),
                    rate(indexed),
                    start.elapsed().as_secs_f64(),
                    status.open,
                    status.judgings
                );
            } else {
                println!(
                    "round {round}: without          {:>7.0} spans/s",
                    rate(time)
                );
            }
            *rate_of = rate(time);
            runtime.block_on(running.shutdown());
        }
        ratios.push(rates[1] / rates[0]);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "ratio with live judging / without: median {:.2} of {} rounds (min {:.2}, max {:.2})",
        ratios[ratios.len() / 2],
        ratios.len(),
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

/// The live judge alone on one core: every span taken in (as commits of
/// 100,000 spans), then every message judged; CPU per span.
fn live_stage(encoded: &[prost::bytes::Bytes], spans: usize) {
    use lasthop_analyzer::live::LiveState;
    let records: Vec<lasthop_vocab::SpanRecord> = encoded
        .iter()
        .flat_map(|b| decode_request(b).unwrap().records)
        .collect();
    let chunks: Vec<Vec<lasthop_vocab::SpanRecord>> =
        records.chunks(100_000).map(<[_]>::to_vec).collect();
    // Every message open at once here (a collector settles them as they go).
    let options = LiveOptions {
        max_open: usize::MAX,
        ..LiveOptions::default()
    };
    let mut state = LiveState::new(options);
    let t = Instant::now();
    let mut now = 1u64 << 60;
    for chunk in chunks {
        state.observe(chunk, now);
        now += 1_000_000;
    }
    let observe = t.elapsed();
    let t = Instant::now();
    let settled = state.judge_due(now + 2_000_000_000, &|_| Vec::new()).len();
    let judge = t.elapsed();
    let per_span = |d: Duration| d.as_secs_f64() * 1e6 / spans as f64;
    println!(
        "live judge, one core: take in {:.2} us/span, judge {:.2} us/span ({settled} messages settled)",
        per_span(observe),
        per_span(judge)
    );
}

/// One collector run: clients send every request; returns the time until
/// all of it is durable and searchable (checked), and the running collector.
async fn collect(
    args: &Args,
    n_requests: usize,
    prepared: Option<Arc<Vec<prost::bytes::Bytes>>>,
    data: &std::path::Path,
    plugins: Option<Plugins>,
) -> (Duration, server::RunningCollector) {
    let mut config = CollectorConfig::ephemeral(data.to_owned());
    config.plugins = plugins.unwrap_or_default();
    let running = server::start(config).await.unwrap();
    let endpoint = format!("http://{}", running.grpc_addr);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| {
            let (next, prepared, endpoint) = (next.clone(), prepared.clone(), endpoint.clone());
            let total = args.spans;
            tokio::spawn(async move {
                let channel = tonic::transport::Endpoint::from_shared(endpoint)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                // Pre-encoded request bytes, sent as they are, as a load generator
                // replaying captured traffic would: the collector does all the decoding.
                let mut client = tonic::client::Grpc::new(channel);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= n_requests {
                        break;
                    }
                    let body = match &prepared {
                        Some(p) => p[n].clone(),
                        None => prost::Message::encode_to_vec(&request(n, total)).into(),
                    };
                    // Backpressure answers UNAVAILABLE: retry like an SDK would.
                    loop {
                        client.ready().await.unwrap();
                        let path =
                            tonic::codegen::http::uri::PathAndQuery::from_static(GRPC_EXPORT);
                        let sent = client
                            .unary(tonic::Request::new(body.clone()), path, RawCodec)
                            .await;
                        match sent {
                            Ok(_) => break,
                            Err(e) if e.code() == tonic::Code::Unavailable => {
                                tokio::time::sleep(Duration::from_millis(50)).await
                            }
                            Err(e) => panic!("export failed: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let pipeline = running.pipeline().clone();
    let waited = tokio::task::spawn_blocking(move || {
        pipeline.wait_indexed(pipeline.accepted_lsn(), Duration::from_secs(3600))
    });
    assert!(waited.await.unwrap(), "the collector indexed everything");
    let elapsed = start.elapsed();
    let pipeline = running.pipeline();
    assert_eq!(
        pipeline.snapshot().indexed_spans as usize,
        args.spans,
        "every span indexed"
    );
    assert_eq!(
        pipeline.store().count() as usize,
        args.spans,
        "every span searchable"
    );
    (elapsed, running)
}

fn walk_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}
