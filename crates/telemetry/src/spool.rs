//! A crash-safe span spool (opt-in, `--span-spool DIR`).
//!
//! Without it, a span lives in process memory from its end until the batch
//! processor exports it (up to a scheduled delay later), so a `kill -9` in
//! that moment takes it along, and with it perhaps the only evidence that a
//! message was processed. With it, every ended span is first written to a file
//! and each export notes the last span it carried; the next process started on
//! the same spool sends what the killed one never exported.
//!
//! Invariants:
//! - a span is appended (one `write` to the file, no buffering) before the
//!   batch processor sees it, and in the order the batch queue gets spans
//!   (the enqueue happens under the file's lock), so once a span has ended, a killed process
//!   leaves it behind: the page cache outlives the process. Nothing is
//!   fsynced, so a power cut is not covered, and a span whose process dies
//!   before it ends is not covered either;
//! - the `exported` mark names the last span of the last export attempt (a
//!   failed export is counted as failed, not retried): exports are in the order
//!   spans ended, so what follows the mark was never attempted;
//! - one process at a time: the `lock` file is locked while the spool is open.
//!
//! On-disk layout, in the spool directory:
//! - `spans.spool` and, after a rotation, `spans.spool.old`: records
//!   `[len: u32 LE][crc32 of the rest: u32 LE][trace id: 16][span id: 8]
//!   [one ExportTraceServiceRequest holding the span]`;
//! - `exported`: trace id and span id of the mark (24 bytes);
//! - `replay-<n>.spool`: spans a previous process left unexported, in the
//!   same record format, deleted once they are sent.
//!
//! Lifecycle: [`Spool::open`] locks the directory, moves what follows the mark
//! into a replay file and starts an empty spool; spans are appended as they
//! end; past [`ROTATE_BYTES`] the file becomes `.old`, removed once an export
//! has gone past its end; a clean shutdown removes the spool files. OTLP
//! messages of one type concatenate into one message, so replay files are sent
//! as request bodies made of their records back to back.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use super::otlp_encode::encode_request;

/// Size at which the spool file is rotated.
pub(super) const ROTATE_BYTES: u64 = 64 << 20;
/// Bytes of a record before its request: length, checksum, trace id, span id.
const HEAD: usize = 4 + 4 + 16 + 8;

const SPOOL: &str = "spans.spool";
const OLD: &str = "spans.spool.old";
const MARK: &str = "exported";
const LOCK: &str = "lock";

/// A span's identity in the spool: trace id, then span id.
pub(super) type SpanKey = [u8; 24];

pub(super) fn key_of(span: &SpanData) -> SpanKey {
    let mut key = [0; 24];
    key[..16].copy_from_slice(&span.span_context.trace_id().to_bytes());
    key[16..].copy_from_slice(&span.span_context.span_id().to_bytes());
    key
}

/// One record read back from a spool file.
#[derive(Debug, PartialEq)]
pub(super) enum RecordRead<'a> {
    /// A whole record: the span's key and its encoded request.
    Value(SpanKey, &'a [u8]),
    /// The file ends inside a record (the process died while writing it).
    Torn,
    /// The checksum does not match.
    Corrupt,
}

/// Reads the record at the start of `bytes`; `None` at the end.
fn read_record(bytes: &[u8]) -> Option<(RecordRead<'_>, usize)> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() < 8 {
        return Some((RecordRead::Torn, bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let Some(rest) = bytes.get(8..8 + len) else {
        return Some((RecordRead::Torn, bytes.len()));
    };
    if len < HEAD - 8 || crc32fast::hash(rest) != crc {
        return Some((RecordRead::Corrupt, 8 + len));
    }
    let key: SpanKey = rest[..24].try_into().expect("24 bytes");
    Some((RecordRead::Value(key, &rest[24..]), 8 + len))
}

/// Whole records of `bytes`, up to the first torn or corrupt one.
fn records(bytes: &[u8]) -> Vec<(SpanKey, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((read, used)) = read_record(&bytes[at..]) {
        match read {
            RecordRead::Value(key, request) => out.push((key, request)),
            RecordRead::Torn | RecordRead::Corrupt => break,
        }
        at += used;
    }
    out
}

/// Appends a record's head (length and checksum still zero) and `key`; the
/// request follows, then [`seal`] with the returned start.
fn begin_record(key: &SpanKey, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(key);
    start
}

/// Fills in the length and checksum of the record begun at `start`.
fn seal(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn encode_record(key: &SpanKey, request: &[u8], out: &mut Vec<u8>) {
    let start = begin_record(key, out);
    out.extend_from_slice(request);
    seal(out, start);
}

#[derive(Debug)]
struct Current {
    file: File,
    bytes: u64,
    /// Spans appended to this file and to the files before it.
    appended: u64,
    /// Spans appended before the current file was started, if `.old` exists.
    old_until: Option<u64>,
}

/// An open spool (see the module documentation).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    current: Mutex<Current>,
    /// The process's resource, which every spooled request carries.
    resource: std::sync::RwLock<Resource>,
    mark: File,
    /// Spans whose export was attempted.
    handled: std::sync::atomic::AtomicU64,
    _lock: File,
}

/// A file's bytes; none if it does not exist.
fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        read => read,
    }
}

impl Spool {
    /// Opens (creating) the spool in `dir`. What a previous process left
    /// unexported is moved into a replay file; returns every replay file.
    pub fn open(dir: &Path) -> io::Result<(Spool, Vec<PathBuf>)> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))?;
        lock.try_lock()
            .map_err(|_| io::Error::new(io::ErrorKind::WouldBlock, "in use by another process"))?;
        let mark = read_file(&dir.join(MARK))?;
        let mut left = read_file(&dir.join(OLD))?;
        left.extend(read_file(&dir.join(SPOOL))?);
        let all = records(&left);
        let from = mark
            .get(..24)
            .and_then(|m| all.iter().rposition(|(key, _)| key[..] == *m))
            .map_or(0, |at| at + 1);
        if from < all.len() {
            let mut unsent = Vec::new();
            for (key, request) in &all[from..] {
                encode_record(key, request, &mut unsent);
            }
            let name = format!(
                "replay-{}-{}.spool",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis()),
                std::process::id()
            );
            std::fs::write(dir.join(name), unsent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join(SPOOL))?;
        let _ = std::fs::remove_file(dir.join(OLD));
        let mark = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join(MARK))?;
        let spool = Spool {
            dir: dir.to_owned(),
            current: Mutex::new(Current {
                file,
                bytes: 0,
                appended: 0,
                old_until: None,
            }),
            resource: std::sync::RwLock::new(Resource::builder_empty().build()),
            mark,
            handled: Default::default(),
            _lock: lock,
        };
        let files = spool.replay_files()?;
        Ok((spool, files))
    }

    fn replay_files(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("replay-") && n.ends_with(".spool"))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    pub(super) fn set_resource(&self, resource: &Resource) {
        *self
            .resource
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = resource.clone();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `span` to the spool, then hands it to `enqueue` (the batch
    /// queue) under the same lock, so that the file holds spans in the order
    /// they are exported. `enqueue` runs even if the write fails.
    pub(super) fn append(&self, span: SpanData, enqueue: impl FnOnce(SpanData)) -> io::Result<()> {
        let mut record = Vec::with_capacity(HEAD + 1024);
        let start = begin_record(&key_of(&span), &mut record);
        {
            let resource = self
                .resource
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            encode_request(std::slice::from_ref(&span), &resource, &mut record);
        }
        seal(&mut record, start);
        let mut current = self.lock();
        let written = current.file.write_all(&record);
        enqueue(span);
        written?;
        current.bytes += record.len() as u64;
        current.appended += 1;
        if current.bytes >= ROTATE_BYTES && current.old_until.is_none() {
            std::fs::rename(self.dir.join(SPOOL), self.dir.join(OLD))?;
            current.file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(self.dir.join(SPOOL))?;
            current.bytes = 0;
            current.old_until = Some(current.appended);
        }
        Ok(())
    }

    /// Notes that an export of `n` spans, the last one `last`, was attempted.
    pub(super) fn exported(&self, n: u64, last: &SpanKey) -> io::Result<()> {
        self.mark.write_all_at(last, 0)?;
        let handled = self
            .handled
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
            + n;
        let mut current = self.lock();
        if current.old_until.is_some_and(|until| handled >= until) {
            std::fs::remove_file(self.dir.join(OLD))?;
            current.old_until = None;
        }
        Ok(())
    }

    /// After a clean shutdown every span's export was attempted: nothing to keep.
    pub(super) fn close(&self) -> io::Result<()> {
        for name in [SPOOL, OLD, MARK] {
            match std::fs::remove_file(self.dir.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Request bodies for a replay file's records, each up to about `max` bytes,
/// with how many spans each holds.
pub(super) fn replay_bodies(path: &Path, max: usize) -> io::Result<Vec<(Vec<u8>, u64)>> {
    let bytes = read_file(path)?;
    let mut bodies: Vec<(Vec<u8>, u64)> = Vec::new();
    for (_, request) in records(&bytes) {
        match bodies.last_mut() {
            Some((body, n)) if body.len() + request.len() <= max => {
                body.extend_from_slice(request);
                *n += 1;
            }
            _ => bodies.push((request.to_vec(), 1)),
        }
    }
    Ok(bodies)
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
