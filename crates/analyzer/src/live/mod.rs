//! Live judging in the collector: messages are judged as their spans
//! arrive, with the same rules as `report`, and each is settled once its
//! verdict can no longer change by waiting (see [`state`] for the
//! lifecycle and bounds). Each settled verdict is counted in Prometheus
//! metrics; each loss, and each settled verdict a late span changes, goes
//! to the feed (`/api/live/losses`, `lasthop watch`) and to the webhook.
//!
//! ```text
//! collector index thread --SpanObserver::indexed (each batch, handed over)--> bounded queue --> live thread:
//!     LiveState::observe; LiveState::judge_due when due --> Settled
//!         --> metrics (judged, lost, changed) --> feed --> webhook task (tokio)
//! ```
//!
//! The queue is bounded: a judge that falls behind holds back indexing,
//! and the collector then pushes back on senders. Nothing is dropped.

mod api;
mod context;
pub mod feed;
mod metrics;
mod plain;
pub mod state;
mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lasthop_collector::{Plugins, SpanObserver, SpanStore};
use lasthop_vocab::SpanRecord;

pub use feed::{EventKind, LiveEvent};
pub use state::{LiveOptions, LiveState, SettleReason, Settled};

use crate::report::{LostMessage, rfc3339_ms};
use feed::Feed;
use metrics::{Families, LiveMetrics};
use webhook::{AlertCounters, Webhook};

/// Span batches waiting for the live thread (one per accepted request, up
/// to an OTLP batch of 512 spans or so each).
const QUEUE_BATCHES: usize = 1024;
/// Longest the live thread sleeps between looks at what is due.
const TICK: Duration = Duration::from_millis(250);

/// What the live judge holds and has done, as its metrics and
/// `/api/live/status` show it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub open: usize,
    pub spans: u64,
    pub evicted: u64,
    pub forgotten: u64,
    pub judgings: u64,
    pub settled: u64,
}

/// Shared by the live thread, the metrics, the routes and the webhook.
#[derive(Debug)]
pub(crate) struct Shared {
    families: Families,
    feed: Feed,
    alerts: Arc<AlertCounters>,
    webhook: Option<Webhook>,
    status: Mutex<Status>,
    /// The collector's store, for a reopened message's earlier spans.
    store: OnceLock<SpanStore>,
    /// The live thread has ended (said once in the log).
    stopped: AtomicBool,
}

impl Shared {
    fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running live judge.
#[derive(Debug)]
pub struct LiveJudge {
    shared: Arc<Shared>,
    queue: SyncSender<Vec<SpanRecord>>,
    stop: Arc<AtomicBool>,
}

/// How the live judge is told of spans.
struct Observer(SyncSender<Vec<SpanRecord>>, Arc<Shared>);

impl SpanObserver for Observer {
    fn opened(&self, store: &SpanStore) {
        let _ = self.1.store.set(store.clone());
    }

    fn indexed(&self, records: Vec<SpanRecord>) {
        // Blocks while the live thread is behind (see the module doc).
        if self.0.send(records).is_err() && !self.1.stopped.swap(true, Ordering::Relaxed) {
            tracing::error!("the live judge has stopped: no more loss metrics or alerts");
        }
    }
}

impl LiveJudge {
    /// Starts judging (what [`Self::plugins`] hands the collector feeds
    /// it); `webhook` is a URL to POST alerts to, sent from `runtime`.
    pub fn start(
        options: LiveOptions,
        webhook: Option<String>,
        runtime: &tokio::runtime::Handle,
    ) -> LiveJudge {
        let alerts = Arc::new(AlertCounters::default());
        let webhook = webhook.map(|url| Webhook::start(url, alerts.clone(), runtime));
        let shared = Arc::new(Shared {
            families: Families::default(),
            feed: Feed::default(),
            alerts,
            webhook,
            status: Mutex::new(Status::default()),
            store: OnceLock::new(),
            stopped: AtomicBool::new(false),
        });
        let (queue, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_shared = shared.clone();
        let thread_stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("lasthop-live".into())
            .spawn(move || run(LiveState::new(options), rx, &thread_shared, &thread_stop));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the live judge");
        }
        LiveJudge {
            shared,
            queue,
            stop,
        }
    }

    /// The observer, routes and metrics to hand to the collector.
    pub fn plugins(&self) -> Plugins {
        Plugins {
            observer: Some(Arc::new(Observer(self.queue.clone(), self.shared.clone()))),
            routes: vec![{
                let shared = self.shared.clone();
                Arc::new(move |_: &SpanStore| api::router(shared.clone()))
            }],
            metrics: vec![Arc::new(LiveMetrics(self.shared.clone()))],
        }
    }

    /// Messages waiting for a verdict, spans taken in, judgings.
    pub fn status(&self) -> Status {
        self.shared.status()
    }
}

impl Drop for LiveJudge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run(
    mut state: LiveState,
    rx: mpsc::Receiver<Vec<SpanRecord>>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let earlier = |id: &str| match shared.store.get().map(|s| s.by_message_id(id)) {
        None => Vec::new(),
        Some(Ok(spans)) => spans,
        Some(Err(e)) => {
            tracing::warn!(error = %e, message_id = id, "cannot read a message's earlier spans");
            Vec::new()
        }
    };
    let mut settled_total = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = now_ns();
        let wait = state.next_due().map_or(TICK, |due| {
            Duration::from_nanos(due.saturating_sub(now)).min(TICK)
        });
        match rx.recv_timeout(wait) {
            Ok(batch) => {
                state.observe(batch, now_ns());
                // Take in whatever else waits before judging.
                while let Ok(batch) = rx.try_recv() {
                    state.observe(batch, now_ns());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = now_ns();
        let settled = state.judge_due(now, &earlier);
        settled_total += settled.len() as u64;
        for s in settled {
            record(shared, s, now);
        }
        let c = state.counters;
        *shared.status.lock().unwrap_or_else(|e| e.into_inner()) = Status {
            open: state.open_messages(),
            spans: c.spans,
            evicted: c.evicted,
            forgotten: c.forgotten,
            judgings: c.judgings,
            settled: settled_total,
        };
    }
}

/// Counts a settled message and tells of its losses and changes.
fn record(shared: &Shared, settled: Settled, now: u64) {
    let Settled {
        message, previous, ..
    } = settled;
    let label = |s: &Option<String>| s.clone().unwrap_or_default();
    let topic = label(&message.topic);
    for v in &message.verdicts {
        let before = previous
            .as_ref()
            .and_then(|p| p.iter().find(|(g, _)| *g == v.group))
            .map(|(_, verdict)| *verdict);
        let kind = match before {
            None => {
                let labels = [
                    ("verdict", v.verdict.as_str().to_owned()),
                    ("topic", topic.clone()),
                    ("group", label(&v.group)),
                ];
                shared.families.judged.get_or_create(&labels).inc();
                v.verdict.is_lost().then_some(EventKind::Lost)
            }
            Some(old) if old == v.verdict => None,
            Some(old) => {
                let labels = [
                    ("from", old.as_str().to_owned()),
                    ("to", v.verdict.as_str().to_owned()),
                ];
                shared.families.changed.get_or_create(&labels).inc();
                tracing::warn!(message_id = %message.message_id, group = %label(&v.group), from = old.as_str(), to = v.verdict.as_str(), "a late span changed a settled verdict");
                match (old.is_lost(), v.verdict.is_lost()) {
                    (_, true) => Some(EventKind::Lost),
                    (true, false) => Some(EventKind::Recovered),
                    (false, false) => None,
                }
            }
        };
        let Some(kind) = kind else { continue };
        if kind == EventKind::Lost {
            let labels = [
                ("hop", v.hop.clone().unwrap_or_else(|| "unknown".into())),
                ("topic", topic.clone()),
                ("group", label(&v.group)),
                ("broker", label(&message.broker)),
            ];
            shared.families.lost.get_or_create(&labels).inc();
            (shared.families.last_lost.get_or_create(&labels)).set(now as f64 / 1e9);
            tracing::warn!(message_id = %message.message_id, keys = ?message.keys, group = %label(&v.group), verdict = v.verdict.as_str(), hop = v.hop.as_deref().unwrap_or("unknown"), "message lost");
        }
        let event = shared.feed.push(LiveEvent {
            seq: 0,
            event: kind,
            judged_at: rfc3339_ms(now),
            message: LostMessage::of(&message, v),
            previous_verdict: before,
        });
        if let Some(webhook) = &shared.webhook {
            webhook.send(event, &shared.alerts);
        }
    }
}
