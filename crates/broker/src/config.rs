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

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_commit_log)
    }
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
    }
}
