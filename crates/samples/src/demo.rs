//! `lasthop demo`: an embedded collector, the scenarios against real broker
//! processes, and for each what was injected, what the ledgers say was lost,
//! and what lasthop found. The data stays in the data directory, so that
//! `lasthop query --key ORDER_...` and `lasthop report` work afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use lasthop_analyzer::{Evidence, Options, Verdict};
use lasthop_broker::telemetry;
use lasthop_collector::{CollectorConfig, SpanQuery, server};
use lasthop_vocab::attr;

use crate::scenarios::{self, Env, SCENARIOS, Scenario};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `lasthop` executable, to start brokers as processes.
    pub exe: PathBuf,
    pub data: PathBuf,
    /// Scenario names; empty: all.
    pub scenarios: Vec<String>,
}

/// What lasthop said about one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub order: String,
    pub verdict: Verdict,
    pub hop: Option<String>,
    pub explanation: String,
    pub fix: Option<String>,
}

/// One scenario's result: ledgers against verdicts.
#[derive(Debug, Clone)]
pub struct ScenarioOutcome {
    pub name: String,
    pub injected: String,
    pub paid: usize,
    /// Paid but no packet granted, by the ledgers.
    pub lost: BTreeSet<String>,
    /// Orders lasthop called lost.
    pub found: Vec<Finding>,
    /// Called lost though the ledger shows the packet granted.
    pub false_lost: BTreeSet<String>,
    /// Lost by the ledgers, not called lost.
    pub missed: BTreeSet<String>,
    /// The verdict this scenario's losses must get.
    pub expected: Option<Verdict>,
    /// Lost, and called lost, but at another hop than the injected one.
    pub misattributed: BTreeSet<String>,
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
    let mut config = CollectorConfig::ephemeral(options.data.clone());
    config.pipeline.commit_interval = Duration::from_millis(200);
    let collector = server::start(config).await.map_err(|e| e.to_string())?;
    let otlp = format!("http://{}", collector.grpc_addr);
    let telemetry = telemetry::init("red-packet-demo", Some(&otlp), "error")?;
    let mut outcomes = Vec::new();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 100_000);
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        let name = scenario.name;
        if !all && !options.scenarios.iter().any(|s| s == name) {
            continue;
        }
        let env = Env {
            exe: options.exe.clone(),
            dir: options
                .data
                .join("scenarios")
                .join(format!("{name}-{run_id}")),
            otlp: otlp.clone(),
            topic: format!("order_paid_{}_{run_id}", name.replace('-', "_")),
            group: "red-packet".into(),
            base: (i as u32 + 1) * 1000 + (run_id as u32 % 1000) * 10_000,
            broker_name: format!("broker-{name}"),
            processed: {
                let store = collector.pipeline().store().clone();
                scenarios::Witness(std::sync::Arc::new(move |key: &str| {
                    store.by_key(key).is_ok_and(|spans| {
                        spans
                            .iter()
                            .any(|s| s.hop == Some(lasthop_vocab::Hop::Process) && !s.is_error())
                    })
                }))
            },
        };
        eprintln!("running {name} ...");
        let story = scenarios::run(name, &env)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        telemetry.flush();
        let pipeline = collector.pipeline().clone();
        let lsn = pipeline.accepted_lsn();
        let indexed = tokio::task::spawn_blocking(move || {
            pipeline.wait_indexed(lsn, Duration::from_secs(20))
        })
        .await
        .unwrap_or(false);
        if !indexed {
            return Err("spans were not indexed in time".into());
        }
        outcomes.push(judge(&collector, scenario, &env, &story)?);
    }
    let report = tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .map_err(|e| e.to_string())?;
    collector.shutdown().await;
    if report.dropped > 0 {
        eprintln!("warning: {report}");
    }
    Ok(outcomes)
}

fn judge(
    collector: &server::RunningCollector,
    scenario: &Scenario,
    env: &Env,
    story: &scenarios::Story,
) -> Result<ScenarioOutcome, String> {
    let store = collector.pipeline().store();
    let query = SpanQuery {
        tags: vec![(attr::MESSAGING_DESTINATION_NAME.into(), env.topic.clone())],
        limit: 100_000,
        ..SpanQuery::default()
    };
    let spans = store
        .find(&query)
        .and_then(|s| store.with_context(s))
        .map_err(|e| e.to_string())?;
    let options = Options {
        grace_ns: 0,
        groups: vec![env.group.clone()],
        ..Options::default()
    };
    let verdicts = lasthop_analyzer::analyze(&Evidence::new(&spans), &options);
    let mut by_order: BTreeMap<String, Finding> = BTreeMap::new();
    for m in verdicts
        .iter()
        .filter(|m| m.topic.as_deref() == Some(env.topic.as_str()))
    {
        let Some(v) = m
            .verdicts
            .iter()
            .find(|v| v.group.as_deref() == Some(env.group.as_str()))
            .or(m.verdicts.first())
        else {
            continue;
        };
        for order in &m.keys {
            by_order.insert(
                order.clone(),
                Finding {
                    order: order.clone(),
                    verdict: v.verdict,
                    hop: v.hop.clone(),
                    explanation: v.explanation.clone(),
                    fix: v.fix.clone(),
                },
            );
        }
    }
    let lost: BTreeSet<String> = story.paid.difference(&story.granted).cloned().collect();
    // What lasthop said of each order the ledgers lost, and of any it called lost.
    let found: Vec<Finding> = by_order
        .values()
        .filter(|f| {
            f.verdict.is_lost() || (lost.contains(&f.order) && Some(f.verdict) == scenario.expected)
        })
        .cloned()
        .collect();
    let verdict_of = |order: &String| by_order.get(order).map(|f| f.verdict);
    let false_lost = found
        .iter()
        .filter(|f| f.verdict.is_lost() && story.granted.contains(&f.order))
        .map(|f| f.order.clone())
        .collect();
    let missed = lost
        .iter()
        .filter(|o| verdict_of(o).is_none_or(|v| !v.is_lost() && Some(v) != scenario.expected))
        .cloned()
        .collect();
    let misattributed = lost
        .iter()
        .filter(|o| verdict_of(o).is_some_and(|v| v.is_lost() && Some(v) != scenario.expected))
        .cloned()
        .collect();
    Ok(ScenarioOutcome {
        name: scenario.name.to_owned(),
        injected: scenario.injected.to_owned(),
        expected: scenario.expected,
        misattributed,
        paid: story.paid.len(),
        false_lost,
        missed,
        lost,
        found,
    })
}
