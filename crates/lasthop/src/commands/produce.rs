//! `lasthop produce`: send messages and print where each one landed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lasthop_broker::client::{Message, Producer, ProducerConfig, SendError};
use lasthop_broker::protocol::{SendResult, SendStatus};

use super::collector::shutdown_signal;
use crate::flags::SpanExport;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Broker address.
    #[arg(long, value_name = "ADDR")]
    pub broker: String,
    /// Topic.
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// Messages to send.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: u32,
    /// Business key of message i is PREFIX + i.
    #[arg(long, default_value = "ORDER_", value_name = "P")]
    pub key_prefix: String,
    /// Extra attempts after a failed send.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// Milliseconds an attempt waits for the broker.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub timeout: u64,
    /// Send asynchronously (results arrive through callbacks).
    #[arg(long = "async", conflicts_with = "tx")]
    pub async_send: bool,
    /// Send each message as a transaction: half message, local transaction
    /// (which commits), commit; check-backs are answered from this run's record.
    #[arg(long)]
    pub tx: bool,
    #[command(flatten)]
    pub spans: SpanExport,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let telemetry = args.spans.init("lasthop-producer", "warn")?;
        let producer = Producer::new(ProducerConfig {
            retries: args.retries,
            timeout: Duration::from_millis(args.timeout),
            ..ProducerConfig::new(args.broker.clone())
        });
        let message = |i: u32| Message {
            topic: args.topic.clone(),
            keys: vec![format!("{}{i}", args.key_prefix)],
            body: format!("{{\"key\":\"{}{i}\"}}", args.key_prefix).into_bytes(),
            ..Default::default()
        };
        let (mut sent, mut failed) = (0u32, 0u32);
        let sending = async {
            if args.tx {
                let (s, f) = send_transactions(&args, &message).await;
                sent += s;
                failed += f;
            } else if args.async_send {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                for i in 1..=args.count {
                    let tx = tx.clone();
                    producer.send_async(message(i), move |result| {
                        let _ = tx.send((i, result));
                    });
                }
                drop(tx);
                while let Some((i, result)) = rx.recv().await {
                    sent += 1;
                    failed += print(&format!("{}{i}", args.key_prefix), &result);
                }
            } else {
                for i in 1..=args.count {
                    let result = producer.send(message(i)).await;
                    sent += 1;
                    failed += print(&format!("{}{i}", args.key_prefix), &result);
                }
            }
        };
        tokio::select! {
            _ = sending => {}
            _ = shutdown_signal() => eprintln!("interrupted: exporting spans and stopping"),
        }
        let report = tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
        eprintln!(
            "{} of {} messages stored ({sent} attempted); {report}",
            sent - failed,
            args.count
        );
        Ok(if failed == 0 && sent == args.count {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Transactional sends; returns (attempted, failed).
async fn send_transactions(args: &ProduceArgs, message: &dyn Fn(u32) -> Message) -> (u32, u32) {
    use lasthop_broker::client::{LocalTransactions, TransactionProducer};
    use lasthop_broker::protocol::TxState;

    // This run's record of its local transactions, read by check-backs.
    let local = LocalTransactions::default();
    let listener = local.listener(TxState::Rollback);
    let producer = TransactionProducer::start(
        ProducerConfig {
            retries: args.retries,
            timeout: Duration::from_millis(args.timeout),
            ..ProducerConfig::new(args.broker.clone())
        },
        listener,
    );
    let (mut sent, mut failed) = (0, 0);
    for i in 1..=args.count {
        let key = format!("{}{i}", args.key_prefix);
        let local = local.clone();
        let outcome = producer
            .send(message(i), move |msg_id| {
                local.record(msg_id, TxState::Commit);
                TxState::Commit
            })
            .await;
        sent += 1;
        match outcome {
            Ok(o) => println!(
                "{key} {} TX {} half {}#{} commitlog-offset {}{}",
                o.half.msg_id,
                o.state.as_str(),
                o.half.broker,
                o.half.epoch,
                o.half.commitlog_offset,
                if o.end_delivered {
                    ""
                } else {
                    " (end not confirmed: the check-back settles it)"
                }
            ),
            Err(e) => {
                failed += 1;
                println!(
                    "{key} {} FAILED after {}: {} (local transaction not run)",
                    e.msg_id,
                    attempts(e.attempts),
                    e.last
                );
            }
        }
    }
    (sent, failed)
}

/// One line per message; returns 1 when it was not stored as SEND_OK.
fn print(key: &str, result: &Result<SendResult, SendError>) -> u32 {
    match result {
        Ok(r) => {
            println!(
                "{key} {} {} {}#{} queue {} queue-offset {} commitlog-offset {}",
                r.msg_id,
                r.status.as_str(),
                r.broker,
                r.epoch,
                r.queue_id,
                r.queue_offset,
                r.commitlog_offset
            );
            u32::from(r.status != SendStatus::SendOk)
        }
        Err(e) => {
            println!(
                "{key} {} FAILED after {}: {}",
                e.msg_id,
                attempts(e.attempts),
                e.last
            );
            1
        }
    }
}

/// "1 attempt", "3 attempts".
fn attempts(n: u32) -> String {
    format!("{n} attempt{}", if n == 1 { "" } else { "s" })
}
