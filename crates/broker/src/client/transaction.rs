//! The transactional producer: half message, local transaction, end; and
//! answers to the broker's check-backs.
//!
//! 1. The half message is sent (with retries); if it cannot be stored, the
//!    local transaction does not run.
//! 2. The local transaction runs and says commit, rollback or unknown.
//! 3. The end is sent once; if it is lost, or the state was unknown, the
//!    broker checks back later and the check listener answers from the
//!    application's own record of the transaction.
//!
//! The producer keeps a connection registered for its group at all times
//! (reconnecting after a broker restart), so check-backs can reach it.

use lasthop_telemetry::int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lasthop_vocab::attr;
use tokio::sync::{Mutex, mpsc};
use tracing::Instrument;

use super::connection::{ClientError, Connection};
use super::producer::{Message, ProducerConfig, SendError, error_type, new_message_id};
use crate::protocol::{Request, Response, SendRequest, SendResult, SendStatus, TxState};
use crate::store::now_ms;
use crate::trace_context;

/// A check-back: the broker asks what became of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    pub tx_id: String,
    pub msg_id: String,
    pub topic: String,
    pub keys: Vec<String>,
}

/// Answers check-backs from the application's own record of its transactions.
pub type CheckListener = Arc<dyn Fn(&CheckRequest) -> TxState + Send + Sync>;

/// An application's record of its local transactions, in memory: what it
/// decided for each transaction id. Its [`LocalTransactions::listener`]
/// answers check-backs from it.
#[derive(Debug, Clone, Default)]
pub struct LocalTransactions(Arc<std::sync::Mutex<std::collections::HashMap<String, TxState>>>);

impl LocalTransactions {
    pub fn record(&self, tx_id: &str, state: TxState) {
        self.0
            .lock()
            .expect("transactions lock")
            .insert(tx_id.to_owned(), state);
    }

    /// A check listener that answers from this record; a transaction it has
    /// no record of is answered with `unknown_as`.
    pub fn listener(&self, unknown_as: TxState) -> CheckListener {
        let record = self.clone();
        Arc::new(move |check| {
            record
                .0
                .lock()
                .expect("transactions lock")
                .get(&check.tx_id)
                .copied()
                .unwrap_or(unknown_as)
        })
    }
}

/// What a transactional send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// Where the half message was stored.
    pub half: SendResult,
    /// What the local transaction decided.
    pub state: TxState,
    /// Whether the broker confirmed the end (if not, the check-back will settle it).
    pub end_delivered: bool,
}

/// A producer of transactional messages for one producer group.
#[derive(Clone)]
pub struct TransactionProducer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TransactionProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionProducer")
            .field("group", &self.inner.config.group)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ProducerConfig,
    listener: CheckListener,
    connection: Mutex<Option<Arc<Connection>>>,
    queues: AtomicU32,
    next_queue: AtomicU32,
    keeper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(k) = self.keeper.lock().expect("keeper lock").take() {
            k.abort();
        }
    }
}

impl TransactionProducer {
    /// Starts the producer and the task that keeps a registered connection.
    pub fn start(config: ProducerConfig, listener: CheckListener) -> TransactionProducer {
        let inner = Arc::new(Inner {
            config,
            listener,
            connection: Mutex::new(None),
            queues: AtomicU32::new(0),
            next_queue: AtomicU32::new(0),
            keeper: std::sync::Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let keeper = tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                match connection(&inner).await {
                    Ok(c) => {
                        drop(inner);
                        c.closed().await;
                    }
                    Err(_) => {
                        drop(inner);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        *inner.keeper.lock().expect("keeper lock") = Some(keeper);
        TransactionProducer { inner }
    }

    /// Sends `message` as a transaction whose local part is `local`.
    pub async fn send(
        &self,
        message: Message,
        local: impl FnOnce(&str) -> TxState,
    ) -> Result<TxOutcome, SendError> {
        let msg_id = new_message_id();
        let tx_id = msg_id.clone();
        let config = &self.inner.config;
        let mut last = ClientError::Disconnected;
        let mut half = None;
        for attempt in 1..=config.retries + 1 {
            match self.prepare(&msg_id, &tx_id, &message, attempt).await {
                Ok((r, properties)) if r.status == SendStatus::SendOk => {
                    half = Some((r, properties));
                    break;
                }
                Ok((r, _)) => last = ClientError::Refused(r.status.as_str().into()),
                Err(e) => last = e,
            }
        }
        let Some((half, properties)) = half else {
            return Err(SendError {
                msg_id,
                attempts: config.retries + 1,
                last,
            });
        };
        let state = local(&msg_id);
        let end_delivered = self.end(&tx_id, &half, &message, &properties, state).await;
        Ok(TxOutcome {
            half,
            state,
            end_delivered,
        })
    }

    async fn prepare(
        &self,
        msg_id: &str,
        tx_id: &str,
        message: &Message,
        attempt: u32,
    ) -> Result<(SendResult, Vec<(String, String)>), ClientError> {
        let span = tracing::info_span!(
            "tx.prepare",
            "otel.kind" = "producer",
            "otel.name" = format!("{} tx.prepare", message.topic),
            "otel.status_code" = tracing::field::Empty,
            { attr::HOP } = "tx.prepare",
            { attr::MESSAGING_SYSTEM } = "rocketmq",
            { attr::MESSAGING_MESSAGE_ID } = msg_id,
            { attr::MESSAGING_DESTINATION_NAME } = message.topic.as_str(),
            { attr::TX_ID } = tx_id,
            { attr::SEND_ATTEMPT } = int(attempt),
            { attr::SEND_STATUS } = tracing::field::Empty,
            { attr::ERROR_TYPE } = tracing::field::Empty,
            { attr::BROKER } = tracing::field::Empty,
            { attr::BROKER_EPOCH } = tracing::field::Empty,
            { attr::COMMITLOG_OFFSET } = tracing::field::Empty,
        );
        trace_context::set_keys(&span, &message.keys);
        let mut properties = message.properties.clone();
        trace_context::inject(&span, &mut properties);
        let inner = &self.inner;
        let outcome = async {
            let c = connection(inner).await?;
            let queues = inner.queues.load(Ordering::Relaxed).max(1);
            let request = Request::SendHalf {
                group: inner.config.group.clone(),
                tx_id: tx_id.to_owned(),
                send: SendRequest {
                    msg_id: msg_id.to_owned(),
                    topic: message.topic.clone(),
                    queue_id: Some(inner.next_queue.fetch_add(1, Ordering::Relaxed) % queues),
                    keys: message.keys.clone(),
                    tags: message.tags.clone(),
                    properties: properties.clone(),
                    born_ms: now_ms(),
                    body: message.body.clone(),
                },
            };
            match c.request(&request, inner.config.timeout).await? {
                Response::Sent(r) => Ok((r, properties)),
                other => Err(ClientError::Refused(format!("unexpected answer {other:?}"))),
            }
        }
        .instrument(span.clone())
        .await;
        match &outcome {
            Ok((r, _)) => {
                span.record(attr::SEND_STATUS, r.status.as_str());
                span.record(attr::BROKER, r.broker.as_str());
                span.record(attr::BROKER_EPOCH, int(r.epoch));
                span.record(attr::COMMITLOG_OFFSET, int(r.commitlog_offset));
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.record(attr::ERROR_TYPE, error_type(e));
            }
        }
        outcome
    }

    /// Sends the end of a transaction once; true if the broker confirmed it.
    async fn end(
        &self,
        tx_id: &str,
        half: &SendResult,
        message: &Message,
        properties: &[(String, String)],
        state: TxState,
    ) -> bool {
        let span = end_span(&half.msg_id, &message.topic, tx_id, state, false);
        trace_context::join(&span, properties);
        trace_context::set_keys(&span, &message.keys);
        if state == TxState::Unknown {
            return false;
        }
        let request = Request::EndTransaction {
            group: self.inner.config.group.clone(),
            tx_id: tx_id.to_owned(),
            msg_id: half.msg_id.clone(),
            half_offset: half.commitlog_offset,
            state,
            from_check: false,
        };
        let sent = async {
            let c = connection(&self.inner).await?;
            c.request(&request, self.inner.config.timeout).await
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = &sent {
            span.record("otel.status_code", "ERROR");
            span.record(attr::ERROR_TYPE, error_type(e));
        }
        sent.is_ok()
    }
}

fn end_span(
    msg_id: &str,
    topic: &str,
    tx_id: &str,
    state: TxState,
    from_check: bool,
) -> tracing::Span {
    tracing::info_span!(
        "tx.end",
        "otel.kind" = "producer",
        "otel.name" = format!("{topic} tx.end"),
        "otel.status_code" = tracing::field::Empty,
        { attr::HOP } = "tx.end",
        { attr::MESSAGING_MESSAGE_ID } = msg_id,
        { attr::MESSAGING_DESTINATION_NAME } = topic,
        { attr::TX_ID } = tx_id,
        { attr::TX_STATE } = state.as_str(),
        { attr::TX_FROM_CHECK } = from_check,
        { attr::ERROR_TYPE } = tracing::field::Empty,
    )
}

/// The current registered connection, or a new one.
async fn connection(inner: &Arc<Inner>) -> Result<Arc<Connection>, ClientError> {
    let mut slot = inner.connection.lock().await;
    if let Some(c) = slot.as_ref().filter(|c| !c.is_broken()) {
        return Ok(c.clone());
    }
    let (tx, mut checks) = mpsc::unbounded_channel();
    let c = Arc::new(
        Connection::connect_with(&inner.config.broker, inner.config.timeout, Some(tx)).await?,
    );
    c.request(
        &Request::RegisterProducer {
            group: inner.config.group.clone(),
        },
        inner.config.timeout,
    )
    .await?;
    if inner.queues.load(Ordering::Relaxed) == 0
        && let Response::Route { queues, .. } = c
            .request(
                &Request::Route {
                    topic: String::new(),
                },
                inner.config.timeout,
            )
            .await?
    {
        inner.queues.store(queues.max(1), Ordering::Relaxed);
    }
    // Check-backs arriving on this connection are answered on it.
    let (listener, group, timeout, answer_on) = (
        inner.listener.clone(),
        inner.config.group.clone(),
        inner.config.timeout,
        c.clone(),
    );
    tokio::spawn(async move {
        while let Some(request) = checks.recv().await {
            let Request::CheckTransaction {
                tx_id,
                msg_id,
                half_offset,
                topic,
                keys,
                properties,
            } = request
            else {
                continue;
            };
            let check = CheckRequest {
                tx_id: tx_id.clone(),
                msg_id: msg_id.clone(),
                topic: topic.clone(),
                keys: keys.clone(),
            };
            let state = listener(&check);
            let span = tracing::info_span!(
                "tx.check",
                "otel.kind" = "producer",
                { attr::HOP } = "tx.check",
                { attr::MESSAGING_MESSAGE_ID } = msg_id.as_str(),
                { attr::MESSAGING_DESTINATION_NAME } = topic.as_str(),
                { attr::TX_ID } = tx_id.as_str(),
                { attr::TX_STATE } = state.as_str(),
            );
            trace_context::join(&span, &properties);
            trace_context::set_keys(&span, &keys);
            drop(span);
            if state == TxState::Unknown {
                continue;
            }
            let end = end_span(&msg_id, &topic, &tx_id, state, true);
            trace_context::join(&end, &properties);
            trace_context::set_keys(&end, &keys);
            let request = Request::EndTransaction {
                group: group.clone(),
                tx_id,
                msg_id,
                half_offset,
                state,
                from_check: true,
            };
            let _ = answer_on.request(&request, timeout).instrument(end).await;
        }
    });
    *slot = Some(c.clone());
    Ok(c)
}
