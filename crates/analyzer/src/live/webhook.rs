//! Loss alerts to a webhook: each [`LiveEvent`] POSTed as one JSON
//! document, in order, retried with exponential backoff. Never in the way
//! of ingestion: events wait in a bounded queue, and one that finds it
//! full, or that the webhook keeps refusing past the retries, is counted
//! as failed and logged (it stays in the feed and the metrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::feed::LiveEvent;

/// Alerts waiting for the webhook.
const QUEUE: usize = 10_000;
/// Tries per alert, the first included.
const ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of the alert path.
#[derive(Debug, Default)]
pub struct AlertCounters {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

impl AlertCounters {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The sending end: hands events to the webhook task.
#[derive(Debug, Clone)]
pub struct Webhook {
    queue: mpsc::Sender<LiveEvent>,
}

impl Webhook {
    /// Starts the task that POSTs to `url` on `runtime`.
    pub fn start(
        url: String,
        counters: Arc<AlertCounters>,
        runtime: &tokio::runtime::Handle,
    ) -> Webhook {
        let (queue, rx) = mpsc::channel(QUEUE);
        runtime.spawn(deliver(url, rx, counters));
        Webhook { queue }
    }

    /// Queues an alert; a full queue counts it as failed.
    pub fn send(&self, event: LiveEvent, counters: &AlertCounters) {
        if let Err(e) = self.queue.try_send(event) {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "loss alert not queued: the webhook is too far behind");
        }
    }
}

async fn deliver(url: String, mut rx: mpsc::Receiver<LiveEvent>, counters: Arc<AlertCounters>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the webhook client; alerts are not sent");
            return;
        }
    };
    while let Some(event) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let outcome = match client.post(&url).json(&event).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("answered {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(why) if attempt == ATTEMPTS => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%url, message_id = %event.message.message_id, reason = %why, attempts = ATTEMPTS, "loss alert given up");
                }
                Err(why) => {
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%url, reason = %why, retry_in_ms = backoff.as_millis() as u64, "loss alert failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
