//! Loading files into a store: every file's spans go through a [`Pipeline`]
//! (the collector's write-ahead log and index) in batches, a bulk load
//! slowing down to indexing speed rather than being refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lasthop_vocab::SpanRecord;

use super::{FileRead, InputFormat, ReadOptions, format_of, read_file};
use crate::{AcceptError, Pipeline};

/// Spans handed to the pipeline at once.
const BATCH: usize = 5_000;

/// What loading files gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub spans: u64,
    /// Records that could not be read, in all files.
    pub bad: usize,
    /// Files that could not be read at all.
    pub unreadable: usize,
}

/// The store stopped taking spans; what was loaded before stays loaded.
#[derive(Debug, thiserror::Error)]
#[error("loading {} stopped", path.display())]
pub struct LoadError {
    /// The file being loaded.
    pub path: PathBuf,
    #[source]
    pub source: AcceptError,
}

/// Loads `files` (each in `format`, or told from its content, read as
/// `options` say) into
/// `pipeline`, a batch at a time. `on_file` hears how each file was read (or
/// why it could not be); an unreadable file is counted and the others load.
pub fn load_files(
    pipeline: &Pipeline,
    files: &[PathBuf],
    format: Option<InputFormat>,
    options: &ReadOptions,
    on_file: &mut dyn FnMut(&Path, &std::io::Result<FileRead>),
) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    let options = &with_rocketmq_topics(files, format, options);
    for path in files {
        let mut batch: Vec<SpanRecord> = Vec::new();
        let mut failure: Option<AcceptError> = None;
        let mut flush = |batch: &mut Vec<SpanRecord>| {
            if failure.is_none()
                && !batch.is_empty()
                && let Err(e) = accept(pipeline, std::mem::take(batch))
            {
                failure = Some(e);
            }
        };
        let read = read_file(path, format, options, |records| {
            batch.extend(records);
            if batch.len() >= BATCH {
                flush(&mut batch);
            }
        });
        flush(&mut batch);
        if let Some(source) = failure {
            let path = path.clone();
            return Err(LoadError { path, source });
        }
        on_file(path, &read);
        match read {
            Ok(summary) => {
                loaded.spans += summary.spans;
                loaded.bad += summary.bad.len();
            }
            Err(_) => loaded.unreadable += 1,
        }
    }
    Ok(loaded)
}

/// `options` with the topics every RocketMQ trace file's producer records
/// name, so that consumer records in other files are stored with theirs
/// (a store is searched by topic; records without one would not be found).
fn with_rocketmq_topics(
    files: &[PathBuf],
    format: Option<InputFormat>,
    options: &ReadOptions,
) -> ReadOptions {
    let rocketmq = InputFormat::named("rocketmq-trace");
    let mut topics = std::collections::HashMap::new();
    for path in files {
        if format_of(path, format).ok() == rocketmq
            && let Ok(data) = std::fs::read(path)
        {
            topics.extend(super::rocketmq_trace::topics(&data));
        }
    }
    ReadOptions {
        rocketmq_topics: (!topics.is_empty()).then(|| std::sync::Arc::new(topics)),
        ..options.clone()
    }
}

/// Accepts a batch, first waiting for the index to have room.
fn accept(pipeline: &Pipeline, records: Vec<SpanRecord>) -> Result<(), AcceptError> {
    if !pipeline.wait_for_room(Duration::from_secs(60)) {
        return Err(AcceptError::Unavailable(
            "the index made no progress for a minute".into(),
        ));
    }
    pipeline.accept_blocking(records).map(|_| ())
}
