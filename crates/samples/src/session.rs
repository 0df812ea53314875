//! What the demo and a campaign share: an embedded collector whose data stays
//! in the data directory, the samples' own span export to it, and one
//! scenario run from plan to judged outcome.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lasthop_collector::{CollectorConfig, Plugins, RunningCollector, server};
use lasthop_telemetry::{self as telemetry, Telemetry};
use lasthop_vocab::Hop;

use crate::judge::{ScenarioOutcome, judge};
use crate::plan::Plan;
use crate::scenarios::{self, Env, Witness};

/// A collector and everything needed to run scenarios against it.
pub struct Session {
    collector: RunningCollector,
    telemetry: Telemetry,
    otlp: String,
    exe: PathBuf,
    data: PathBuf,
    /// Tells this session's topics, orders and directories from earlier ones in the same data directory.
    run_id: u64,
}

impl Session {
    /// Starts the collector on `data` (free loopback ports).
    pub async fn start(exe: PathBuf, data: PathBuf) -> Result<Session, String> {
        Session::start_with(exe, data, Plugins::default()).await
    }

    /// The same with `plugins` in the collector (a live judge, say).
    pub async fn start_with(
        exe: PathBuf,
        data: PathBuf,
        plugins: Plugins,
    ) -> Result<Session, String> {
        let mut config = CollectorConfig::ephemeral(data.clone());
        config.plugins = plugins;
        config.pipeline.commit_interval = Duration::from_millis(200);
        let collector = server::start(config).await.map_err(|e| e.to_string())?;
        let otlp = format!("http://{}", collector.grpc_addr);
        let telemetry = telemetry::init("red-packet-demo", Some(&otlp), "error")?;
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 100_000);
        Ok(Session {
            collector,
            telemetry,
            otlp,
            exe,
            data,
            run_id,
        })
    }

    /// The collector's query API address.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        self.collector.api_addr
    }

    /// The collector's OTLP/HTTP address.
    pub fn otlp_http_addr(&self) -> std::net::SocketAddr {
        self.collector.http_addr
    }

    /// The collector's store.
    pub fn store(&self) -> &lasthop_collector::SpanStore {
        self.collector.pipeline().store()
    }

    /// Runs one plan (the `index`-th of this session) and judges it once
    /// every span its processes exported has been indexed.
    pub async fn run(&self, plan: Plan, index: u64) -> Result<ScenarioOutcome, String> {
        let scenario = plan.scenario;
        let name = scenario.name;
        let tag = match plan.seed {
            Some(seed) => format!("{}-seed{seed}", self.run_id),
            None => self.run_id.to_string(),
        };
        let store = self.collector.pipeline().store().clone();
        let env = Env {
            exe: self.exe.clone(),
            dir: self.data.join("scenarios").join(format!("{name}-{tag}")),
            otlp: self.otlp.clone(),
            topic: format!(
                "order_paid_{}_{}",
                name.replace('-', "_"),
                tag.replace('-', "_")
            ),
            group: plan.workload.group().into(),
            base: self.run_id * 1_000_000_000 + (index + 1) * 10_000,
            // A broker's name and epoch identify one incarnation of its store:
            // brokers of different runs must not share a name.
            broker_name: format!("broker-{name}-{tag}"),
            plan: Arc::new(plan),
            processed: Witness(Arc::new(move |key: &str| {
                store.by_key(key).is_ok_and(|spans| {
                    spans
                        .iter()
                        .any(|s| s.hop == Some(Hop::Process) && !s.is_error())
                })
            })),
        };
        let story = scenarios::run(&env)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        self.telemetry.flush();
        let pipeline = self.collector.pipeline().clone();
        let lsn = pipeline.accepted_lsn();
        let indexed = tokio::task::spawn_blocking(move || {
            pipeline.wait_indexed(lsn, Duration::from_secs(20))
        })
        .await
        .unwrap_or(false);
        if !indexed {
            return Err("spans were not indexed in time".into());
        }
        judge(self.collector.pipeline().store(), scenario, &env, &story)
    }

    /// Stops exporting and the collector (its data stays); warns if any of the
    /// samples' own spans were dropped.
    pub async fn finish(self) -> Result<(), String> {
        let telemetry = self.telemetry;
        let report = tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .map_err(|e| e.to_string())?;
        self.collector.shutdown().await;
        if report.dropped > 0 {
            eprintln!("warning: {report}");
        }
        Ok(())
    }
}
