//! The commit log: every message of every topic, appended in order.
//!
//! ## Invariants
//! - Offsets are global byte positions; a segment file is named by the
//!   offset of its first byte (`{offset:020}`), so segment `n + 1` starts
//!   where segment `n` ends. A record never spans two segments.
//! - `flushed <= end`: bytes below `flushed` are durable; above it they live
//!   in the page cache (or, in power-loss mode, in process memory).
//!
//! ## Lifecycle
//! On open every segment is read record by record (the consume queues are
//! rebuilt from what it finds). The log ends at the first record that is not
//! whole and valid; anything after it in the last segment is a torn or
//! corrupt tail and is cut away. A bad record in an older segment is data
//! that was synced and then damaged: an error, not a silent cut.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StoreError;
use super::backend::{Backend, StoreFile};
use super::record::{self, HEADER, ReadOutcome, StoredMessage};

/// What opening the log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Offset just past the last valid record.
    pub end: u64,
    /// Bytes cut from the tail of the last segment.
    pub truncated_bytes: u64,
    /// Whether the cut tail held a corrupt (not just torn) record.
    pub truncated_corrupt: bool,
}

#[derive(Debug)]
struct Segment {
    start: u64,
    file: Box<dyn StoreFile>,
}

/// The append-only commit log over a [`Backend`].
#[derive(Debug)]
pub struct CommitLog {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    segment_bytes: u64,
    segments: Vec<Segment>,
    end: u64,
    flushed: u64,
}

impl CommitLog {
    /// Opens the log, calling `each(offset, size, message)` for every valid record in order.
    pub fn open(
        backend: Arc<dyn Backend>,
        dir: &Path,
        segment_bytes: u64,
        mut each: impl FnMut(u64, u64, &StoredMessage),
    ) -> Result<(CommitLog, OpenReport), StoreError> {
        backend.create_dir_all(dir)?;
        let mut segments = Vec::new();
        for path in backend.list(dir)? {
            let Some(start) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push(Segment {
                start,
                file: backend.open(&path)?,
            });
        }
        let mut report = OpenReport::default();
        let count = segments.len();
        for (i, segment) in segments.iter_mut().enumerate() {
            let mut data = vec![0u8; segment.file.len() as usize];
            let n = segment.file.read_at(0, &mut data)?;
            data.truncate(n);
            let mut pos = 0usize;
            let mut stopped = None;
            while pos < data.len() {
                match record::decode(&data[pos..]) {
                    ReadOutcome::Value { message, size } => {
                        each(segment.start + pos as u64, size, &message);
                        pos += size as usize;
                    }
                    other => {
                        stopped = Some(other);
                        break;
                    }
                }
            }
            let last = i + 1 == count;
            if let Some(outcome) = stopped {
                if !last {
                    return Err(StoreError::Corrupt {
                        segment: segment.start,
                        offset: segment.start + pos as u64,
                    });
                }
                report.truncated_bytes = data.len() as u64 - pos as u64;
                report.truncated_corrupt = outcome == ReadOutcome::Corrupt;
                segment.file.truncate(pos as u64)?;
            }
            report.end = segment.start + pos as u64;
        }
        let log = CommitLog {
            dir: dir.to_owned(),
            backend,
            segment_bytes,
            segments,
            end: report.end,
            flushed: report.end,
        };
        Ok((log, report))
    }

    /// Offset just past the last record.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Offset below which every byte is durable.
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    /// Appends one encoded record; returns its offset. Not durable until [`CommitLog::flush`].
    pub fn append(&mut self, record: &[u8]) -> Result<u64, StoreError> {
        let needs_segment = match self.segments.last() {
            None => true,
            Some(s) => {
                !s.file.is_empty() && s.file.len() + record.len() as u64 > self.segment_bytes
            }
        };
        if needs_segment {
            self.roll()?;
        }
        let offset = self.end;
        let segment = self.segments.last_mut().expect("rolled");
        segment.file.append(record)?;
        self.end += record.len() as u64;
        Ok(offset)
    }

    /// Makes everything appended durable; returns the new flushed offset.
    pub fn flush(&mut self) -> Result<u64, StoreError> {
        if self.flushed < self.end {
            // Older segments were synced when the log rolled past them.
            if let Some(segment) = self.segments.last_mut() {
                segment.file.sync()?;
            }
            self.flushed = self.end;
        }
        Ok(self.flushed)
    }

    fn roll(&mut self) -> Result<(), StoreError> {
        if let Some(segment) = self.segments.last_mut() {
            segment.file.sync()?;
            self.flushed = self.end;
        }
        let path = self.dir.join(format!("{:020}", self.end));
        let file = self.backend.open(&path)?;
        self.segments.push(Segment {
            start: self.end,
            file,
        });
        Ok(())
    }

    /// Reads the record at `offset`.
    pub fn read(&self, offset: u64) -> Result<ReadOutcome, StoreError> {
        let Some(segment) = self.segment_of(offset) else {
            return Ok(ReadOutcome::Torn);
        };
        let at = offset - segment.start;
        let mut header = [0u8; HEADER];
        if segment.file.read_at(at, &mut header)? < HEADER {
            return Ok(ReadOutcome::Torn);
        }
        let Some(len) = record::announced_len(&header) else {
            return Ok(ReadOutcome::Corrupt);
        };
        let mut buf = vec![0u8; HEADER + len as usize];
        let n = segment.file.read_at(at, &mut buf)?;
        buf.truncate(n);
        Ok(record::decode(&buf))
    }

    /// Raw bytes from `offset` (at most `max` plus one record), whole records
    /// only: what a slave copies.
    pub fn read_raw(&self, offset: u64, max: usize) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let mut at = offset;
        while at < self.end && out.len() < max {
            let Some(segment) = self.segment_of(at) else {
                break;
            };
            let mut buf =
                vec![0u8; (segment.file.len() - (at - segment.start)).min(max as u64) as usize];
            let n = segment.file.read_at(at - segment.start, &mut buf)?;
            buf.truncate(n);
            let mut pos = 0;
            while pos < buf.len() {
                match record::decode(&buf[pos..]) {
                    ReadOutcome::Value { size, .. } => pos += size as usize,
                    _ => break,
                }
            }
            if pos == 0 {
                // One record larger than `max`: send it whole.
                match self.read(at)? {
                    ReadOutcome::Value { size, .. } => {
                        let mut one = vec![0u8; size as usize];
                        segment.file.read_at(at - segment.start, &mut one)?;
                        out.extend_from_slice(&one);
                        at += size;
                        continue;
                    }
                    _ => break,
                }
            }
            out.extend_from_slice(&buf[..pos]);
            at += pos as u64;
        }
        Ok(out)
    }

    fn segment_of(&self, offset: u64) -> Option<&Segment> {
        if offset >= self.end {
            return None;
        }
        let i = self
            .segments
            .partition_point(|s| s.start <= offset)
            .checked_sub(1)?;
        Some(&self.segments[i])
    }
}

#[cfg(test)]
#[path = "commit_log_tests.rs"]
mod tests;
