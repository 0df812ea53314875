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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::http::StatusCode;
    use axum::routing::post;

    use super::*;
    use crate::Verdict;
    use crate::live::feed::EventKind;
    use crate::report::LostMessage;

    fn event(id: &str) -> LiveEvent {
        LiveEvent {
            seq: 1,
            event: EventKind::Lost,
            judged_at: "2026-12-04T00:00:00.000Z".into(),
            message: LostMessage {
                message_id: id.into(),
                keys: vec!["ORDER_1".into()],
                topic: Some("paid".into()),
                group: None,
                broker: Some("b1".into()),
                sent_at: None,
                verdict: Verdict::LostAtFlush,
                hop: Some("flush".into()),
                cause: None,
                explanation: "it was lost".into(),
                fix: None,
            },
            previous_verdict: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_alert_is_tried_again_until_the_webhook_takes_it() {
        // The receiver answers 503 twice, then takes what comes, in order.
        let got = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
        let refusals = Arc::new(AtomicU64::new(0));
        let app = axum::Router::new().route(
            "/hook",
            post({
                let (got, refusals) = (got.clone(), refusals.clone());
                move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                    if refusals.fetch_add(1, Ordering::Relaxed) < 2 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    got.lock().unwrap().push(body);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let counters = Arc::new(AlertCounters::default());
        let webhook = Webhook::start(url, counters.clone(), &tokio::runtime::Handle::current());
        webhook.send(event("M1"), &counters);
        webhook.send(event("M2"), &counters);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while counters.sent() < 2 {
            assert!(std::time::Instant::now() < deadline, "alerts not delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(counters.retried(), 2);
        assert_eq!(counters.failed(), 0);
        let got = got.lock().unwrap();
        let ids: Vec<&str> = got
            .iter()
            .map(|b| b["message_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["M1", "M2"]);
        assert_eq!(got[0]["event"], "lost");
        assert_eq!(got[0]["hop"], "flush");
    }
}
