//! `lasthop demo`: an embedded collector, the scenarios against real broker
//! processes, and for each what was injected, what the ledgers say was lost,
//! and what lasthop found. The data stays in the data directory, so that
//! `lasthop query --key ORDER_...` and `lasthop report` work afterwards.

use std::path::PathBuf;

use crate::judge::ScenarioOutcome;
use crate::plan::Plan;
use crate::scenarios::SCENARIOS;
use crate::session::Session;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `lasthop` executable, to start brokers as processes.
    pub exe: PathBuf,
    pub data: PathBuf,
    /// Scenario names; empty: all.
    pub scenarios: Vec<String>,
}

/// Runs the scenarios; the collector's data stays in `options.data`.
pub async fn run(options: DemoOptions) -> Result<Vec<ScenarioOutcome>, String> {
    let all = options.scenarios.is_empty() || options.scenarios.iter().any(|s| s == "all");
    for wanted in options.scenarios.iter().filter(|s| *s != "all") {
        if !SCENARIOS.iter().any(|s| s.name == wanted) {
            let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            return Err(format!(
                "no scenario {wanted:?}; choose from {} or all",
                names.join(", ")
            ));
        }
    }
    let session = Session::start(options.exe.clone(), options.data.clone()).await?;
    let mut outcomes = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        if !all && !options.scenarios.iter().any(|s| s == scenario.name) {
            continue;
        }
        eprintln!("running {} ...", scenario.name);
        outcomes.push(session.run(Plan::demo(scenario), i as u64).await?);
    }
    session.finish().await?;
    Ok(outcomes)
}
