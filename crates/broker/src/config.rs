//! Broker configuration, with RocketMQ's names so that RocketMQ users feel at
//! home (`brokerName`, `brokerRole`, `flushDiskType`, ...). Read from a TOML
//! file; command-line flags override it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `brokerRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BrokerRole {
    /// Acknowledges a send without waiting for a slave.
    AsyncMaster,
    /// Acknowledges a send only after a slave has acked its offset.
    SyncMaster,
    /// Copies a master's commit log; takes no writes.
    Slave,
}

/// `flushDiskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlushDiskType {
    /// A flusher syncs every `flushIntervalCommitLog`; sends are acknowledged from memory.
    AsyncFlush,
    /// Group commit: a send's acknowledgement waits for the fsync that covers it.
    SyncFlush,
}

/// Everything a broker needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub broker_name: String,
    pub broker_role: BrokerRole,
    pub flush_disk_type: FlushDiskType,
    /// Milliseconds between async flushes.
    pub flush_interval_commit_log: u64,
    /// Milliseconds a sync-flush send waits for its fsync before `FLUSH_DISK_TIMEOUT`.
    pub sync_flush_timeout: u64,
    /// Address to listen on (`brokerIP1`, loopback by default).
    #[serde(rename = "brokerIP1")]
    pub broker_ip1: IpAddr,
    pub listen_port: u16,
    pub store_path_root_dir: PathBuf,
    /// Bytes per commit-log segment file.
    pub mapped_file_size_commit_log: u64,
    /// Largest message body accepted, in bytes.
    pub max_message_size: usize,
    /// Queues a topic gets.
    pub default_topic_queue_nums: u32,
    /// The master a slave copies from.
    pub ha_master_address: Option<String>,
    /// 0 for the master; a slave of the same `brokerName` has another id.
    pub broker_id: u32,
    /// Milliseconds a SYNC_MASTER send waits for a slave's ack before `FLUSH_SLAVE_TIMEOUT`.
    pub slave_ack_timeout: u64,
    /// Retry delays by level, RocketMQ's format (`1s 5s 10s 30s 1m ...`).
    pub message_delay_level: String,
    /// Deliveries after which a failing message goes to the dead-letter queue.
    pub max_reconsume_times: u32,
    /// Milliseconds a half message waits before the first check-back.
    pub transaction_time_out: u64,
    /// Milliseconds between check-back scans.
    pub transaction_check_interval: u64,
    /// Check-backs before an unresolved half message is rolled back.
    pub transaction_check_max: u32,
    /// Keep unflushed commit-log bytes in process memory only, so that
    /// `kill -9` loses them as a power cut would.
    pub simulate_power_loss: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_name: "broker-a".into(),
            broker_role: BrokerRole::AsyncMaster,
            flush_disk_type: FlushDiskType::AsyncFlush,
            flush_interval_commit_log: 500,
            sync_flush_timeout: 5000,
            broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listen_port: 10911,
            store_path_root_dir: PathBuf::from("lasthop-data/store"),
            mapped_file_size_commit_log: 64 << 20,
            max_message_size: 4 << 20,
            default_topic_queue_nums: 4,
            ha_master_address: None,
            broker_id: 0,
            slave_ack_timeout: 3000,
            message_delay_level: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
                .into(),
            max_reconsume_times: 16,
            transaction_time_out: 6000,
            transaction_check_interval: 1000,
            transaction_check_max: 15,
            simulate_power_loss: false,
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML for a broker configuration.
    #[error("invalid broker configuration {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// The values contradict each other.
    #[error("invalid broker configuration: {0}")]
    Invalid(String),
}

impl BrokerConfig {
    /// Reads a TOML file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<BrokerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Checks values that depend on each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_role == BrokerRole::Slave && self.ha_master_address.is_none() {
            return Err(ConfigError::Invalid(
                "a slave needs haMasterAddress (--master)".into(),
            ));
        }
        if self.default_topic_queue_nums == 0 {
            return Err(ConfigError::Invalid(
                "defaultTopicQueueNums must be at least 1".into(),
            ));
        }
        if let Err(e) = self.delay_levels() {
            return Err(ConfigError::Invalid(format!("messageDelayLevel: {e}")));
        }
        if self.flush_interval_commit_log == 0 {
            return Err(ConfigError::Invalid(
                "flushIntervalCommitLog must be at least 1 ms".into(),
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.broker_ip1, self.listen_port)
    }

    /// How this broker names itself as a replica: `brokerName/brokerId`.
    pub fn replica_name(&self) -> String {
        format!("{}/{}", self.broker_name, self.broker_id)
    }

    /// The `lasthop.broker` of the spans about this broker's own commit log
    /// (`recover`, `flush`) while it has `role`: the broker name for a
    /// master, the replica name for a slave. A slave's log is a copy at the
    /// master's offsets but with epochs of its own; under the master's name a
    /// slave that restarts behind would read as the master losing its tail.
    pub fn log_owner(&self, role: BrokerRole) -> String {
        match role {
            BrokerRole::Slave => self.replica_name(),
            _ => self.broker_name.clone(),
        }
    }

    /// The retry delays, level 1 first.
    pub fn delay_levels(&self) -> Result<Vec<Duration>, String> {
        let levels: Result<Vec<Duration>, String> = self
            .message_delay_level
            .split_whitespace()
            .map(parse_delay)
            .collect();
        match levels {
            Ok(l) if l.is_empty() => Err("no delay levels".into()),
            other => other,
        }
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_commit_log)
    }
}

/// `100ms`, `5s`, `2m`, `1h`, `1d`.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a delay such as 5s"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(format!("{text:?} has no unit (ms, s, m, h, d)")),
    };
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocketmq_names_parse_and_unknown_names_are_refused() {
        let c: BrokerConfig = toml::from_str(
            "brokerName = 'broker-b'\nbrokerRole = 'SYNC_MASTER'\nflushDiskType = 'SYNC_FLUSH'\nflushIntervalCommitLog = 200\nlistenPort = 20911\nmaxMessageSize = 1024\n",
        )
        .unwrap();
        assert_eq!(c.broker_name, "broker-b");
        assert_eq!(
            (c.broker_role, c.flush_disk_type),
            (BrokerRole::SyncMaster, FlushDiskType::SyncFlush)
        );
        assert_eq!(
            (
                c.flush_interval_commit_log,
                c.listen_port,
                c.max_message_size
            ),
            (200, 20911, 1024)
        );
        assert_eq!(c.default_topic_queue_nums, 4, "defaults fill the rest");
        assert!(toml::from_str::<BrokerConfig>("flushDiskTyp = 'SYNC_FLUSH'").is_err());
        let slave = BrokerConfig {
            broker_role: BrokerRole::Slave,
            ..BrokerConfig::default()
        };
        assert!(slave.validate().is_err());
        let levels = BrokerConfig {
            message_delay_level: "100ms 2s 1m".into(),
            ..BrokerConfig::default()
        };
        assert_eq!(
            levels.delay_levels().unwrap(),
            vec![
                Duration::from_millis(100),
                Duration::from_secs(2),
                Duration::from_secs(60)
            ]
        );
        let bad = BrokerConfig {
            message_delay_level: "5x".into(),
            ..BrokerConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
