//! `lasthop broker`: run an instrumented broker until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use lasthop_broker::{BrokerConfig, BrokerRole, FlushDiskType, server};

use super::collector::shutdown_signal;
use crate::flags::SpanExport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Master,
    Slave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Sync,
    Async,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// TOML configuration with RocketMQ's names (brokerName, brokerRole,
    /// flushDiskType, flushIntervalCommitLog, listenPort, storePathRootDir,
    /// maxMessageSize, ...); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Broker name (brokerName).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Listen address, e.g. 127.0.0.1:10911 (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Store directory (storePathRootDir); default lasthop-data/broker-NAME.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// master or slave.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// The master a slave copies from.
    #[arg(long, value_name = "ADDR")]
    pub master: Option<String>,
    /// sync: acknowledge after fsync (SYNC_FLUSH); async: from memory (ASYNC_FLUSH).
    #[arg(long, value_enum)]
    pub flush: Option<Mode>,
    /// sync: acknowledge after a slave acked (SYNC_MASTER); async: at once (ASYNC_MASTER).
    #[arg(long, value_enum)]
    pub replication: Option<Mode>,
    /// Milliseconds between async flushes (flushIntervalCommitLog).
    #[arg(long, value_name = "MS")]
    pub flush_interval: Option<u64>,
    /// Keep unflushed commit-log bytes in memory only, so kill -9 loses them like a power cut.
    #[arg(long)]
    pub simulate_power_loss: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics: put and flushed
    /// offsets, replica lag, each group's committed offset and lag per
    /// queue, retry and dead-letter counts, send statuses (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    #[command(flatten)]
    pub spans: SpanExport,
}

/// The configuration file's values with the flags on top.
fn config(args: &BrokerArgs) -> anyhow::Result<BrokerConfig> {
    let mut c = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    let store_given = args.store.is_some() || args.config.is_some();
    if let Some(name) = &args.name {
        c.broker_name = name.clone();
    }
    if let Some(listen) = args.listen {
        c.broker_ip1 = listen.ip();
        c.listen_port = listen.port();
    }
    if args.role == Some(Role::Slave) && c.broker_id == 0 {
        c.broker_id = 1;
    }
    if let Some(store) = &args.store {
        c.store_path_root_dir = store.clone();
    } else if !store_given {
        let suffix = if c.broker_id == 0 {
            String::new()
        } else {
            format!("-{}", c.broker_id)
        };
        c.store_path_root_dir = format!("lasthop-data/broker-{}{suffix}", c.broker_name).into();
    }
    if let Some(flush) = args.flush {
        c.flush_disk_type = if flush == Mode::Sync {
            FlushDiskType::SyncFlush
        } else {
            FlushDiskType::AsyncFlush
        };
    }
    if let Some(ms) = args.flush_interval {
        c.flush_interval_commit_log = ms;
    }
    match (args.role, args.replication) {
        (Some(Role::Slave), _) => c.broker_role = BrokerRole::Slave,
        (_, Some(Mode::Sync)) => c.broker_role = BrokerRole::SyncMaster,
        (_, Some(Mode::Async)) | (Some(Role::Master), None) => {
            c.broker_role = BrokerRole::AsyncMaster
        }
        (None, None) => {}
    }
    if let Some(master) = &args.master {
        c.ha_master_address = Some(master.clone());
    }
    c.simulate_power_loss |= args.simulate_power_loss;
    c.validate()?;
    Ok(c)
}

pub fn run(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    let config = config(&args)?;
    if config.broker_role != BrokerRole::Slave && config.ha_master_address.is_some() {
        bail!("--master is for a slave (--role slave)");
    }
    if config.simulate_power_loss && args.spans.span_spool.is_some() {
        // The spool is not fsynced: a real power cut takes it along, a simulated one would not.
        bail!(
            "--span-spool keeps spans through a kill, not through a power cut; with --simulate-power-loss it would keep what a real power cut loses"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let service = format!("lasthop-broker-{}", config.broker_name);
        let telemetry = args.spans.init(&service, "info")?;
        let mut broker = match server::start(config).await {
            Ok(broker) => broker,
            Err(e) => {
                // Its `recover` span, if it got that far, still goes out.
                tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
                return Err(e.into());
            }
        };
        let r = broker.recovery();
        println!(
            "lasthop broker {} listening on {} (epoch {}; previous run ended: {}; commit log ends at {})",
            broker.name(),
            broker.addr,
            broker.epoch(),
            r.cause.as_str(),
            r.surviving_end
        );
        if let Some(addr) = args.metrics {
            let bound = broker.serve_metrics(addr).await?;
            if !bound.ip().is_loopback() {
                eprintln!("warning: broker metrics on {bound} are reachable from other hosts");
            }
            println!("lasthop broker {} metrics on http://{bound}/metrics", broker.name());
        }
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests, flushing the commit log");
        let stopped = broker.shutdown().await;
        let report = tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
        eprintln!("lasthop broker stopped; {report}");
        stopped?;
        Ok(ExitCode::SUCCESS)
    })
}
