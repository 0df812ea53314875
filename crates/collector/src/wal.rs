//! Write-ahead log: what the collector has acknowledged, before it is indexed.
//!
//! ## Invariants
//! - A request is acknowledged only after its frame is written and the
//!   segment `fdatasync`ed; so every acknowledged span is in a complete frame.
//! - The tantivy index records, in its commit payload, the log position (LSN)
//!   it holds everything up to. Replay starts there, so nothing acknowledged is
//!   lost and nothing is indexed twice.
//! - Segments wholly below the indexed LSN are deleted; the active one never.
//!
//! ## On-disk layout
//! `wal/{start_lsn:020}.wal` segment files; the LSN is the byte position in the
//! log as a whole, so a segment's name is the LSN of its first byte. A frame is
//! `[u32 LE payload length][u32 LE crc32 of length and payload][payload]`.
//!
//! ## Lifecycle
//! On open the last segment is read to its valid end; a torn tail (a frame cut
//! short by a crash, never acknowledged) is truncated away. Writes append to the
//! last segment until it passes the segment size, then a new one starts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A position in the log: the byte offset just past a frame.
pub type Lsn = u64;

const HEADER: usize = 8;
/// Frames larger than this are corrupt by definition (requests are capped far lower).
const MAX_FRAME: u32 = 1 << 30;

/// What reading one frame found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome<'a> {
    /// A whole frame with a matching checksum.
    Value(&'a [u8]),
    /// The data ends inside the frame: a write cut short.
    Torn,
    /// The frame is whole but its checksum (or length) is wrong.
    Corrupt,
}

/// Reads the frame at the start of `buf`.
pub fn read_frame(buf: &[u8]) -> ReadOutcome<'_> {
    if buf.len() < HEADER {
        return ReadOutcome::Torn;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len == 0 && crc == 0 {
        // Zeroed space past the end of what was written (preallocation, a torn page).
        return ReadOutcome::Torn;
    }
    if len > MAX_FRAME {
        return ReadOutcome::Corrupt;
    }
    let Some(payload) = buf.get(HEADER..HEADER + len as usize) else {
        return ReadOutcome::Torn;
    };
    if checksum(len, payload) == crc {
        ReadOutcome::Value(payload)
    } else {
        ReadOutcome::Corrupt
    }
}

fn checksum(len: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The file system refused a read, write or sync.
    #[error("wal i/o error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A segment other than the last holds a bad frame: data written and synced was damaged.
    #[error("wal segment {path} is corrupt at byte {at}")]
    Corrupt { path: PathBuf, at: u64 },
    /// Replay was asked to start where no segment is.
    #[error("wal has no data at position {lsn} (log spans {first}..{end})")]
    Missing { lsn: Lsn, first: Lsn, end: Lsn },
    /// A payload too large for one frame.
    #[error("wal frame of {0} bytes is too large")]
    TooLarge(usize),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What opening the log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of torn tail removed from the last segment.
    pub truncated_bytes: u64,
    /// Whether the removed tail held a frame with a bad checksum (not just a cut-short one).
    pub truncated_corrupt: bool,
}

/// The appending side of the log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    active: File,
    active_path: PathBuf,
    active_start: Lsn,
    end: Lsn,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, truncating a torn tail.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(Wal, OpenReport), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segments = list_segments(dir)?;
        let mut report = OpenReport::default();
        let (start, path) = match segments.last() {
            Some((start, path)) => (*start, path.clone()),
            None => (0, segment_path(dir, 0)),
        };
        let mut active = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut data = Vec::new();
        active.read_to_end(&mut data).map_err(io_err(&path))?;
        let (valid, stop) = scan_frames(&data, |_| {});
        if (valid as usize) < data.len() {
            report.truncated_bytes = data.len() as u64 - valid;
            report.truncated_corrupt = stop == Some(ScanStop::Corrupt);
            active.set_len(valid).map_err(io_err(&path))?;
            active.sync_all().map_err(io_err(&path))?;
        }
        if segments.is_empty() {
            sync_dir(dir)?;
        }
        let wal = Wal {
            dir: dir.to_owned(),
            segment_bytes,
            active,
            active_path: path,
            active_start: start,
            end: start + valid,
        };
        Ok((wal, report))
    }

    /// The LSN just past the last frame.
    pub fn end(&self) -> Lsn {
        self.end
    }

    /// Appends one frame (not yet durable: call [`Wal::sync`]) and returns its end LSN.
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn, WalError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or(WalError::TooLarge(payload.len()))?;
        if self.end - self.active_start >= self.segment_bytes {
            self.roll()?;
        }
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&checksum(len, payload).to_le_bytes());
        frame.extend_from_slice(payload);
        if let Err(e) = self.active.write_all(&frame) {
            // Leave no partial frame behind: the next append must start clean.
            let _ = self.active.set_len(self.end - self.active_start);
            return Err(io_err(&self.active_path)(e));
        }
        self.end += frame.len() as u64;
        Ok(self.end)
    }

    /// Makes every appended frame durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.active.sync_data().map_err(io_err(&self.active_path))
    }

    /// Continues the log at `lsn` (past its end) in a fresh segment, so new
    /// frames never get positions an index has already claimed.
    pub fn skip_to(&mut self, lsn: Lsn) -> Result<(), WalError> {
        if lsn > self.end {
            self.sync()?;
            self.end = lsn;
            self.roll_at(lsn)?;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<(), WalError> {
        self.sync()?;
        self.roll_at(self.end)
    }

    fn roll_at(&mut self, start: Lsn) -> Result<(), WalError> {
        let path = segment_path(&self.dir, start);
        self.active = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.active_path = path;
        self.active_start = start;
        Ok(())
    }
}

/// Deletes the segments whose every frame lies below `lsn`. Returns how many.
/// Safe beside a writer: the last segment is never deleted.
pub fn remove_below(dir: &Path, lsn: Lsn) -> Result<usize, WalError> {
    let segments = list_segments(dir)?;
    let mut removed = 0;
    for pair in segments.windows(2) {
        let (next_start, _) = pair[1];
        if next_start <= lsn {
            fs::remove_file(&pair[0].1).map_err(io_err(&pair[0].1))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Calls `each(end_lsn, payload)` for every frame from `from` to the end of
/// the log. Returns the end LSN reached.
pub fn replay(dir: &Path, from: Lsn, mut each: impl FnMut(Lsn, &[u8])) -> Result<Lsn, WalError> {
    let segments = list_segments(dir)?;
    let Some(first) = segments.iter().rposition(|(start, _)| *start <= from) else {
        if segments.is_empty() && from == 0 {
            return Ok(0);
        }
        let first = segments.first().map_or(0, |s| s.0);
        return Err(WalError::Missing {
            lsn: from,
            first,
            end: first,
        });
    };
    let mut end = from;
    for (i, (start, path)) in segments.iter().enumerate().skip(first) {
        let mut file = File::open(path).map_err(io_err(path))?;
        let skip = from.saturating_sub(*start);
        file.seek(SeekFrom::Start(skip)).map_err(io_err(path))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io_err(path))?;
        let base = start + skip;
        let (valid, stop) = scan_frames(&data, |(frame_end, payload)| {
            each(base + frame_end, payload);
        });
        let is_last = i + 1 == segments.len();
        if stop.is_some() && !is_last {
            return Err(WalError::Corrupt {
                path: path.clone(),
                at: skip + valid,
            });
        }
        end = base + valid;
    }
    Ok(end)
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum ScanStop {
    Torn,
    Corrupt,
}

/// Walks whole frames; returns the valid length and why it stopped early, if it did.
fn scan_frames(data: &[u8], mut each: impl FnMut((u64, &[u8]))) -> (u64, Option<ScanStop>) {
    let mut pos = 0usize;
    while pos < data.len() {
        match read_frame(&data[pos..]) {
            ReadOutcome::Value(payload) => {
                pos += HEADER + payload.len();
                each((pos as u64, payload));
            }
            ReadOutcome::Torn => return (pos as u64, Some(ScanStop::Torn)),
            ReadOutcome::Corrupt => return (pos as u64, Some(ScanStop::Corrupt)),
        }
    }
    (pos as u64, None)
}

fn segment_path(dir: &Path, start: Lsn) -> PathBuf {
    dir.join(format!("{start:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, WalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let start = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<Lsn>().ok());
        if let Some(start) = start {
            segments.push((start, path));
        }
    }
    segments.sort();
    Ok(segments)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
