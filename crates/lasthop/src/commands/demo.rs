//! `lasthop demo`: run the scenarios and tell, for each, what was injected,
//! what the ledgers say was lost, and what lasthop found.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use lasthop_samples::{DemoOptions, ScenarioOutcome};

use crate::data_dir::DataDir;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Scenarios to run: power-loss, swallowed-exception, consumer-crash,
    /// disk-loss, network-flap, poison, tx-check-back, reliable, or all.
    #[arg(value_name = "SCENARIO", default_value = "all")]
    pub scenarios: Vec<String>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the lasthop executable")?;
    let data = args.data.path.clone();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcomes = runtime
        .block_on(until_interrupted(lasthop_samples::run(DemoOptions {
            exe,
            data: data.clone(),
            scenarios: args.scenarios,
        })))
        .map_err(anyhow::Error::msg)?;
    let mut wrong = 0;
    for o in &outcomes {
        print_outcome(o);
        wrong += o.false_lost.len() + o.missed.len() + o.misattributed.len();
    }
    let example = outcomes.iter().flat_map(|o| o.found.first()).next();
    println!("The spans are in {}. Next:", data.display());
    if let Some(f) = example {
        println!(
            "  lasthop query --data {} --key {} --grace 0",
            data.display(),
            f.order
        );
    }
    println!(
        "  lasthop report --data {} --grace 0 --format html --out report.html",
        data.display()
    );
    println!(
        "  lasthop ui --data {} --grace 0      # then open http://127.0.0.1:16686/",
        data.display()
    );
    Ok(if wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs `work` unless Ctrl-C comes first; then `work` is dropped, and with
/// it the broker and consumer processes it started (they are killed on drop).
pub(super) async fn until_interrupted<T>(
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err("interrupted; the brokers it started were stopped".into()),
    }
}

fn print_outcome(o: &ScenarioOutcome) {
    println!("== {}", o.name);
    println!("   injected: {}", o.injected);
    let lost: Vec<&str> = o.lost.iter().map(String::as_str).collect();
    println!(
        "   ledgers:  {} orders paid, {} red packets missing{}",
        o.paid,
        lost.len(),
        if lost.is_empty() {
            String::new()
        } else {
            format!(": {}", lost.join(" "))
        }
    );
    if o.found.is_empty() {
        println!("   lasthop:  no message lost");
    }
    for f in &o.found {
        println!(
            "   lasthop:  {} {} at {}",
            f.order,
            f.verdict.as_str(),
            f.hop.as_deref().unwrap_or("?")
        );
        println!("             {}", f.explanation);
        if let Some(fix) = &f.fix {
            println!("             fix: {fix}");
        }
    }
    if o.false_lost.is_empty() && o.missed.is_empty() && o.misattributed.is_empty() {
        match o.expected {
            Some(v) => println!(
                "   every loss found, at {}; nothing called lost that arrived\n",
                v.as_str()
            ),
            None => println!("   nothing lost, nothing called lost\n"),
        }
    } else {
        println!(
            "   MISMATCH: called lost but granted {:?}; lost but not found {:?}; found at another hop {:?}\n",
            o.false_lost, o.missed, o.misattributed
        );
    }
}
