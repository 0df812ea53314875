//! The producer: synchronous send with retries, asynchronous send with a
//! completion callback. The message id is assigned before the first attempt
//! and kept across retries; every attempt is a `send` span, and the attempt's
//! context travels in the message's `traceparent` property.

use lasthop_telemetry::int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use lasthop_vocab::attr;
use tokio::sync::Mutex;
use tracing::Instrument;

use super::connection::{ClientError, Connection};
use crate::protocol::{Request, Response, SendRequest, SendResult, SendStatus};
use crate::store::now_ms;
use crate::trace_context;

/// How a producer behaves.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub broker: String,
    pub group: String,
    /// Extra attempts after a failed one (RocketMQ's `retryTimesWhenSendFailed`, 2).
    pub retries: u32,
    /// How long one attempt waits for the broker.
    pub timeout: Duration,
}

impl ProducerConfig {
    pub fn new(broker: impl Into<String>) -> Self {
        ProducerConfig {
            broker: broker.into(),
            group: "lasthop-producer".into(),
            retries: 2,
            timeout: Duration::from_secs(3),
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub topic: String,
    pub keys: Vec<String>,
    pub tags: Option<String>,
    pub properties: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Every attempt failed; `attempts` says how many there were.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "send of message {msg_id} failed after {attempts} attempt{}: {last}",
    if *attempts == 1 { "" } else { "s" }
)]
pub struct SendError {
    pub msg_id: String,
    pub attempts: u32,
    pub last: ClientError,
}

/// Sends messages to one broker.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ProducerConfig,
    connection: Mutex<Option<Arc<Connection>>>,
    queues: AtomicU32,
    next_queue: AtomicU32,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new unique message id: process, time and a counter, in hex (RocketMQ's shape).
pub fn new_message_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08X}{:012X}{:08X}",
        std::process::id(),
        now_ms(),
        n as u32
    )
}

impl Producer {
    pub fn new(config: ProducerConfig) -> Producer {
        Producer {
            inner: Arc::new(Inner {
                config,
                connection: Mutex::new(None),
                queues: AtomicU32::new(0),
                next_queue: AtomicU32::new(0),
            }),
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, ClientError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_broken()) {
            return Ok(c.clone());
        }
        let c = Arc::new(
            Connection::connect(&self.inner.config.broker, self.inner.config.timeout).await?,
        );
        if self.inner.queues.load(Ordering::Relaxed) == 0 {
            let route = c
                .request(
                    &Request::Route {
                        topic: String::new(),
                    },
                    self.inner.config.timeout,
                )
                .await?;
            if let Response::Route { queues, .. } = route {
                self.inner.queues.store(queues.max(1), Ordering::Relaxed);
            }
        }
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Sends and waits for the broker's answer, retrying failed attempts.
    pub async fn send(&self, message: Message) -> Result<SendResult, SendError> {
        let msg_id = new_message_id();
        let config = &self.inner.config;
        let mut last = ClientError::Disconnected;
        let attempts = config.retries + 1;
        for attempt in 1..=attempts {
            match self.attempt(&msg_id, &message, attempt).await {
                Ok(result) => return Ok(result),
                Err(e) => last = e,
            }
        }
        Err(SendError {
            msg_id,
            attempts,
            last,
        })
    }

    /// Sends in the background; `callback` gets the outcome. A caller that
    /// ignores a failure here is the "ignored async failure" of the story.
    pub fn send_async(
        &self,
        message: Message,
        callback: impl FnOnce(Result<SendResult, SendError>) + Send + 'static,
    ) {
        let producer = self.clone();
        let parent = tracing::Span::current();
        tokio::spawn(async move { callback(producer.send(message).await) }.instrument(parent));
    }

    async fn attempt(
        &self,
        msg_id: &str,
        message: &Message,
        attempt: u32,
    ) -> Result<SendResult, ClientError> {
        let span = tracing::info_span!(
            "send",
            "otel.kind" = "producer",
            "otel.name" = format!("{} send", message.topic),
            "otel.status_code" = tracing::field::Empty,
            { attr::HOP } = "send",
            { attr::MESSAGING_SYSTEM } = "rocketmq",
            { attr::MESSAGING_OPERATION_TYPE } = "send",
            { attr::MESSAGING_MESSAGE_ID } = msg_id,
            { attr::MESSAGING_DESTINATION_NAME } = message.topic.as_str(),
            { attr::SEND_ATTEMPT } = int(attempt),
            { attr::SERVER_ADDRESS } = self.inner.config.broker.as_str(),
            { attr::SEND_STATUS } = tracing::field::Empty,
            { attr::ERROR_TYPE } = tracing::field::Empty,
            { attr::BROKER } = tracing::field::Empty,
            { attr::BROKER_EPOCH } = tracing::field::Empty,
            { attr::COMMITLOG_OFFSET } = tracing::field::Empty,
            { attr::MESSAGING_DESTINATION_PARTITION_ID } = tracing::field::Empty,
            { attr::QUEUE_OFFSET } = tracing::field::Empty,
        );
        trace_context::set_keys(&span, &message.keys);
        let mut properties = message.properties.clone();
        trace_context::inject(&span, &mut properties);
        let outcome = async {
            let connection = self.connection().await?;
            let queues = self.inner.queues.load(Ordering::Relaxed).max(1);
            let request = Request::Send(SendRequest {
                msg_id: msg_id.to_owned(),
                topic: message.topic.clone(),
                queue_id: Some(self.inner.next_queue.fetch_add(1, Ordering::Relaxed) % queues),
                keys: message.keys.clone(),
                tags: message.tags.clone(),
                properties,
                born_ms: now_ms(),
                body: message.body.clone(),
            });
            match connection
                .request(&request, self.inner.config.timeout)
                .await?
            {
                Response::Sent(result) => Ok(result),
                other => Err(ClientError::Refused(format!("unexpected answer {other:?}"))),
            }
        }
        .instrument(span.clone())
        .await;
        match &outcome {
            Ok(r) => {
                span.record(attr::SEND_STATUS, r.status.as_str());
                span.record(attr::BROKER, r.broker.as_str());
                span.record(attr::BROKER_EPOCH, int(r.epoch));
                span.record(attr::COMMITLOG_OFFSET, int(r.commitlog_offset));
                span.record(attr::MESSAGING_DESTINATION_PARTITION_ID, int(r.queue_id));
                span.record(attr::QUEUE_OFFSET, int(r.queue_offset));
                if r.status != SendStatus::SendOk {
                    span.record("otel.status_code", "ERROR");
                    span.record(attr::ERROR_TYPE, r.status.as_str());
                }
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.record(attr::ERROR_TYPE, error_type(e));
            }
        }
        outcome
    }
}

/// `error.type` of a failed attempt.
pub fn error_type(e: &ClientError) -> &'static str {
    match e {
        ClientError::Connect { .. } => "connect_error",
        ClientError::Disconnected => "connection_lost",
        ClientError::Timeout(_) => "timeout",
        ClientError::Refused(_) => "refused",
    }
}
