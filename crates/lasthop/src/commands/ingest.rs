//! `lasthop ingest`: load span files into the store through the same
//! write-ahead log and index as the collector (`lasthop_collector::ingest`).

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use lasthop_collector::ingest::InputFormat;
use lasthop_collector::ingest::{FileRead, load_files};
use lasthop_collector::{Pipeline, PipelineOptions};

use crate::data_dir::DataDir;
use crate::flags::{Reading, input_format};

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Format of every input file; without it each file's format is told from its content.
    #[arg(long, value_name = "FORMAT", value_parser = input_format())]
    pub input_format: Option<InputFormat>,
    #[command(flatten)]
    pub reading: Reading,
    /// Files to load.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Tells stderr how a file was read: each bad record (`file:line: reason`),
/// then its span count and format, or why it could not be read.
pub(crate) fn tell_file(path: &Path, read: &std::io::Result<FileRead>) {
    match read {
        Ok(summary) => {
            for bad in &summary.bad {
                eprintln!("{}:{}: {}", path.display(), bad.line, bad.reason);
            }
            eprintln!(
                "{}: {} spans ({})",
                path.display(),
                summary.spans,
                summary.format
            );
        }
        Err(e) => eprintln!("{}: cannot read: {e}", path.display()),
    }
}

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let data = &args.data.path;
    let pipeline = Pipeline::open(data, PipelineOptions::default())
        .with_context(|| format!("cannot open {} for loading", data.display()))?;
    let options = args.reading.options();
    let loaded = load_files(
        &pipeline,
        &args.files,
        args.input_format,
        &options,
        &mut tell_file,
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
