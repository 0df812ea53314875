//! Ingestion of historical inputs (DESIGN section 6): files of spans and logs
//! turned into [`SpanRecord`]s, for `lasthop ingest` (into a store, through
//! the collector's write-ahead log) and `lasthop report --input` (judged in
//! memory, or loaded into a temporary store first).
//!
//! One home per input format: each is a [`Reader`] in a file of its own
//! ([`otlp_json`], [`rocketmq_trace`], [`jsonl`]) and one entry in
//! [`InputFormat::ALL`]. The command line's `--input-format` values, the
//! content sniffing and the messages about each file all follow from that
//! list; nothing else names a format.
//!
//! Reading never stops at a bad record: it is reported as a [`BadRecord`]
//! (with its 1-based line) and the rest of the file is read. Only a file that
//! cannot be read at all is an error.

pub mod jsonl;
mod load;
pub mod otlp_json;
pub mod rocketmq_trace;
pub mod text_log;

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use lasthop_vocab::SpanRecord;

pub use load::{LoadError, Loaded, load_files};

/// A record that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based line number.
    pub line: u64,
    pub reason: String,
}

/// How sure a reader is that a file's first bytes are in its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sniff {
    /// Not this format.
    No,
    /// Any text could be this format: chosen when no other reader claims the file.
    Fallback,
    /// Looks like this format.
    Likely,
    /// Only this format has these bytes.
    Certain,
}

/// One input format.
pub trait Reader: Sync {
    /// The format's name on the command line (`--input-format`) and in messages.
    fn name(&self) -> &'static str;
    /// One line for `--help`.
    fn about(&self) -> &'static str;
    /// How sure this reader is that `head`, a file's first bytes (up to
    /// [`SNIFF_BYTES`]), starts a file in its format.
    fn sniff(&self, head: &[u8]) -> Sniff;
    /// Reads the file at `path`, handing its spans to `sink` in batches, and
    /// returns the records it could not read. `Err` only when the file
    /// itself cannot be read.
    fn read(
        &self,
        path: &Path,
        options: &ReadOptions,
        sink: &mut dyn FnMut(Vec<SpanRecord>),
    ) -> io::Result<Vec<BadRecord>>;
}

/// What a user can say about how inputs are read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// `--log-pattern`: how plain-text log lines are read, instead of the
    /// built-in logback/log4j layout (see [`text_log`]).
    pub log_pattern: Option<text_log::LogPattern>,
    /// `--max-reconsume-times`: RocketMQ's retries before the dead-letter
    /// queue (`None`: its default, 16).
    pub max_reconsume_times: Option<u64>,
    /// The topics of RocketMQ msgIds that other input files name (a
    /// consumer's trace records carry none), filled in by [`load_files`].
    pub rocketmq_topics: Option<std::sync::Arc<std::collections::HashMap<String, String>>>,
}

impl ReadOptions {
    /// RocketMQ's `maxReconsumeTimes` in force.
    pub fn max_reconsume_times(&self) -> u64 {
        self.max_reconsume_times.unwrap_or(16)
    }
}

/// How many bytes of a file content sniffing looks at.
pub const SNIFF_BYTES: usize = 8192;

/// An input format: a handle on its [`Reader`].
#[derive(Clone, Copy)]
pub struct InputFormat(&'static dyn Reader);

impl InputFormat {
    /// Every input format, in the order `--help` lists them; a tie in
    /// sniffing goes to the one listed first.
    pub const ALL: &'static [InputFormat] = &[
        InputFormat(&otlp_json::OtlpJson),
        InputFormat(&rocketmq_trace::RocketmqTrace),
        InputFormat(&jsonl::Jsonl),
        InputFormat(&text_log::TextLog),
    ];

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn about(self) -> &'static str {
        self.0.about()
    }

    /// The format called `name`.
    pub fn named(name: &str) -> Option<InputFormat> {
        Self::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// Tells the format from a file's first bytes: the reader surest of it.
    pub fn detect(head: &[u8]) -> InputFormat {
        let mut best = Self::ALL[0];
        let mut best_sniff = Sniff::No;
        for &format in Self::ALL {
            let sniff = format.0.sniff(head);
            if sniff > best_sniff {
                (best, best_sniff) = (format, sniff);
            }
        }
        best
    }

    /// Reads `path` in this format (see [`Reader::read`]).
    pub fn read(
        self,
        path: &Path,
        options: &ReadOptions,
        sink: &mut dyn FnMut(Vec<SpanRecord>),
    ) -> io::Result<Vec<BadRecord>> {
        self.0.read(path, options, sink)
    }
}

impl PartialEq for InputFormat {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for InputFormat {}

impl fmt::Debug for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for InputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::named(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
            format!(
                "no input format {s:?}; the formats are {}",
                names.join(", ")
            )
        })
    }
}

/// The format `path` is in: `format` when forced, else told from its first bytes.
pub fn format_of(path: &Path, format: Option<InputFormat>) -> io::Result<InputFormat> {
    if let Some(f) = format {
        return Ok(f);
    }
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    std::fs::File::open(path)?
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(InputFormat::detect(&head))
}

/// What reading a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub format: InputFormat,
    pub spans: u64,
    pub bad: Vec<BadRecord>,
}

/// A short, stable hash of a file's name: readers of inputs without span
/// ids make them from it and the record's position.
pub(crate) fn short_hash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Reads `path` in `format` (told from its content when `None`), handing
/// spans to `sink` in batches.
pub fn read_file(
    path: &Path,
    format: Option<InputFormat>,
    options: &ReadOptions,
    mut sink: impl FnMut(Vec<SpanRecord>),
) -> io::Result<FileRead> {
    let format = format_of(path, format)?;
    let mut spans = 0;
    let bad = format.read(path, options, &mut |records| {
        spans += records.len() as u64;
        sink(records);
    })?;
    Ok(FileRead { format, spans, bad })
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
