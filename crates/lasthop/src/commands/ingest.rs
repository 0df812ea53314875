//! `lasthop ingest`: load span files into the store through the same
//! write-ahead log and index as the collector.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lasthop_analyzer::readers::InputFormat;
use lasthop_collector::{AcceptError, Pipeline, PipelineOptions};
use lasthop_vocab::SpanRecord;

use crate::cli::IngestArgs;

/// Spans handed to the pipeline at once.
const BATCH: usize = 5_000;

/// What loading files gave.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub spans: u64,
    pub bad: usize,
    pub unreadable: usize,
}

/// Loads span files into `pipeline`, a batch at a time, telling stderr about
/// each file and each bad record (with file and line).
pub(crate) fn load_files(
    pipeline: &Pipeline,
    files: &[PathBuf],
    format: Option<InputFormat>,
) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
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
        let read = lasthop_analyzer::readers::read_file(path, format, |records| {
            batch.extend(records);
            if batch.len() >= BATCH {
                flush(&mut batch);
            }
        });
        flush(&mut batch);
        if let Some(e) = failure {
            return Err(e).with_context(|| format!("loading {} stopped", path.display()));
        }
        match read {
            Ok(summary) => {
                for bad in &summary.bad {
                    eprintln!("{}:{}: {}", path.display(), bad.line, bad.reason);
                }
                eprintln!(
                    "{}: {} spans ({})",
                    path.display(),
                    summary.spans,
                    summary.format.as_str()
                );
                loaded.spans += summary.spans;
                loaded.bad += summary.bad.len();
            }
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                loaded.unreadable += 1;
            }
        }
    }
    Ok(loaded)
}

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let data = &args.data.path;
    let pipeline = Pipeline::open(data, PipelineOptions::default())
        .with_context(|| format!("cannot open {} for loading", data.display()))?;
    let loaded = load_files(
        &pipeline,
        &args.files,
        args.input_format.map(|f| f.reader()),
    )?;
    pipeline.shutdown();
    let stored = lasthop_collector::SpanStore::open(data)?.count();
    println!(
        "loaded {} spans into {} ({stored} stored in all); {} bad records, {} unreadable files",
        loaded.spans,
        data.display(),
        loaded.bad,
        loaded.unreadable,
    );
    Ok(
        if loaded.unreadable > 0 || (loaded.bad > 0 && loaded.spans == 0) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Accepts a batch, first waiting for the index to have room: a bulk load
/// slows down to indexing speed instead of being refused.
fn accept(pipeline: &Pipeline, records: Vec<SpanRecord>) -> Result<(), AcceptError> {
    if !pipeline.wait_for_room(Duration::from_secs(60)) {
        return Err(AcceptError::Unavailable(
            "the index made no progress for a minute".into(),
        ));
    }
    pipeline.accept_blocking(records).map(|_| ())
}
