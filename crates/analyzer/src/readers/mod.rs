//! Historical inputs (DESIGN section 6): OTLP JSON, RocketMQ message-trace
//! records and JSON-lines logs, told apart by content unless a format is
//! forced. A bad record is reported with its line and the rest is read.

pub mod jsonl;
pub mod rocketmq_trace;

use std::path::Path;

use lasthop_vocab::SpanRecord;

/// A record that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based line number.
    pub line: u64,
    pub reason: String,
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    OtlpJson,
    RocketmqTrace,
    Jsonl,
}

impl InputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::OtlpJson => "otlp-json",
            InputFormat::RocketmqTrace => "rocketmq-trace",
            InputFormat::Jsonl => "jsonl",
        }
    }
}

/// What reading a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub format: InputFormat,
    pub spans: u64,
    pub bad: Vec<BadRecord>,
}

/// Tells the format from the first bytes of a file.
pub fn detect(head: &[u8]) -> InputFormat {
    if head.contains(&0x01) {
        return InputFormat::RocketmqTrace;
    }
    let text = String::from_utf8_lossy(head);
    if text.contains("resourceSpans") || text.contains("resource_spans") {
        InputFormat::OtlpJson
    } else {
        InputFormat::Jsonl
    }
}

pub(crate) fn short_hash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Reads `path` in `format` (detected when `None`), handing spans to `sink` in batches.
pub fn read_file(
    path: &Path,
    format: Option<InputFormat>,
    mut sink: impl FnMut(Vec<SpanRecord>),
) -> std::io::Result<FileRead> {
    let format = match format {
        Some(f) => f,
        None => {
            use std::io::Read;
            let mut head = vec![0u8; 8192];
            let n = std::fs::File::open(path)?.read(&mut head)?;
            detect(&head[..n])
        }
    };
    let source = path.display().to_string();
    match format {
        InputFormat::OtlpJson => {
            let mut spans = 0;
            let summary = lasthop_collector::otlp_json::read_file(path, |records| {
                spans += records.len() as u64;
                sink(records);
            })?;
            let bad = summary
                .bad
                .into_iter()
                .map(|b| BadRecord {
                    line: b.line,
                    reason: b.reason,
                })
                .collect();
            Ok(FileRead { format, spans, bad })
        }
        InputFormat::RocketmqTrace => {
            let data = std::fs::read(path)?;
            let (records, bad) = rocketmq_trace::read(&data, &source);
            let spans = records.len() as u64;
            sink(records);
            Ok(FileRead { format, spans, bad })
        }
        InputFormat::Jsonl => {
            let text = std::fs::read_to_string(path)?;
            let (records, bad) = jsonl::read(&text, &source);
            let spans = records.len() as u64;
            sink(records);
            Ok(FileRead { format, spans, bad })
        }
    }
}

#[cfg(test)]
#[path = "readers_tests.rs"]
mod tests;
