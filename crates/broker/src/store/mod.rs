//! The broker's message store (RocketMQ model, DESIGN section 8).
//!
//! ```text
//! store dir/
//!   commitlog/{offset:020}   segment files of the commit log (commit_log.rs, record.rs)
//!   consumerOffset.json      committed offsets per group and queue (offset_storage.rs)
//!   epoch                    the store's epoch, advanced at every open (epoch.rs)
//!   abort                    present while the store is open: found at open => crash
//! ```
//!
//! The commit log is the only source of truth; consume queues are rebuilt
//! from it at open. All I/O goes through a [`backend::Backend`], which in
//! power-loss mode keeps unflushed bytes only in memory.

pub mod backend;
pub mod commit_log;
pub mod consume_queue;
pub mod epoch;
pub mod offset_storage;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use backend::{Backend, FileBackend, PowerLossBackend};
use commit_log::CommitLog;
use consume_queue::{ConsumeQueues, CqEntry};
use offset_storage::OffsetStorage;
use record::{ReadOutcome, StoredMessage};

/// Errors of the message store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system refused a read, write or sync.
    #[error("store i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A synced record in an older commit-log segment is damaged.
    #[error("commit log segment {segment} is corrupt at offset {offset}")]
    Corrupt { segment: u64, offset: u64 },
    /// A metadata file (offsets, epoch) cannot be parsed.
    #[error("cannot read {path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A consume queue points at a record that is not there.
    #[error("no valid record at commit-log offset {0}")]
    Missing(u64),
    /// Replicated bytes do not continue this store's log.
    #[error("replication error: {0}")]
    Replica(String),
}

/// Why the store's previous run ended, as the `recover` span reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoverCause {
    /// Closed cleanly, or a new store.
    Clean,
    /// The process died without closing the store.
    Crash,
    /// The process died in power-loss mode: the unflushed tail is gone.
    PowerLoss,
}

impl RecoverCause {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoverCause::Clean => "clean",
            RecoverCause::Crash => "crash",
            RecoverCause::PowerLoss => "power_loss",
        }
    }
}

/// What opening the store found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub epoch: u64,
    pub cause: RecoverCause,
    /// Commit-log offset just past the last record that survived.
    pub surviving_end: u64,
    pub truncated_bytes: u64,
    pub truncated_corrupt: bool,
    pub messages: u64,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    /// Keep unflushed bytes in process memory only (see [`backend::PowerLossBackend`]).
    pub simulate_power_loss: bool,
    /// The epoch must exceed this (a promoted slave continues after its master).
    pub min_epoch: u64,
}

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            simulate_power_loss: false,
            min_epoch: 0,
        }
    }
}

/// Where a stored message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    pub commitlog_offset: u64,
    pub size: u64,
    pub queue_offset: u64,
    pub store_ms: u64,
}

/// A message read back through its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub size: u64,
    pub message: StoredMessage,
}

#[derive(Debug)]
struct Log {
    log: CommitLog,
    queues: ConsumeQueues,
}

/// Commit log, consume queues and offsets of one broker.
#[derive(Debug)]
pub struct MessageStore {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    log: Mutex<Log>,
    offsets: Mutex<OffsetStorage>,
    epoch: AtomicU64,
    recovery: Recovery,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MessageStore {
    /// Opens (or creates) the store: advances the epoch, recovers the commit
    /// log to its valid end, rebuilds the consume queues.
    pub fn open(config: &StoreConfig) -> Result<MessageStore, StoreError> {
        let backend: Arc<dyn Backend> = if config.simulate_power_loss {
            Arc::new(PowerLossBackend)
        } else {
            Arc::new(FileBackend)
        };
        backend.create_dir_all(&config.dir)?;
        let abort = config.dir.join("abort");
        let cause = match (backend.read(&abort)?.is_some(), config.simulate_power_loss) {
            (false, _) => RecoverCause::Clean,
            (true, false) => RecoverCause::Crash,
            (true, true) => RecoverCause::PowerLoss,
        };
        let epoch = epoch::advance(
            backend.as_ref(),
            &config.dir.join("epoch"),
            config.min_epoch,
        )?;
        let mut queues = ConsumeQueues::default();
        let mut messages = 0;
        let (log, report) = CommitLog::open(
            backend.clone(),
            &config.dir.join("commitlog"),
            config.segment_bytes,
            |offset, size, m| {
                queues.push(
                    &m.topic,
                    m.queue_id,
                    CqEntry {
                        commitlog_offset: offset,
                        size: size as u32,
                    },
                );
                messages += 1;
            },
        )?;
        backend.write_atomic(&abort, epoch.to_string().as_bytes())?;
        let offsets = OffsetStorage::open(backend.clone(), config.dir.join("consumerOffset.json"))?;
        let recovery = Recovery {
            epoch,
            cause,
            surviving_end: report.end,
            truncated_bytes: report.truncated_bytes,
            truncated_corrupt: report.truncated_corrupt,
            messages,
        };
        Ok(MessageStore {
            dir: config.dir.clone(),
            backend,
            log: Mutex::new(Log { log, queues }),
            offsets: Mutex::new(offsets),
            epoch: AtomicU64::new(epoch),
            recovery,
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Moves to a new epoch above both the current one and `at_least` (a
    /// promoted slave continues after its master's epoch). Durable.
    pub fn advance_epoch(&self, at_least: u64) -> Result<u64, StoreError> {
        let floor = at_least.max(self.epoch());
        let next = epoch::advance(self.backend.as_ref(), &self.dir.join("epoch"), floor)?;
        self.epoch.store(next, Ordering::Release);
        Ok(next)
    }

    /// Appends whole records copied from a master, at the same offsets and
    /// queue positions the master gave them. Returns the new end.
    pub fn append_replicated(&self, bytes: &[u8]) -> Result<u64, StoreError> {
        let mut log = self.log();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let ReadOutcome::Value { message, size } = record::decode(&bytes[pos..]) else {
                return Err(StoreError::Replica(format!(
                    "a bad record at offset {}",
                    log.log.end()
                )));
            };
            let expected = log.queues.next_offset(&message.topic, message.queue_id);
            if message.queue_offset != expected {
                return Err(StoreError::Replica(format!(
                    "queue {}@{} expects offset {expected}, the master sent {}",
                    message.topic, message.queue_id, message.queue_offset
                )));
            }
            let record = &bytes[pos..pos + size as usize];
            let offset = log.log.append(record)?;
            log.queues.push(
                &message.topic,
                message.queue_id,
                CqEntry {
                    commitlog_offset: offset,
                    size: size as u32,
                },
            );
            pos += size as usize;
        }
        Ok(log.log.end())
    }

    /// Whole raw records from `offset` on, about `max` bytes (what a slave copies).
    pub fn read_raw(&self, offset: u64, max: usize) -> Result<Vec<u8>, StoreError> {
        self.log().log.read_raw(offset, max)
    }

    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().expect("store lock")
    }

    /// Appends a message to the commit log and its queue (queue offset and
    /// store time are assigned here). Durable only after a flush.
    pub fn put(&self, mut message: StoredMessage) -> Result<PutResult, StoreError> {
        let mut log = self.log();
        message.queue_offset = log.queues.next_offset(&message.topic, message.queue_id);
        message.store_ms = now_ms();
        let bytes = record::encode(&message);
        let offset = log.log.append(&bytes)?;
        let entry = CqEntry {
            commitlog_offset: offset,
            size: bytes.len() as u32,
        };
        log.queues.push(&message.topic, message.queue_id, entry);
        Ok(PutResult {
            commitlog_offset: offset,
            size: bytes.len() as u64,
            queue_offset: message.queue_offset,
            store_ms: message.store_ms,
        })
    }

    /// Makes everything appended durable; returns the flushed range `(before, after)`.
    pub fn flush(&self) -> Result<(u64, u64), StoreError> {
        let mut log = self.log();
        let before = log.log.flushed();
        let after = log.log.flush()?;
        Ok((before, after))
    }

    /// Commit-log offset just past the last record.
    pub fn end(&self) -> u64 {
        self.log().log.end()
    }

    pub fn flushed(&self) -> u64 {
        self.log().log.flushed()
    }

    /// Up to `max` messages of a queue from `queue_offset` on.
    pub fn get(
        &self,
        topic: &str,
        queue_id: u32,
        queue_offset: u64,
        max: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let log = self.log();
        let entries = log.queues.range(topic, queue_id, queue_offset, max);
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            match log.log.read(entry.commitlog_offset)? {
                ReadOutcome::Value { message, size } => out.push(QueuedMessage {
                    queue_offset: queue_offset + i as u64,
                    commitlog_offset: entry.commitlog_offset,
                    size,
                    message,
                }),
                _ => return Err(StoreError::Missing(entry.commitlog_offset)),
            }
        }
        Ok(out)
    }

    /// The message stored at a commit-log offset.
    pub fn read_at(&self, commitlog_offset: u64) -> Result<StoredMessage, StoreError> {
        match self.log().log.read(commitlog_offset)? {
            ReadOutcome::Value { message, .. } => Ok(message),
            _ => Err(StoreError::Missing(commitlog_offset)),
        }
    }

    /// The offset the next message of a queue gets (its "max offset").
    pub fn next_queue_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.log().queues.next_offset(topic, queue_id)
    }

    /// Queue ids that hold messages of `topic`.
    pub fn queue_ids(&self, topic: &str) -> Vec<u32> {
        self.log().queues.queue_ids(topic)
    }

    /// Every (topic, queue id).
    pub fn queues(&self) -> Vec<(String, u32)> {
        self.log().queues.all()
    }

    /// Every message whose id or one of whose keys matches, oldest first (admin views).
    pub fn find(
        &self,
        msg_id: Option<&str>,
        key: Option<&str>,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let mut out = Vec::new();
        for (topic, queue_id) in self.queues() {
            let mut at = 0;
            loop {
                let batch = self.get(&topic, queue_id, at, 1024)?;
                if batch.is_empty() {
                    break;
                }
                at += batch.len() as u64;
                out.extend(batch.into_iter().filter(|q| {
                    msg_id.is_some_and(|id| q.message.msg_id == id)
                        || key.is_some_and(|k| q.message.keys.iter().any(|x| x == k))
                }));
            }
        }
        out.sort_by_key(|q| q.commitlog_offset);
        Ok(out)
    }

    fn offsets(&self) -> MutexGuard<'_, OffsetStorage> {
        self.offsets.lock().expect("offsets lock")
    }

    /// Records a group's next offset for a queue.
    pub fn commit_offset(&self, group: &str, topic: &str, queue_id: u32, next: u64) {
        self.offsets().commit(group, topic, queue_id, next, false);
    }

    pub fn committed_offset(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.offsets().get(group, topic, queue_id)
    }

    /// Every (group, topic, queue id, committed offset).
    pub fn committed_offsets(&self) -> Vec<(String, String, u32, u64)> {
        self.offsets().all()
    }

    pub fn persist_offsets(&self) -> Result<(), StoreError> {
        self.offsets().persist()
    }

    /// Flushes, persists offsets and removes the abort marker: the next open is `clean`.
    pub fn close(&self) -> Result<(), StoreError> {
        self.flush()?;
        self.persist_offsets()?;
        self.backend.remove(&self.dir.join("abort"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, q: u32, id: &str, key: &str) -> StoredMessage {
        StoredMessage {
            msg_id: id.into(),
            topic: topic.into(),
            queue_id: q,
            keys: vec![key.into()],
            body: b"x".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn put_get_find_and_reopen_clean() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        let store = MessageStore::open(&config).unwrap();
        assert_eq!(
            (store.epoch(), store.recovery().cause),
            (1, RecoverCause::Clean)
        );
        let a = store.put(msg("t", 0, "A", "ORDER_1")).unwrap();
        let b = store.put(msg("t", 0, "B", "ORDER_2")).unwrap();
        store.put(msg("t", 1, "C", "ORDER_1")).unwrap();
        assert_eq!((a.queue_offset, b.queue_offset), (0, 1));
        assert_eq!(b.commitlog_offset, a.size);
        let got = store.get("t", 0, 1, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.msg_id, "B");
        let found: Vec<String> = store
            .find(None, Some("ORDER_1"))
            .unwrap()
            .into_iter()
            .map(|q| q.message.msg_id)
            .collect();
        assert_eq!(found, vec!["A", "C"]);
        store.commit_offset("g", "t", 0, 2);
        store.close().unwrap();
        drop(store);
        let store = MessageStore::open(&config).unwrap();
        assert_eq!(store.epoch(), 2);
        assert_eq!(store.recovery().cause, RecoverCause::Clean);
        assert_eq!(store.recovery().messages, 3);
        assert_eq!(store.next_queue_offset("t", 0), 2);
        assert_eq!(store.committed_offset("g", "t", 0), Some(2));
    }

    #[test]
    fn power_loss_drops_the_unflushed_tail_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            simulate_power_loss: true,
            ..StoreConfig::new(dir.path())
        };
        let store = MessageStore::open(&config).unwrap();
        store.put(msg("t", 0, "A", "K1")).unwrap();
        let (_, flushed) = store.flush().unwrap();
        let lost = store.put(msg("t", 0, "B", "K2")).unwrap();
        assert_eq!(lost.commitlog_offset, flushed);
        drop(store); // power cut: no close
        let store = MessageStore::open(&config).unwrap();
        let r = store.recovery();
        assert_eq!(
            (r.cause, r.surviving_end, r.messages),
            (RecoverCause::PowerLoss, flushed, 1)
        );
        assert!(store.find(Some("B"), None).unwrap().is_empty());
        // The queue continues where the surviving log ends.
        assert_eq!(store.put(msg("t", 0, "C", "K3")).unwrap().queue_offset, 1);
    }

    #[test]
    fn a_crash_without_power_loss_keeps_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        let store = MessageStore::open(&config).unwrap();
        store.put(msg("t", 0, "A", "K1")).unwrap();
        drop(store); // killed: the kernel still has the bytes
        let store = MessageStore::open(&config).unwrap();
        assert_eq!(store.recovery().cause, RecoverCause::Crash);
        assert_eq!(store.recovery().messages, 1);
    }
}
