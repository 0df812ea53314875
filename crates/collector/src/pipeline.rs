//! Acknowledge after the write-ahead log, index behind it.
//!
//! ```text
//! accept(records) --encode--> WAL thread: append, fdatasync (group commit) --ack-->
//!                                  |
//!                                  v  (records + end LSN)
//!                             index thread: add documents; every commit interval,
//!                             or once the input goes quiet, commit with payload
//!                             {"wal_lsn": N}, reload readers, delete WAL segments below N
//! ```
//!
//! ## Invariants
//! - An acknowledgement means the spans are in a synced WAL frame.
//! - The index's last commit payload names the LSN it holds everything below;
//!   on open, frames from there on are replayed before anything is accepted,
//!   so acknowledged spans are indexed exactly once, also after `kill -9`.
//! - When the index falls more than `max_backlog_bytes` behind, new batches are
//!   refused with [`AcceptError::Backpressure`] (never dropped); callers answer
//!   with OTLP's retryable statuses.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lasthop_vocab::SpanRecord;
use tantivy::{Index, IndexWriter, ReloadPolicy};
use tokio::sync::oneshot;

use crate::observer::SpanObserver;
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{self, SpanSchema, SpanStore, StoreError};
use crate::wal::{self, Lsn, Wal, WalError};

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Acknowledged-but-unindexed WAL bytes above which new batches are refused.
    pub max_backlog_bytes: u64,
    /// How often pending documents are committed (and become searchable)
    /// while spans keep arriving.
    pub commit_interval: Duration,
    /// Commit early once nothing has arrived for this long (a burst has
    /// ended), so its last spans are searchable at once instead of up to a
    /// commit interval later; at most one such commit per quarter interval.
    /// `None` commits only on the interval.
    pub idle_commit: Option<Duration>,
    pub wal_segment_bytes: u64,
    /// Memory budget of tantivy's index writer.
    pub writer_memory_bytes: usize,
    pub index_threads: usize,
    /// Segments of a size class merged at once (tantivy's default is 8).
    pub merge_min_segments: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            max_backlog_bytes: 64 << 20,
            commit_interval: Duration::from_millis(1000),
            idle_commit: Some(Duration::from_millis(50)),
            wal_segment_bytes: 64 << 20,
            writer_memory_bytes: 256 << 20,
            index_threads: 2,
            merge_min_segments: 16,
        }
    }
}

/// Why a batch was not accepted. Nothing of a refused batch was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Indexing is behind; the sender should retry later.
    #[error("indexing is {backlog_bytes} bytes behind; retry later")]
    Backpressure { backlog_bytes: u64 },
    /// The pipeline is stopping or a background thread has failed.
    #[error("collector is not accepting spans: {0}")]
    Unavailable(String),
    /// The write-ahead log could not write or sync the batch.
    #[error("write-ahead log failed: {0}")]
    Wal(String),
}

/// Why the pipeline could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another lasthop process (a running collector?)")]
    Locked(PathBuf),
    /// The data directory could not be created or locked.
    #[error("cannot use data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The write-ahead log could not be opened or replayed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The span index could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tantivy::TantivyError> for OpenError {
    fn from(e: tantivy::TantivyError) -> Self {
        OpenError::Store(StoreError::Index(e))
    }
}

struct AppendJob {
    payload: Vec<u8>,
    records: Vec<SpanRecord>,
    reply: oneshot::Sender<Result<Lsn, String>>,
}

struct IndexJob {
    payload: Vec<u8>,
    records: Vec<SpanRecord>,
    end: Lsn,
}

/// State shared by the accepting side and the two threads.
struct Shared {
    stats: Stats,
    /// End LSN counting batches queued for the WAL.
    reserved: AtomicU64,
    indexed: AtomicU64,
    indexed_lock: Mutex<()>,
    indexed_changed: Condvar,
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        tracing::error!(reason = %why, "collector pipeline failed");
        self.failed.lock().expect("lock").get_or_insert(why);
        self.indexed_changed.notify_all();
    }

    fn set_indexed(&self, lsn: Lsn) {
        let _guard = self.indexed_lock.lock().expect("lock");
        self.indexed.store(lsn, Ordering::Release);
        self.indexed_changed.notify_all();
    }
}

/// The collector's write path over one data directory.
pub struct Pipeline {
    shared: Arc<Shared>,
    wal_tx: Option<Sender<AppendJob>>,
    threads: Vec<JoinHandle<()>>,
    store: SpanStore,
    options: PipelineOptions,
    _lock: File,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens the data directory, replays the WAL into the index, and starts the threads.
    pub fn open(data_dir: &Path, options: PipelineOptions) -> Result<Pipeline, OpenError> {
        Pipeline::open_observed(data_dir, options, None)
    }

    /// The same, handing `observer` every span it indexes from then on
    /// (see [`SpanObserver`]).
    pub fn open_observed(
        data_dir: &Path,
        options: PipelineOptions,
        observer: Option<Arc<dyn SpanObserver>>,
    ) -> Result<Pipeline, OpenError> {
        let io = |source| OpenError::Io {
            path: data_dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("LOCK"))
            .map_err(io)?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Locked(data_dir.to_owned()));
        }
        let index = store::open_index(&store::index_dir(data_dir), true)?;
        let mut writer: IndexWriter = index
            .writer_with_num_threads(options.index_threads.max(1), options.writer_memory_bytes)?;
        // A commit every second makes many small segments; merging them in
        // larger groups costs less CPU while spans keep arriving.
        let mut merge_policy = tantivy::merge_policy::LogMergePolicy::default();
        merge_policy.set_min_num_segments(options.merge_min_segments);
        writer.set_merge_policy(Box::new(merge_policy));
        let committed = committed_lsn(&index)?;
        let wal_dir = data_dir.join("wal");
        let (mut wal, report) = Wal::open(&wal_dir, options.wal_segment_bytes)?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                bytes = report.truncated_bytes,
                corrupt = report.truncated_corrupt,
                "wal tail truncated on open (never acknowledged)"
            );
        }
        if wal.end() < committed {
            tracing::warn!(
                wal_end = wal.end(),
                indexed = committed,
                "wal ends before the index; continuing after the index"
            );
            wal.skip_to(committed)?;
        }

        let shared = Arc::new(Shared {
            stats: Stats::default(),
            reserved: AtomicU64::new(wal.end()),
            indexed: AtomicU64::new(committed),
            indexed_lock: Mutex::new(()),
            indexed_changed: Condvar::new(),
            failed: Mutex::new(None),
        });
        let schema = SpanSchema::new();
        let (mut replayed, mut dropped) = (0u64, 0u64);
        let mut decode_error = None;
        let end = wal::replay(&wal_dir, committed, |_, payload| {
            for item in split_batch(payload) {
                match item.and_then(|bytes| Ok((postcard::from_bytes::<SpanRecord>(bytes)?, bytes)))
                {
                    Ok((record, bytes)) => {
                        if let Err(e) = writer.add_document(schema.document(&record, bytes)) {
                            decode_error.get_or_insert(e.to_string());
                            dropped += 1;
                        }
                        replayed += 1;
                    }
                    Err(e) => {
                        decode_error.get_or_insert(e.to_string());
                        dropped += 1;
                    }
                }
            }
        })?;
        if let Some(e) = decode_error {
            tracing::error!(error = %e, "some wal records could not be replayed");
        }
        if end > committed {
            commit(&mut writer, end)?;
            wal::remove_below(&wal_dir, end)?;
            tracing::info!(
                spans = replayed,
                from = committed,
                to = end,
                "replayed write-ahead log"
            );
        }
        shared.indexed.store(end, Ordering::Release);
        Stats::add(&shared.stats.replayed_spans, replayed);
        Stats::add(&shared.stats.dropped_spans, dropped);
        Stats::add(&shared.stats.indexed_spans, replayed);

        let store = SpanStore::from_index(index, ReloadPolicy::Manual)?;
        if let Some(observer) = &observer {
            observer.opened(&store);
        }
        let (wal_tx, wal_rx) = mpsc::channel::<AppendJob>();
        let (index_tx, index_rx) = mpsc::channel::<IndexJob>();
        let threads = vec![
            spawn("lasthop-wal", {
                let shared = shared.clone();
                move || wal_loop(wal, wal_rx, index_tx, &shared)
            }),
            spawn("lasthop-index", {
                let shared = shared.clone();
                let store = store.clone();
                let timing = CommitTiming {
                    interval: options.commit_interval,
                    idle: options.idle_commit,
                };
                move || {
                    let sinks = IndexSinks {
                        store: &store,
                        wal_dir: &wal_dir,
                        observer: observer.as_deref(),
                    };
                    index_loop(writer, index_rx, &shared, sinks, timing)
                }
            }),
        ];
        Ok(Pipeline {
            shared,
            wal_tx: Some(wal_tx),
            threads,
            store,
            options,
            _lock: lock,
        })
    }

    /// A reader that sees every commit of this pipeline.
    pub fn store(&self) -> &SpanStore {
        &self.store
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.shared.stats.snapshot(self.backlog_bytes())
    }

    fn backlog_bytes(&self) -> u64 {
        let reserved = self.shared.reserved.load(Ordering::Acquire);
        reserved.saturating_sub(self.shared.indexed.load(Ordering::Acquire))
    }

    /// Queues a batch for the WAL; the receiver yields its LSN once durable.
    fn submit(
        &self,
        records: Vec<SpanRecord>,
    ) -> Result<oneshot::Receiver<Result<Lsn, String>>, AcceptError> {
        if let Some(why) = self.shared.failed.lock().expect("lock").clone() {
            return Err(AcceptError::Unavailable(why));
        }
        let backlog = self.backlog_bytes();
        if backlog > self.options.max_backlog_bytes {
            Stats::add(&self.shared.stats.backpressure_requests, 1);
            return Err(AcceptError::Backpressure {
                backlog_bytes: backlog,
            });
        }
        let payload = encode_batch(&records)
            .map_err(|e| AcceptError::Wal(format!("cannot encode spans: {e}")))?;
        let (reply, rx) = oneshot::channel();
        self.shared
            .reserved
            .fetch_add(payload.len() as u64 + 8, Ordering::AcqRel);
        let tx = self
            .wal_tx
            .as_ref()
            .ok_or_else(|| AcceptError::Unavailable("shutting down".into()))?;
        tx.send(AppendJob {
            payload,
            records,
            reply,
        })
        .map_err(|_| AcceptError::Unavailable("write-ahead log thread stopped".into()))?;
        Ok(rx)
    }

    /// Makes `records` durable; returns the LSN that covers them.
    pub async fn accept(&self, records: Vec<SpanRecord>) -> Result<Lsn, AcceptError> {
        if records.is_empty() {
            return Ok(self.shared.reserved.load(Ordering::Acquire));
        }
        let rx = self.submit(records)?;
        rx.await
            .map_err(|_| AcceptError::Unavailable("write-ahead log thread stopped".into()))?
            .map_err(AcceptError::Wal)
    }

    /// [`Pipeline::accept`] for callers outside an async runtime.
    pub fn accept_blocking(&self, records: Vec<SpanRecord>) -> Result<Lsn, AcceptError> {
        if records.is_empty() {
            return Ok(self.shared.reserved.load(Ordering::Acquire));
        }
        let rx = self.submit(records)?;
        rx.blocking_recv()
            .map_err(|_| AcceptError::Unavailable("write-ahead log thread stopped".into()))?
            .map_err(AcceptError::Wal)
    }

    /// Waits until the index backlog is at most half the limit, so a bulk
    /// loader can go on without being refused. Returns false on timeout or failure.
    pub fn wait_for_room(&self, timeout: Duration) -> bool {
        let reserved = self.shared.reserved.load(Ordering::Acquire);
        let target = reserved.saturating_sub(self.options.max_backlog_bytes / 2);
        self.wait_indexed(target, timeout)
    }

    /// The LSN that covers every batch accepted so far.
    pub fn accepted_lsn(&self) -> Lsn {
        self.shared.reserved.load(Ordering::Acquire)
    }

    /// Waits until everything up to `lsn` is indexed and searchable.
    /// Returns false on timeout or pipeline failure.
    pub fn wait_indexed(&self, lsn: Lsn, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.indexed_lock.lock().expect("lock");
        loop {
            if self.shared.indexed.load(Ordering::Acquire) >= lsn {
                return true;
            }
            if self.shared.failed.lock().expect("lock").is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .shared
                .indexed_changed
                .wait_timeout(guard, deadline - now)
                .expect("lock")
                .0;
        }
    }

    /// Stops accepting, writes and indexes everything pending, and returns the final counters.
    pub fn shutdown(mut self) -> StatsSnapshot {
        self.stop();
        self.snapshot()
    }

    fn stop(&mut self) {
        self.wal_tx = None;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a collector thread panicked during shutdown");
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn collector thread")
}

/// Group commit: write every queued batch, one fdatasync, then acknowledge them all.
fn wal_loop(mut wal: Wal, rx: Receiver<AppendJob>, index_tx: Sender<IndexJob>, shared: &Shared) {
    const MAX_GROUP_BYTES: usize = 16 << 20;
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut bytes = group[0].payload.len();
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.payload.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let start = wal.end();
        let mut ends = Vec::with_capacity(group.len());
        let result = group
            .iter()
            .try_for_each(|job| wal.append(&job.payload).map(|end| ends.push(end)))
            .and_then(|()| wal.sync());
        if let Err(e) = result {
            let why = e.to_string();
            shared.fail(why.clone());
            for job in group {
                let _ = job.reply.send(Err(why.clone()));
            }
            continue;
        }
        Stats::add(&shared.stats.wal_bytes, wal.end() - start);
        for (job, end) in group.into_iter().zip(ends) {
            let n = job.records.len() as u64;
            let index_job = IndexJob {
                payload: job.payload,
                records: job.records,
                end,
            };
            if index_tx.send(index_job).is_err() {
                // The index thread is gone: the batch is durable and will be replayed on restart.
                shared.fail("index thread stopped".into());
            }
            Stats::add(&shared.stats.acknowledged_spans, n);
            let _ = job.reply.send(Ok(end));
        }
    }
}

/// When the index thread commits what it has added.
#[derive(Clone, Copy)]
struct CommitTiming {
    interval: Duration,
    idle: Option<Duration>,
}

impl CommitTiming {
    /// When pending documents are due: a commit interval after the first of
    /// them, or once the input has been quiet for `idle`, but not sooner than
    /// a quarter interval after the last commit of this run (a trickle of
    /// spans must not turn into a commit, and a tiny segment, per span).
    fn due_at(
        &self,
        first_pending: Instant,
        last_job: Instant,
        last_commit: Option<Instant>,
    ) -> Instant {
        let on_interval = first_pending + self.interval;
        let Some(idle) = self.idle else {
            return on_interval;
        };
        let quiet = last_job + idle;
        let early = match last_commit {
            Some(at) => quiet.max(at + self.interval / 4),
            None => quiet,
        };
        on_interval.min(early)
    }
}

/// Where the index thread's commits go besides the index.
struct IndexSinks<'a> {
    /// Reloaded after each commit.
    store: &'a SpanStore,
    /// Segments below each commit are deleted.
    wal_dir: &'a Path,
    /// Handed each batch's spans once they are added.
    observer: Option<&'a dyn SpanObserver>,
}

fn index_loop(
    mut writer: IndexWriter,
    rx: Receiver<IndexJob>,
    shared: &Shared,
    sinks: IndexSinks<'_>,
    timing: CommitTiming,
) {
    let IndexSinks {
        store,
        wal_dir,
        observer,
    } = sinks;
    let schema = SpanSchema::new();
    let mut last_commit = None;
    let mut last_job = Instant::now();
    // Since when documents wait for a commit, the WAL end they reach, and how many.
    let mut pending: Option<(Instant, Lsn, u64)> = None;
    loop {
        let received = match pending {
            Some((first, _, _)) => {
                let due = timing.due_at(first, last_job, last_commit);
                rx.recv_timeout(due.saturating_duration_since(Instant::now()))
            }
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let disconnected = match received {
            Ok(job) => {
                let n = job.records.len() as u64;
                let docs = split_batch(&job.payload).zip(&job.records);
                for (bytes, record) in docs {
                    let added = bytes.map_err(|e| e.to_string()).and_then(|b| {
                        writer
                            .add_document(schema.document(record, b))
                            .map_err(|e| e.to_string())
                    });
                    if let Err(e) = added {
                        shared.fail(format!("indexing failed: {e}"));
                        return;
                    }
                }
                if let Some(observer) = observer {
                    observer.indexed(job.records);
                }
                last_job = Instant::now();
                pending = Some(match pending {
                    Some((first, _, count)) => (first, job.end, count + n),
                    None => (last_job, job.end, n),
                });
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = |&(first, _, _): &(Instant, Lsn, u64)| {
            Instant::now() >= timing.due_at(first, last_job, last_commit)
        };
        if let Some((_, lsn, count)) = pending.filter(|p| disconnected || due(p)) {
            if let Err(e) = commit(&mut writer, lsn) {
                shared.fail(format!("index commit failed: {e}"));
                return;
            }
            if let Err(e) = store.reload() {
                tracing::warn!(error = %e, "reader reload failed");
            }
            // Counters first: whoever wakes on the new LSN must see them.
            Stats::add(&shared.stats.indexed_spans, count);
            Stats::add(&shared.stats.commits, 1);
            shared.stats.mark_commit();
            shared.set_indexed(lsn);
            if let Err(e) = wal::remove_below(wal_dir, lsn) {
                tracing::warn!(error = %e, "could not delete indexed wal segments");
            }
            pending = None;
            last_commit = Some(Instant::now());
        }
        if disconnected {
            let _ = writer.wait_merging_threads();
            return;
        }
    }
}

fn commit(writer: &mut IndexWriter, lsn: Lsn) -> Result<(), tantivy::TantivyError> {
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&format!("{{\"wal_lsn\":{lsn}}}"));
    prepared.commit()?;
    Ok(())
}

/// The WAL position the index's last commit holds everything below.
fn committed_lsn(index: &Index) -> Result<Lsn, OpenError> {
    let payload = index.load_metas()?.payload;
    let lsn = payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|v| v.get("wal_lsn")?.as_u64());
    Ok(lsn.unwrap_or(0))
}

/// A batch payload: each record as `[u32 LE length][postcard bytes]`, so the
/// index can store each record's bytes without encoding it again.
fn encode_batch(records: &[SpanRecord]) -> Result<Vec<u8>, postcard::Error> {
    let mut out = Vec::with_capacity(records.len() * 256);
    for record in records {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        out = postcard::to_extend(record, out)?;
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    Ok(out)
}

fn split_batch(payload: &[u8]) -> impl Iterator<Item = Result<&[u8], postcard::Error>> {
    let mut rest = payload;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            rest = &[];
            return Some(Err(postcard::Error::DeserializeUnexpectedEnd));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            rest = &[];
            return Some(Err(postcard::Error::DeserializeUnexpectedEnd));
        }
        let (item, tail) = tail.split_at(len);
        rest = tail;
        Some(Ok(item))
    })
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
