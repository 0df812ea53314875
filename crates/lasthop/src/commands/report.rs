//! `lasthop report`: judge every message in a window (or in files) and
//! summarize the losses. The judging is the analyzer's
//! ([`lasthop_analyzer::judge`]): from the store, a window is judged a share
//! of its messages at a time (`--share-spans`), so memory stays bounded
//! however long the history; this command picks the source, draws the
//! progress and writes the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lasthop_analyzer::report::{ReportBuilder, Window};
use lasthop_analyzer::{JudgeOptions, JudgedAt, Progress, judge_spans, judge_window};
use lasthop_collector::ingest::InputFormat;
use lasthop_collector::ingest::{load_files, read_file};
use lasthop_collector::{Pipeline, PipelineOptions, SpanStore};
use lasthop_vocab::SpanRecord;

use crate::commands::ingest::tell_file;
use crate::data_dir::DataDir;
use crate::flags::{Judging, Reading, input_format, parse_time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    /// One self-contained page with charts; use with --out report.html.
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Ask a running collector's API instead of reading the data directory.
    #[arg(long, value_name = "URL", conflicts_with = "inputs")]
    pub server: Option<String>,
    /// Report over these files instead of the store (formats told apart by content).
    #[arg(long = "input", value_name = "FILE", num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Format of every --input file.
    #[arg(long, value_name = "FORMAT", requires = "inputs", value_parser = input_format())]
    pub input_format: Option<InputFormat>,
    #[command(flatten)]
    pub reading: Reading,
    /// Only spans that started at or after this time (RFC 3339 or epoch milliseconds).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only spans that started before this time (RFC 3339 or epoch milliseconds).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit with status 3 when any message was lost.
    #[arg(long)]
    pub fail_on_loss: bool,
    /// Spans whose records are judged at once when reading the store
    /// (about a kilobyte each). Messages plainly delivered or in flight are
    /// counted from fast fields in one pass over the window; their facts (80 bytes a
    /// message, about 20 a span) are held for 8 times this many spans at a
    /// time, the rest of a larger window's waiting in a temporary file (see
    /// --spool-dir) for their turn, so memory follows this however large the
    /// window.
    #[arg(long, default_value_t = 2_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub share_spans: u64,
    /// --input files larger than this in all (MiB) are first loaded into a
    /// temporary store and judged from it like the store, so that memory
    /// stays bounded however large they are; smaller ones are judged in
    /// memory. 0 always loads them.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub spool_above: u64,
    /// Where temporary files go: that temporary store (about 300 bytes per
    /// span), and the message facts of a window read in several shares (62
    /// bytes per message); both are removed afterwards. The system's
    /// temporary directory (TMPDIR) by default.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Judge every message from its records, also those whose columns
    /// already show them plainly delivered (slower; for checking).
    #[arg(long)]
    pub read_all: bool,
    #[command(flatten)]
    pub judging: Judging,
}

/// Most spans read through a collector's API for one report.
const MAX_SPANS: usize = 5_000_000;

/// The window's spans from a collector's `/api/spans`.
fn fetch_window(
    url: &str,
    since: Option<u64>,
    until: Option<u64>,
) -> anyhow::Result<Vec<SpanRecord>> {
    let endpoint = format!("{}/api/spans", url.trim_end_matches('/'));
    let mut query = vec![
        ("limit", (MAX_SPANS + 1).to_string()),
        ("start_ns", since.unwrap_or(0).to_string()),
    ];
    if let Some(until) = until {
        query.push(("end_ns", until.to_string()));
    }
    let response = reqwest::blocking::Client::new()
        .get(&endpoint)
        .query(&query)
        .send()
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .with_context(|| format!("{endpoint} did not answer JSON"))?;
    if !status.is_success() {
        bail!(
            "{endpoint} answered {status}: {}",
            body["errors"][0]["msg"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    let spans: Vec<SpanRecord> = serde_json::from_value(body["spans"].clone())
        .with_context(|| format!("{endpoint} sent spans lasthop cannot read"))?;
    if spans.len() > MAX_SPANS {
        // A part of a window would give a wrong report, not a smaller one.
        bail!(
            "the window holds more than {MAX_SPANS} spans, more than a report through --server \
             reads: narrow it with --since and --until, or run the report with --data where \
             the collector keeps its data"
        );
    }
    Ok(spans)
}

/// The spans of a window from a collector (`--server`) or from files (`--input`).
fn read_spans(
    args: &ReportArgs,
    since: Option<u64>,
    until: Option<u64>,
) -> anyhow::Result<Vec<SpanRecord>> {
    if let Some(url) = &args.server {
        return fetch_window(url, since, until);
    }
    let mut spans = Vec::new();
    let mut bad = 0;
    let options = args.reading.options();
    for path in &args.inputs {
        let read = read_file(path, args.input_format, &options, |r| spans.extend(r))
            .with_context(|| format!("cannot read {}", path.display()))?;
        bad += read.bad.len();
        tell_file(path, &Ok(read));
    }
    if spans.is_empty() && bad > 0 {
        bail!("no input could be read");
    }
    spans.retain(|s| since.is_none_or(|t| s.start_ns >= t) && until.is_none_or(|t| s.start_ns < t));
    Ok(spans)
}

/// The --input files loaded into a temporary store (removed when the
/// returned directory is dropped), so that they are judged like the store,
/// with bounded memory.
fn spool(args: &ReportArgs, input_bytes: u64) -> anyhow::Result<(SpanStore, tempfile::TempDir)> {
    let parent = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("lasthop-report-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot make a temporary store in {}", parent.display()))?;
    eprintln!(
        "inputs hold {} MiB: loading them into a temporary store in {} to judge them with bounded memory",
        input_bytes >> 20,
        dir.path().display()
    );
    let pipeline = Pipeline::open(dir.path(), PipelineOptions::default())
        .with_context(|| format!("cannot open a store in {}", dir.path().display()))?;
    let options = args.reading.options();
    let loaded = load_files(
        &pipeline,
        &args.inputs,
        args.input_format,
        &options,
        &mut tell_file,
    )?;
    pipeline.shutdown();
    if loaded.spans == 0 && loaded.bad + loaded.unreadable > 0 {
        bail!("no input could be read");
    }
    let store = SpanStore::open(dir.path())?;
    Ok((store, dir))
}

/// A bar on stderr when it is a terminal (nothing otherwise).
fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {human_pos}/{human_len} spans, {eta} left")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Judges the store's window with progress bars on a terminal.
fn judge_store(
    store: &SpanStore,
    window: (u64, u64),
    options: &JudgeOptions,
) -> anyhow::Result<ReportBuilder> {
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let progress = |event: Progress<'_>| {
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Progress::Phase { name, total } => *bar = Some(progress_bar(total, name)),
            Progress::Advance(n) => bar.iter().for_each(|b| b.inc(n)),
            Progress::Done => bar.take().iter().for_each(ProgressBar::finish_and_clear),
            Progress::Note(line) => eprintln!("{line}"),
        }
    };
    Ok(judge_window(store, window, options, &progress)?)
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_time).transpose()?;
    let until = args.until.as_deref().map(parse_time).transpose()?;
    let now = args.judging.now()?;
    let options = |at: JudgedAt| args.judging.options(at);
    let judging = |at: JudgedAt| JudgeOptions {
        share_spans: args.share_spans,
        read_all: args.read_all,
        spill_dir: args.spool_dir.clone(),
        rules: options(at),
    };
    let window = |at| Window::new(args.since.clone(), args.until.clone(), at);
    let window_ns = (since.unwrap_or(0), until.unwrap_or(u64::MAX));
    // A window with both ends has its timeline's buckets sized to it.
    let bounds = since.zip(until);
    let input_bytes: u64 = (args.inputs.iter())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let from_store = |store: &SpanStore| -> anyhow::Result<_> {
        let at = JudgedAt::resolve(now, store.newest_start_ns()?, until);
        Ok(judge_store(store, window_ns, &judging(at))?.finish_over(window(at), bounds))
    };
    let report = if args.server.is_none() && args.inputs.is_empty() {
        from_store(&SpanStore::open(&args.data.path)?)?
    } else if !args.inputs.is_empty() && input_bytes > args.spool_above << 20 {
        // The temporary store lives until the report is judged.
        let (store, _dir) = spool(&args, input_bytes)?;
        from_store(&store)?
    } else {
        let spans = read_spans(&args, since, until)?;
        let at = JudgedAt::resolve(now, spans.iter().map(|s| s.start_ns).max(), until);
        judge_spans(&spans, &options(at))?.finish_over(window(at), bounds)
    };
    let text = match args.format {
        ReportFormat::Text => report.to_text(),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Markdown => report.to_markdown(),
        ReportFormat::Html => report.to_html(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "report written to {} ({} messages, {} lost)",
                path.display(),
                report.totals.messages,
                report.lost()
            );
        }
        None => print!("{text}"),
    }
    Ok(if args.fail_on_loss && report.lost() > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
