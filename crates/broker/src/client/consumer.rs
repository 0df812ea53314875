//! The consumer: pulls every queue of a topic for a group, hands each message
//! to the handler, and commits offsets.
//!
//! - `AckMode::AfterProcess` (the default) commits only offsets whose messages
//!   were processed; a failed message is retried from its offset.
//! - `AckMode::OnReceive` commits a batch as soon as it arrives, before the
//!   handler runs: the auto-commit hazard, kept so it can be demonstrated.
//!
//! Spans: `receive` and `process` per message (joined to the message's
//! trace), `settle` per offset commit.

use lasthop_telemetry::int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lasthop_vocab::attr;
use tokio::sync::watch;

use super::connection::{ClientError, Connection};
use crate::protocol::{Request, Response, WireMessage};
use crate::trace_context::MessageContext;

/// When offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    AfterProcess,
    OnReceive,
}

/// What the handler made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessOutcome {
    Ok,
    /// Processing failed; the string is the error type.
    Failed(String),
}

/// How a consumer behaves.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub broker: String,
    pub group: String,
    pub topic: String,
    pub ack: AckMode,
    /// Messages per pull.
    pub batch: u32,
    /// Long-polling wait of a pull.
    pub poll_wait: Duration,
    /// Pause before a failed message is tried again locally (when it cannot be sent back).
    pub retry_delay: Duration,
    /// Deliveries before a failing message goes to the dead-letter queue
    /// (`None`: the broker's `maxReconsumeTimes`).
    pub max_reconsume_times: Option<u32>,
    pub timeout: Duration,
}

impl ConsumerConfig {
    pub fn new(
        broker: impl Into<String>,
        group: impl Into<String>,
        topic: impl Into<String>,
    ) -> Self {
        ConsumerConfig {
            broker: broker.into(),
            group: group.into(),
            topic: topic.into(),
            ack: AckMode::AfterProcess,
            batch: 32,
            poll_wait: Duration::from_millis(500),
            retry_delay: Duration::from_millis(200),
            max_reconsume_times: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The handler: called once per delivered message, from several queue tasks at once.
pub type Handler = Arc<dyn Fn(&WireMessage) -> ProcessOutcome + Send + Sync>;

/// Consumes until `stop` turns true; returns how many messages were processed
/// successfully. The first connection must succeed; after that, a lost
/// connection (or a broker that stops answering) is retried with growing
/// pauses, up to 5 s, until the broker is back or `stop` turns true; each
/// queue then goes on from its committed offset.
pub async fn run(
    config: ConsumerConfig,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
) -> Result<u64, ClientError> {
    let config = Arc::new(config);
    let processed = Arc::new(AtomicU64::new(0));
    let mut session = connect(&config).await?;
    loop {
        let Some(error) = consume_session(&config, session, &handler, &stop, &processed).await
        else {
            return Ok(processed.load(Ordering::Relaxed));
        };
        let lost = matches!(
            error,
            ClientError::Disconnected | ClientError::Timeout(_) | ClientError::Connect { .. }
        );
        if !lost || *stop.borrow() {
            return Err(error);
        }
        tracing::warn!(broker = %config.broker, error = %error, "lost the broker; reconnecting");
        session = match reconnect(&config, &mut stop).await {
            Some(session) => session,
            None => return Ok(processed.load(Ordering::Relaxed)),
        };
        tracing::info!(broker = %config.broker, "reconnected to the broker");
    }
}

/// A connection and what the broker said of itself and the topic.
type Session = (Arc<Connection>, Routed);

/// The broker's answer to `Route`.
#[derive(Debug)]
struct Routed {
    queues: u32,
    /// The broker's name, for this session's `settle` spans: a group's
    /// offsets are per broker and queue. (No epoch: a commit in a later epoch
    /// still passes the messages that survived into it, and the broker's own
    /// `settle` span carries the epoch.)
    broker: String,
}

async fn connect(config: &ConsumerConfig) -> Result<Session, ClientError> {
    let connection = Arc::new(Connection::connect(&config.broker, config.timeout).await?);
    let route = Request::Route {
        topic: config.topic.clone(),
    };
    match connection.request(&route, config.timeout).await? {
        Response::Route { queues, broker, .. } => Ok((connection, Routed { queues, broker })),
        other => Err(ClientError::Refused(format!("unexpected answer {other:?}"))),
    }
}

/// Connects again after growing pauses; `None` if `stop` turned true first.
async fn reconnect(config: &ConsumerConfig, stop: &mut watch::Receiver<bool>) -> Option<Session> {
    let mut pause = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return None,
        }
        match connect(config).await {
            Ok(session) => return Some(session),
            Err(e) => {
                tracing::debug!(broker = %config.broker, error = %e, "broker still unreachable")
            }
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Consumes every queue (and the group's retry queue) over one connection
/// until `stop`; the first error ends the session for every queue.
async fn consume_session(
    config: &Arc<ConsumerConfig>,
    (connection, routed): Session,
    handler: &Handler,
    stop: &watch::Receiver<bool>,
    processed: &Arc<AtomicU64>,
) -> Option<ClientError> {
    let mut tasks = tokio::task::JoinSet::new();
    let retry = crate::protocol::retry_topic(&config.group);
    let routed = Arc::new(routed);
    let subscriptions = (0..routed.queues)
        .map(|q| (config.topic.clone(), q))
        .chain([(retry, 0)]);
    for (topic, queue_id) in subscriptions {
        let (config, connection, routed, handler, stop, processed) = (
            config.clone(),
            connection.clone(),
            routed.clone(),
            handler.clone(),
            stop.clone(),
            processed.clone(),
        );
        tasks.spawn(async move {
            consume_queue(
                &config,
                (&connection, &routed),
                &handler,
                &topic,
                queue_id,
                stop,
                &processed,
            )
            .await
        });
    }
    let mut first_error = None;
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // Messages processed but not committed come again: at least once.
                tasks.abort_all();
                first_error.get_or_insert(e);
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    first_error
}

async fn consume_queue(
    config: &ConsumerConfig,
    (connection, routed): (&Connection, &Routed),
    handler: &Handler,
    topic: &str,
    queue_id: u32,
    mut stop: watch::Receiver<bool>,
    processed: &AtomicU64,
) -> Result<(), ClientError> {
    let group = config.group.as_str();
    let query = Request::QueryOffset {
        group: group.into(),
        topic: topic.into(),
        queue_id,
    };
    let mut offset = match connection.request(&query, config.timeout).await? {
        Response::Offset(o) => o.unwrap_or(0),
        _ => 0,
    };
    while !*stop.borrow() {
        let pull = Request::Pull {
            group: group.into(),
            topic: topic.into(),
            queue_id,
            offset,
            max: config.batch,
            wait_ms: config.poll_wait.as_millis() as u64,
        };
        let pulled = tokio::select! {
            r = connection.request(&pull, config.timeout + config.poll_wait) => r?,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Response::Pulled {
            messages,
            next_offset,
            max_offset,
        } = pulled
        else {
            continue;
        };
        if messages.is_empty() {
            if offset > max_offset {
                // The broker's queue ends below our offset (it lost its tail): continue where it is.
                tracing::warn!(
                    group,
                    topic,
                    queue_id,
                    offset,
                    max_offset,
                    "consumer offset beyond the queue; resetting"
                );
                offset = max_offset;
            }
            continue;
        }
        // The client's `receive` is when the batch arrived, not when the
        // handler gets to each message. Each message's trace context and keys
        // are read once, for its `receive` and its `process` (not at all
        // when nothing is traced).
        let contexts: Vec<Option<MessageContext>> = messages
            .iter()
            .map(|message| {
                let receive = message_span(config, message, "receive");
                (!receive.is_disabled()).then(|| {
                    let cx = MessageContext::of(&message.properties, &message.keys);
                    cx.apply(&receive);
                    cx
                })
            })
            .collect();
        if config.ack == AckMode::OnReceive {
            commit(config, (connection, routed), topic, queue_id, next_offset).await?;
        }
        let mut done_to = offset;
        for (message, cx) in messages.iter().zip(&contexts) {
            match process(config, handler, message, cx.as_ref()) {
                ProcessOutcome::Ok => {
                    processed.fetch_add(1, Ordering::Relaxed);
                    done_to = message.queue_offset + 1;
                }
                // Reconsume later: the broker keeps it for a retry, so the offset may move on.
                ProcessOutcome::Failed(_) if config.ack == AckMode::AfterProcess => {
                    if send_back(config, connection, message).await.is_err() {
                        break; // not handed over: try it again here
                    }
                    done_to = message.queue_offset + 1;
                }
                // On-receive: the offset is already committed, the failure is swallowed.
                ProcessOutcome::Failed(_) => done_to = message.queue_offset + 1,
            }
        }
        if config.ack == AckMode::AfterProcess && done_to > offset {
            commit(config, (connection, routed), topic, queue_id, done_to).await?;
        }
        if done_to < next_offset && config.ack == AckMode::AfterProcess {
            tokio::time::sleep(config.retry_delay).await;
        }
        offset = if config.ack == AckMode::OnReceive {
            next_offset
        } else {
            done_to
        };
    }
    Ok(())
}

/// A per-message `receive` or `process` span of this consumer.
fn message_span(
    config: &ConsumerConfig,
    message: &WireMessage,
    hop: &'static str,
) -> tracing::Span {
    // A retried message is still a message of the topic it was sent to.
    let topic = message
        .property(crate::protocol::PROP_ORIGIN_TOPIC)
        .unwrap_or(&message.topic);
    tracing::info_span!(
        "consume",
        "otel.name" = format!("{topic} {hop}"),
        "otel.kind" = "consumer",
        "otel.status_code" = tracing::field::Empty,
        { attr::HOP } = hop,
        { attr::MESSAGING_SYSTEM } = "rocketmq",
        { attr::MESSAGING_OPERATION_TYPE } = hop,
        { attr::MESSAGING_MESSAGE_ID } = message.msg_id.as_str(),
        { attr::MESSAGING_DESTINATION_NAME } = topic,
        { attr::MESSAGING_DESTINATION_PARTITION_ID } = int(message.queue_id),
        { attr::MESSAGING_CONSUMER_GROUP_NAME } = config.group.as_str(),
        { attr::QUEUE_OFFSET } = int(message.queue_offset),
        { attr::COMMITLOG_OFFSET } = int(message.commitlog_offset),
        { attr::RECONSUME_COUNT } = int(message.reconsume_times),
        { attr::ERROR_TYPE } = tracing::field::Empty,
    )
}

fn process(
    config: &ConsumerConfig,
    handler: &Handler,
    message: &WireMessage,
    cx: Option<&MessageContext>,
) -> ProcessOutcome {
    let span = message_span(config, message, "process");
    if let Some(cx) = cx {
        cx.apply(&span);
    }
    let outcome = span.in_scope(|| handler(message));
    if let ProcessOutcome::Failed(error_type) = &outcome {
        span.record("otel.status_code", "ERROR");
        span.record(attr::ERROR_TYPE, error_type.as_str());
    }
    outcome
}

async fn send_back(
    config: &ConsumerConfig,
    connection: &Connection,
    message: &WireMessage,
) -> Result<(), ClientError> {
    let request = Request::SendBack {
        group: config.group.clone(),
        commitlog_offset: message.commitlog_offset,
        max_reconsume_times: config.max_reconsume_times,
    };
    connection
        .request(&request, config.timeout)
        .await
        .map(|_| ())
}

async fn commit(
    config: &ConsumerConfig,
    (connection, routed): (&Connection, &Routed),
    topic: &str,
    queue_id: u32,
    next_offset: u64,
) -> Result<(), ClientError> {
    let span = tracing::info_span!(
        "settle",
        "otel.name" = format!("{topic} settle"),
        { attr::HOP } = "settle",
        { attr::MESSAGING_OPERATION_TYPE } = "settle",
        { attr::BROKER } = routed.broker.as_str(),
        { attr::MESSAGING_CONSUMER_GROUP_NAME } = config.group.as_str(),
        { attr::MESSAGING_DESTINATION_NAME } = topic,
        { attr::MESSAGING_DESTINATION_PARTITION_ID } = int(queue_id),
        { attr::QUEUE_OFFSET } = int(next_offset),
        { attr::SETTLE_ON_RECEIVE } = config.ack == AckMode::OnReceive,
    );
    let request = Request::CommitOffset {
        group: config.group.clone(),
        topic: topic.to_owned(),
        queue_id,
        next_offset,
        on_receive: config.ack == AckMode::OnReceive,
    };
    let result = connection.request(&request, config.timeout).await;
    drop(span);
    result.map(|_| ())
}
