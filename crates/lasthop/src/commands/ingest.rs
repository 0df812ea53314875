//! `lasthop ingest`: load span files into the store through the same
//! write-ahead log and index as the collector.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lasthop_collector::{AcceptError, Pipeline, PipelineOptions};
use lasthop_vocab::SpanRecord;

use crate::cli::IngestArgs;

/// Spans handed to the pipeline at once.
const BATCH: usize = 5_000;

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let data = &args.data.path;
    let pipeline = Pipeline::open(data, PipelineOptions::default())
        .with_context(|| format!("cannot open {} for loading", data.display()))?;
    let (mut loaded, mut bad_total, mut unreadable) = (0u64, 0usize, 0usize);
    for path in &args.files {
        let mut batch: Vec<SpanRecord> = Vec::new();
        let mut failure: Option<AcceptError> = None;
        let mut flush = |batch: &mut Vec<SpanRecord>| {
            if failure.is_none()
                && !batch.is_empty()
                && let Err(e) = accept(&pipeline, std::mem::take(batch))
            {
                failure = Some(e);
            }
        };
        let format = args.input_format.map(|f| f.reader());
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
                loaded += summary.spans;
                bad_total += summary.bad.len();
            }
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                unreadable += 1;
            }
        }
    }
    pipeline.shutdown();
    let stored = lasthop_collector::SpanStore::open(data)?.count();
    println!(
        "loaded {loaded} spans into {} ({stored} stored in all); {bad_total} bad records, {unreadable} unreadable files",
        data.display(),
    );
    Ok(if unreadable > 0 || (bad_total > 0 && loaded == 0) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
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
