//! Broker throughput and latency with 1 KiB messages, tracing off and on in
//! the same run (DESIGN section 9: traced >= 90% of untraced, no span dropped).
//!
//! ```text
//! cargo bench -p lasthop-broker --bench broker -- [--messages N] [--producers P]
//! ```
//!
//! Each configuration (ASYNC_FLUSH, SYNC_FLUSH) runs untraced first (no
//! subscriber: spans cost nothing), then, after the tracing pipeline is
//! installed, traced: every hop's span is created, batched and exported over
//! OTLP/HTTP to a sink on loopback that accepts each request without decoding
//! it, so the figure is the broker's and client's own tracing cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lasthop_broker::client::{
    self, ConsumerConfig, Message, ProcessOutcome, Producer, ProducerConfig,
};
use lasthop_broker::protocol::SendStatus;
use lasthop_broker::{BrokerConfig, FlushDiskType, server};
use tokio::sync::watch;

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    messages: usize,
    producers: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 20_000,
        producers: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                a.messages = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--messages N")
            }
            "--producers" => {
                a.producers = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--producers P")
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

struct Run {
    produce_rate: f64,
    p50: Duration,
    p99: Duration,
    consume_rate: f64,
    /// CPU time of the whole process per message, producing and consuming.
    produce_cpu: Duration,
    consume_cpu: Duration,
    /// Share of the machine's cores busy while producing and consuming.
    produce_busy: f64,
    consume_busy: f64,
}

/// CPU per message and the share of `cores` busy over `wall`.
fn cpu_use(cpu: Duration, wall: Duration, messages: usize) -> (Duration, f64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (
        cpu / messages as u32,
        cpu.as_secs_f64() / (wall.as_secs_f64() * cores as f64),
    )
}

async fn run(flush: FlushDiskType, args: &Args) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        listen_port: 0,
        store_path_root_dir: dir.path().to_owned(),
        flush_disk_type: flush,
        ..BrokerConfig::default()
    };
    let broker = server::start(config).await.unwrap();
    let addr = broker.addr.to_string();
    let producer = Producer::new(ProducerConfig::new(addr.clone()));
    let body = vec![b'x'; 1024];
    let per = args.messages / args.producers;
    let cpu_start = common::cpu_time().unwrap_or_default();
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.producers)
        .map(|p| {
            let (producer, body) = (producer.clone(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per);
                for i in 0..per {
                    let m = Message {
                        topic: "order_paid".into(),
                        keys: vec![format!("ORDER_{p}_{i}")],
                        body: body.clone(),
                        ..Default::default()
                    };
                    let t = Instant::now();
                    let r = producer.send(m).await.expect("send");
                    assert_eq!(r.status, SendStatus::SendOk);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let produce = start.elapsed();
    let cpu_produced = common::cpu_time().unwrap_or_default();
    latencies.sort();
    let total = per * args.producers;

    let consumed = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let counter = consumed.clone();
    let stopper = stop_tx.clone();
    let handler: client::Handler = Arc::new(move |_| {
        if counter.fetch_add(1, Ordering::Relaxed) + 1 == total as u64 {
            let _ = stopper.send(true);
        }
        ProcessOutcome::Ok
    });
    let start = Instant::now();
    let consumer = tokio::spawn(client::consumer::run(
        ConsumerConfig::new(addr, "bench", "order_paid"),
        handler,
        stop,
    ));
    let mut rx = stop_tx.subscribe();
    let _ = rx.wait_for(|s| *s).await;
    let consume = start.elapsed();
    let cpu_consumed = common::cpu_time().unwrap_or_default();
    consumer.await.unwrap().unwrap();
    broker.shutdown().await.unwrap();
    let (produce_cpu, produce_busy) = cpu_use(cpu_produced - cpu_start, produce, total);
    let (consume_cpu, consume_busy) = cpu_use(cpu_consumed - cpu_produced, consume, total);
    Run {
        produce_rate: total as f64 / produce.as_secs_f64(),
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        consume_rate: total as f64 / consume.as_secs_f64(),
        produce_cpu,
        consume_cpu,
        produce_busy,
        consume_busy,
    }
}

fn line(label: &str, r: &Run) {
    println!(
        "{label:<22} produce {:>8.0} msg/s  p50 {:>6.2} ms  p99 {:>6.2} ms  consume {:>8.0} msg/s",
        r.produce_rate,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.consume_rate
    );
    println!(
        "{:<22} cpu per message: produce {:>5.1} us ({:.0}% of cores busy), consume {:>5.1} us ({:.0}%)",
        "",
        r.produce_cpu.as_secs_f64() * 1e6,
        r.produce_busy * 100.0,
        r.consume_cpu.as_secs_f64() * 1e6,
        r.consume_busy * 100.0
    );
}

fn main() {
    let args = args();
    let runtime = common::runtime();
    runtime.block_on(async {
        let modes = [
            ("ASYNC_FLUSH", FlushDiskType::AsyncFlush),
            ("SYNC_FLUSH", FlushDiskType::SyncFlush),
        ];
        // Warm-up, untraced.
        run(
            FlushDiskType::AsyncFlush,
            &Args {
                messages: args.messages / 4,
                producers: args.producers,
            },
        )
        .await;
        let mut untraced = Vec::new();
        for (label, mode) in modes {
            let r = run(mode, &args).await;
            line(&format!("{label} untraced"), &r);
            untraced.push(r);
        }
        let telemetry = common::traced("lasthop-bench").await;
        for (i, (label, mode)) in modes.into_iter().enumerate() {
            let before = telemetry.report().ended;
            let r = run(mode, &args).await;
            let spans = telemetry.report().ended - before;
            line(&format!("{label} traced"), &r);
            println!(
                "{:<22} traced/untraced: produce {:.2}, consume {:.2}; {:.1} spans per message",
                "",
                r.produce_rate / untraced[i].produce_rate,
                r.consume_rate / untraced[i].consume_rate,
                spans as f64 / args.messages as f64
            );
        }
        let report = tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .unwrap();
        println!("{report}");
        assert_eq!(report.dropped + report.failed, 0, "no span dropped");
    });
}
