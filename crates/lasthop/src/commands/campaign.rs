//! `lasthop campaign`: seeded runs against real brokers, judged against the
//! ledgers; progress on stderr, the tally on stdout (text or JSON).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use lasthop_samples::campaign::{self, CampaignOptions, CampaignResult, RunReport, Tally};

use crate::data_dir::DataDir;
use crate::flags::OutputFormat;

#[derive(Debug, Args)]
pub struct CampaignArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// How many runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Run i is drawn from seed SEED + i; `--runs 1 --seed S` replays run S.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Orders paid per run (default: drawn between 3 and 12).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(2..=9000))]
    pub messages: Option<u32>,
    /// Output format of the summary (progress goes to stderr).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Keep every run's broker stores and ledgers (by default only those of
    /// runs where lasthop and the ledgers disagree are kept).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: CampaignArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the lasthop executable")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let options = CampaignOptions {
        exe,
        data: args.data.path.clone(),
        runs: args.runs,
        seed: args.seed,
        messages: args.messages,
    };
    let runs = args.runs;
    let keep = args.keep;
    let result = runtime
        .block_on(super::demo::until_interrupted(campaign::run(
            options,
            |report| progress(report, runs, keep),
        )))
        .map_err(anyhow::Error::msg)?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        OutputFormat::Text => print!("{}", table(&result)),
    }
    Ok(if result.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line per finished run; a clean run's stores and ledgers are removed
/// unless `keep` (its spans stay in the collector's data).
fn progress(report: RunReport<'_>, runs: u64, keep: bool) {
    let RunReport {
        index,
        seed,
        plan,
        outcome,
    } = report;
    let status = match outcome {
        Ok(o) => {
            let agreed = o.agrees() && (o.expected.is_some() || o.lost.is_empty());
            if agreed && !keep {
                let _ = std::fs::remove_dir_all(&o.dir);
            }
            format!(
                "lost {}, at the injected hop {}{}",
                o.lost.len(),
                o.attributed.len(),
                if agreed {
                    String::new()
                } else {
                    format!(
                        "; DISAGREE: missed {:?}, misattributed {:?}, false lost {:?} (kept in {})",
                        o.missed,
                        o.misattributed,
                        o.false_lost,
                        o.dir.display()
                    )
                }
            )
        }
        Err(e) => format!("ERROR: {e}"),
    };
    eprintln!("run {}/{runs} seed {seed}: {plan}: {status}", index + 1);
}

fn row(out: &mut String, name: &str, t: &Tally) {
    let _ = writeln!(
        out,
        "{name:<20} {:>6} {:>6} {:>11} {:>14} {:>7} {:>11}",
        t.runs, t.lost, t.attributed, t.misattributed, t.missed, t.false_lost
    );
}

/// The tally per fault class and in total, then every disagreement.
fn table(result: &CampaignResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "campaign from seed {} ({} runs)\n",
        result.seed, result.totals.runs
    );
    let _ = writeln!(
        out,
        "{:<20} {:>6} {:>6} {:>11} {:>14} {:>7} {:>11}",
        "fault", "runs", "lost", "attributed", "misattributed", "missed", "false_lost"
    );
    for (fault, tally) in &result.by_fault {
        row(&mut out, fault, tally);
    }
    row(&mut out, "total", &result.totals);
    if result.failures.is_empty() && result.errors.is_empty() {
        let _ = writeln!(
            out,
            "\nno disagreement: every loss found at its hop, nothing called lost that arrived"
        );
        return out;
    }
    let _ = writeln!(
        out,
        "\ndisagreements (replay one: lasthop campaign --runs 1 --seed SEED):"
    );
    for f in &result.failures {
        let _ = writeln!(
            out,
            "  seed {} {} {} (message {}): expected {}, got {}",
            f.seed,
            f.scenario,
            f.order,
            f.message_id.as_deref().unwrap_or("unknown"),
            f.expected,
            f.got
        );
    }
    for e in &result.errors {
        let _ = writeln!(
            out,
            "  seed {} {}: run failed: {}",
            e.seed, e.scenario, e.error
        );
    }
    out
}
