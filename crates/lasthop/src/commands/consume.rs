//! `lasthop consume`: process a topic for a group, print each message and,
//! at the end, the group's lag per queue.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use lasthop_broker::client::{self, AckMode, ConsumerConfig, ProcessOutcome};
use lasthop_broker::protocol::{Request, Response};
use tokio::sync::watch;

use super::collector::shutdown_signal;
use crate::flags::SpanExport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ack {
    /// Commit an offset only after its message was processed.
    AfterProcess,
    /// Commit as soon as a batch arrives (the auto-commit hazard).
    OnReceive,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Broker address (host:port).
    #[arg(long, value_name = "ADDR")]
    pub broker: String,
    /// Topic.
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// Consumer group.
    #[arg(long, value_name = "G")]
    pub group: String,
    /// When offsets are committed.
    #[arg(long, value_enum, default_value_t = Ack::AfterProcess)]
    pub ack: Ack,
    /// Stop after this many messages (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Milliseconds each message takes to process (slow consumers, crash demos).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub process_delay: u64,
    /// The service's own ledger: each processed message's keys are appended
    /// to FILE (one per line, synced) before the message counts as processed.
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub spans: SpanExport,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let telemetry = args.spans.init("lasthop-consumer", "warn")?;
        let mut config =
            ConsumerConfig::new(args.broker.clone(), args.group.clone(), args.topic.clone());
        config.ack = match args.ack {
            Ack::AfterProcess => AckMode::AfterProcess,
            Ack::OnReceive => AckMode::OnReceive,
        };
        let (stop_tx, stop) = watch::channel(false);
        let processed = Arc::new(AtomicU64::new(0));
        let limit = args.count;
        let (counter, stopper) = (processed.clone(), stop_tx.clone());
        let delay = Duration::from_millis(args.process_delay);
        let ledger = match &args.ledger {
            Some(path) => Some(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the ledger {}", path.display()))?,
            )),
            None => None,
        };
        let handler: client::Handler = Arc::new(move |m| {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            if let Some(ledger) = &ledger {
                let mut file = ledger.lock().expect("ledger lock");
                let lines: String = m.keys.iter().map(|k| format!("{k}\n")).collect();
                let written = file
                    .write_all(lines.as_bytes())
                    .and_then(|()| file.sync_data());
                if let Err(e) = written {
                    return ProcessOutcome::Failed(format!("ledger: {e}"));
                }
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            println!(
                "processed {} {} queue {} queue-offset {} commitlog-offset {}",
                m.keys.join(","),
                m.msg_id,
                m.queue_id,
                m.queue_offset,
                m.commitlog_offset
            );
            if limit.is_some_and(|l| n >= l) {
                let _ = stopper.send(true);
            }
            ProcessOutcome::Ok
        });
        let mut consumer = tokio::spawn(client::consumer::run(config, handler, stop));
        // Until Ctrl-C, the count, or the consumer giving up (broker gone).
        let ended = tokio::select! {
            _ = shutdown_signal() => { let _ = stop_tx.send(true); None }
            _ = async { let mut rx = stop_tx.subscribe(); let _ = rx.wait_for(|s| *s).await; } => None,
            ended = &mut consumer => Some(ended),
        };
        let ended = match ended {
            Some(ended) => ended,
            None => consumer.await,
        };
        let outcome = ended
            .context("consumer task")
            .and_then(|r| r.map_err(anyhow::Error::from));
        if outcome.is_ok() {
            print_lag(&args).await;
        }
        // Spans are exported on the way out, whether or not consuming failed.
        let report = tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
        eprintln!(
            "processed {} messages; {report}",
            processed.load(Ordering::SeqCst)
        );
        outcome.map(|_| ExitCode::SUCCESS)
    })
}

async fn print_lag(args: &ConsumeArgs) {
    let Ok(conn) = client::Connection::connect(&args.broker, Duration::from_secs(3)).await else {
        return;
    };
    let request = Request::GroupProgress {
        group: args.group.clone(),
        topic: args.topic.clone(),
    };
    if let Ok(Response::Progress(queues)) = conn.request(&request, Duration::from_secs(3)).await {
        super::admin::print_progress(&args.group, &args.topic, &queues);
    }
}
