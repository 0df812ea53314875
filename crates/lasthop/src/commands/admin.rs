//! `lasthop admin`: what a broker holds, as the seeds investigate it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use lasthop_broker::client::Connection;
use lasthop_broker::protocol::{QueueProgress, Request, Response};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// A message by id or by business key, with where it is stored.
    Message {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Message id, as `produce` prints it.
        #[arg(long, value_name = "ID", required_unless_present = "key")]
        msg_id: Option<String>,
        /// Business key (e.g. an order id).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// A group's progress on a topic: broker offset, consumer offset, lag per queue.
    Progress {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Consumer group.
        #[arg(long, value_name = "G")]
        group: String,
        /// Topic.
        #[arg(long, value_name = "T")]
        topic: String,
    },
    /// A master's replication status: put offset, each slave's acked offset, the gap.
    Replication {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
    },
    /// Messages in a consumer group's dead-letter queue.
    Dlq {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Consumer group.
        #[arg(long, value_name = "G")]
        group: String,
    },
    /// Put a dead-lettered message back into its group's retry topic.
    Resend {
        /// Broker address (host:port).
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Consumer group.
        #[arg(long, value_name = "G")]
        group: String,
        /// Message id, as `produce` prints it.
        #[arg(long, value_name = "ID")]
        msg_id: String,
    },
    /// Promote a slave to master (failover), e.g. after the master's disk is lost.
    Promote {
        /// The slave's address.
        #[arg(long, value_name = "ADDR")]
        broker: String,
        /// Why: disk_lost, crash, ... (recorded in the failover span).
        #[arg(long, default_value = "disk_lost")]
        cause: String,
    },
}

pub fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let timeout = Duration::from_secs(5);
        match command {
            AdminCommand::Message { broker, msg_id, key } => {
                let conn = Connection::connect(&broker, timeout).await?;
                let Response::Messages(found) = conn.request(&Request::FindMessages { msg_id, key }, timeout).await? else {
                    bail!("unexpected answer from {broker}");
                };
                if found.is_empty() {
                    println!("no such message on {broker}");
                }
                for m in found {
                    println!(
                        "{} keys {} topic {} queue {} queue-offset {} commitlog-offset {} stored-ms {} body {} bytes",
                        m.msg_id, m.keys.join(","), m.topic, m.queue_id, m.queue_offset, m.commitlog_offset, m.store_ms, m.body.len()
                    );
                }
            }
            AdminCommand::Progress { broker, group, topic } => {
                let conn = Connection::connect(&broker, timeout).await?;
                let request = Request::GroupProgress { group: group.clone(), topic: topic.clone() };
                let Response::Progress(queues) = conn.request(&request, timeout).await? else {
                    bail!("unexpected answer from {broker}");
                };
                print_progress(&group, &topic, &queues);
            }
            AdminCommand::Replication { broker } => {
                let conn = Connection::connect(&broker, timeout).await?;
                let Response::Replication { role, epoch, put_offset, replicas } =
                    conn.request(&Request::ReplicationStatus, timeout).await?
                else {
                    bail!("unexpected answer from {broker}");
                };
                println!("{broker}: {role}, epoch {epoch}, master put offset {put_offset}");
                if replicas.is_empty() {
                    println!("  no slave has connected");
                }
                for r in replicas {
                    println!(
                        "  slave {} acked offset {} diff {} (last seen {} ms ago)",
                        r.name,
                        r.acked_offset,
                        put_offset.saturating_sub(r.acked_offset),
                        r.last_seen_ms
                    );
                }
            }
            AdminCommand::Dlq { broker, group } => {
                let conn = Connection::connect(&broker, timeout).await?;
                let Response::Messages(found) = conn.request(&Request::ListDeadLetters { group: group.clone() }, timeout).await?
                else {
                    bail!("unexpected answer from {broker}");
                };
                println!("%DLQ%{group}: {} messages", found.len());
                for m in found {
                    println!("  {} keys {} after {} deliveries, body {} bytes", m.msg_id, m.keys.join(","), m.reconsume_times, m.body.len());
                }
            }
            AdminCommand::Resend { broker, group, msg_id } => {
                let conn = Connection::connect(&broker, timeout).await?;
                let request = Request::ResendDeadLetter { group, msg_id: msg_id.clone() };
                let Response::SentBack { topic, .. } = conn.request(&request, timeout).await? else {
                    bail!("unexpected answer from {broker}");
                };
                println!("{msg_id} resent to {topic}");
            }
            AdminCommand::Promote { broker, cause } => {
                let conn = Connection::connect(&broker, timeout).await?;
                let Response::Promoted { epoch, end } = conn.request(&Request::Promote { cause }, timeout).await? else {
                    bail!("unexpected answer from {broker}");
                };
                println!("{broker} is now master, epoch {epoch}; its commit log ends at {end}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Per queue: broker offset, consumer offset, diff (RocketMQ's consumerProgress).
pub fn print_progress(group: &str, topic: &str, queues: &[QueueProgress]) {
    println!("group {group} topic {topic}");
    println!(
        "  {:>5} {:>14} {:>14} {:>8}",
        "queue", "broker offset", "consumer offset", "diff"
    );
    let mut total = 0;
    for q in queues {
        let consumer = q.consumer_offset.unwrap_or(0);
        let diff = q.broker_offset.saturating_sub(consumer);
        total += diff;
        println!(
            "  {:>5} {:>14} {:>14} {:>8}",
            q.queue_id, q.broker_offset, consumer, diff
        );
    }
    println!("  lag {total}");
}
