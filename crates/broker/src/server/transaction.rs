//! Transactional messages (RocketMQ's half-message protocol).
//!
//! A half message is stored in `RMQ_SYS_TRANS_HALF_TOPIC`, invisible to
//! consumers. Commit stores a new copy in the real topic and queue; commit and
//! rollback both append an op record to `RMQ_SYS_TRANS_OP_HALF_TOPIC` naming
//! the half's offset. Nothing is rewritten in place, and the resolved set is
//! rebuilt from the op records at every start, so the check-back keeps
//! working after a restart: halves left unresolved past `transactionTimeOut`
//! are checked back with a producer of their group, at most
//! `transactionCheckMax` times, then rolled back.
//!
//! Spans: `tx.prepare` (half stored), `tx.end` (state, whether from a
//! check-back), `tx.check` (check-back sent), and `store` for a committed
//! message made visible.

use lasthop_telemetry::int;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use lasthop_vocab::attr;
use tokio::net::tcp::OwnedWriteHalf;

use super::Broker;
use super::send_path::{put, refuse_send, wait_durable};
use crate::protocol::{
    self, ErrorCode, HALF_TOPIC, KIND_REQUEST, OP_TOPIC, PROP_REAL_TOPIC, Request, Response,
    SendRequest, SendResult, SendStatus, TxState,
};
use crate::store::record::StoredMessage;
use crate::store::{MessageStore, StoreError, now_ms};
use crate::trace_context;

const PROP_REAL_QID: &str = "REAL_QID";
const PROP_GROUP: &str = "PGROUP";
pub const PROP_TX_ID: &str = "TRAN_ID";
const PROP_STATE: &str = "STATE";

type Writer = tokio::sync::Mutex<OwnedWriteHalf>;

/// What the broker knows about transactions.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    /// Half offset -> how it ended.
    resolved: Mutex<HashMap<u64, TxState>>,
    /// Transaction ids already committed: a duplicate half is never committed twice.
    committed: Mutex<HashSet<String>>,
    /// Half offset -> check-backs sent (in memory: a restart starts counting again).
    checks: Mutex<HashMap<u64, u32>>,
    producers: Mutex<HashMap<String, Vec<Weak<Writer>>>>,
    next_check_id: AtomicU64,
}

impl Transactions {
    /// Rebuilds the resolved set from the op records.
    pub(crate) fn load(store: &MessageStore) -> Result<Transactions, StoreError> {
        let t = Transactions::default();
        let mut at = 0;
        loop {
            let batch = store.get(OP_TOPIC, 0, at, 1024)?;
            if batch.is_empty() {
                break;
            }
            at += batch.len() as u64;
            for op in batch {
                let m = op.message;
                let Some(half) = std::str::from_utf8(&m.body)
                    .ok()
                    .and_then(|b| b.parse::<u64>().ok())
                else {
                    continue;
                };
                let state = if m.property(PROP_STATE) == Some("commit") {
                    TxState::Commit
                } else {
                    TxState::Rollback
                };
                if state == TxState::Commit
                    && let Some(tx) = m.property(PROP_TX_ID)
                {
                    t.committed.lock().expect("tx lock").insert(tx.to_owned());
                }
                t.resolved.lock().expect("tx lock").insert(half, state);
            }
        }
        Ok(t)
    }

    /// Check-backs for `group` go to this connection from now on.
    pub(crate) fn register(&self, group: &str, writer: &Arc<Writer>) {
        let mut producers = self.producers.lock().expect("tx lock");
        let list = producers.entry(group.to_owned()).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(writer));
    }

    fn producer(&self, group: &str) -> Option<Arc<Writer>> {
        let producers = self.producers.lock().expect("tx lock");
        producers.get(group)?.iter().rev().find_map(Weak::upgrade)
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

pub(crate) async fn send_half(
    broker: &Broker,
    group: String,
    tx_id: String,
    send: SendRequest,
) -> Response {
    if let Some(refused) = refuse_send(broker, &send) {
        return refused;
    }
    let queues = broker.config.default_topic_queue_nums;
    let real_qid = send.queue_id.unwrap_or(0) % queues;
    let span = tracing::info_span!(
        "tx.prepare",
        "otel.name" = format!("{} tx.prepare", send.topic),
        { attr::HOP } = "tx.prepare",
        { attr::MESSAGING_MESSAGE_ID } = send.msg_id.as_str(),
        { attr::MESSAGING_DESTINATION_NAME } = send.topic.as_str(),
        { attr::BROKER } = broker.config.broker_name.as_str(),
        { attr::BROKER_EPOCH } = int(broker.store.epoch()),
        { attr::TX_ID } = tx_id.as_str(),
        { attr::COMMITLOG_OFFSET } = tracing::field::Empty,
    );
    trace_context::join(&span, &send.properties);
    trace_context::set_keys(&span, &send.keys);
    let mut properties = send.properties;
    properties.extend([
        (PROP_REAL_TOPIC.to_owned(), send.topic.clone()),
        (PROP_REAL_QID.to_owned(), real_qid.to_string()),
        (PROP_GROUP.to_owned(), group),
        (PROP_TX_ID.to_owned(), tx_id),
    ]);
    let half = StoredMessage {
        msg_id: send.msg_id.clone(),
        topic: HALF_TOPIC.into(),
        keys: send.keys,
        tags: send.tags,
        properties,
        born_ms: send.born_ms,
        body: send.body,
        ..Default::default()
    };
    let put = match put(broker, half) {
        Ok(p) => p,
        Err(r) => return r,
    };
    span.record(attr::COMMITLOG_OFFSET, int(put.commitlog_offset));
    let status = wait_durable(broker, put.commitlog_offset + put.size).await;
    drop(span);
    Response::Sent(SendResult {
        status,
        msg_id: send.msg_id,
        broker: broker.config.broker_name.clone(),
        epoch: broker.store.epoch(),
        queue_id: real_qid,
        queue_offset: put.queue_offset,
        commitlog_offset: put.commitlog_offset,
    })
}

pub(crate) async fn end(
    broker: &Broker,
    tx_id: &str,
    half_offset: u64,
    state: TxState,
    from_check: bool,
) -> Response {
    let tx = &broker.transactions;
    if let Some(done) = tx
        .resolved
        .lock()
        .expect("tx lock")
        .get(&half_offset)
        .copied()
    {
        return Response::TxEnded {
            state: done,
            already: true,
        };
    }
    let half = match broker.store.read_at(half_offset) {
        Ok(m) if m.topic == HALF_TOPIC && m.property(PROP_TX_ID) == Some(tx_id) => m,
        Ok(_) => {
            return error(
                ErrorCode::BadRequest,
                format!("no half message of transaction {tx_id} at {half_offset}"),
            );
        }
        Err(e) => return error(ErrorCode::StoreError, e.to_string()),
    };
    let topic = half
        .property(PROP_REAL_TOPIC)
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "tx.end",
        "otel.name" = format!("{topic} tx.end"),
        { attr::HOP } = "tx.end",
        { attr::MESSAGING_MESSAGE_ID } = half.msg_id.as_str(),
        { attr::MESSAGING_DESTINATION_NAME } = topic.as_str(),
        { attr::BROKER } = broker.config.broker_name.as_str(),
        { attr::BROKER_EPOCH } = int(broker.store.epoch()),
        { attr::TX_ID } = tx_id,
        { attr::TX_STATE } = state.as_str(),
        { attr::TX_FROM_CHECK } = from_check,
    );
    trace_context::join(&span, &half.properties);
    trace_context::set_keys(&span, &half.keys);
    let _entered = span.enter();
    if state == TxState::Unknown {
        return Response::TxEnded {
            state,
            already: false,
        };
    }
    let duplicate =
        state == TxState::Commit && tx.committed.lock().expect("tx lock").contains(tx_id);
    let mut end_offset = 0;
    if state == TxState::Commit && !duplicate {
        let mut visible = half.clone();
        visible.topic = topic.clone();
        visible.queue_id = half
            .property(PROP_REAL_QID)
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        visible
            .properties
            .retain(|(k, _)| k != PROP_REAL_TOPIC && k != PROP_REAL_QID && k != PROP_GROUP);
        let store_span = tracing::info_span!(
            "store",
            "otel.kind" = "server",
            { attr::HOP } = "store",
            { attr::MESSAGING_SYSTEM } = "rocketmq",
            { attr::MESSAGING_MESSAGE_ID } = visible.msg_id.as_str(),
            { attr::MESSAGING_DESTINATION_NAME } = topic.as_str(),
            { attr::MESSAGING_DESTINATION_PARTITION_ID } = int(visible.queue_id),
            { attr::BROKER } = broker.config.broker_name.as_str(),
            { attr::BROKER_EPOCH } = int(broker.store.epoch()),
            { attr::TX_ID } = tx_id,
            { attr::COMMITLOG_OFFSET } = tracing::field::Empty,
            { attr::COMMITLOG_SIZE } = tracing::field::Empty,
            { attr::QUEUE_OFFSET } = tracing::field::Empty,
        );
        trace_context::join(&store_span, &half.properties);
        trace_context::set_keys(&store_span, &half.keys);
        match put(broker, visible) {
            Ok(p) => {
                store_span.record(attr::COMMITLOG_OFFSET, int(p.commitlog_offset));
                store_span.record(attr::COMMITLOG_SIZE, int(p.size));
                store_span.record(attr::QUEUE_OFFSET, int(p.queue_offset));
                end_offset = p.commitlog_offset + p.size;
            }
            Err(r) => return r,
        }
    }
    let op = StoredMessage {
        msg_id: half.msg_id.clone(),
        topic: OP_TOPIC.into(),
        properties: vec![
            (PROP_STATE.into(), state.as_str().into()),
            (PROP_TX_ID.into(), tx_id.into()),
        ],
        body: half_offset.to_string().into_bytes(),
        ..Default::default()
    };
    match put(broker, op) {
        Ok(p) => end_offset = end_offset.max(p.commitlog_offset + p.size),
        Err(r) => return r,
    }
    // The end is acknowledged only as durably as a send would be.
    let status = wait_durable(broker, end_offset).await;
    if status != SendStatus::SendOk {
        return error(
            ErrorCode::StoreError,
            format!("transaction end not durable: {}", status.as_str()),
        );
    }
    tx.resolved
        .lock()
        .expect("tx lock")
        .insert(half_offset, state);
    if state == TxState::Commit {
        tx.committed
            .lock()
            .expect("tx lock")
            .insert(tx_id.to_owned());
    }
    Response::TxEnded {
        state,
        already: duplicate,
    }
}

/// Checks back unresolved halves older than `transactionTimeOut`.
pub(crate) async fn run_checker(broker: Arc<Broker>) {
    let interval = Duration::from_millis(broker.config.transaction_check_interval.max(1));
    let mut stopping = broker.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        if let Err(e) = check_once(&broker).await {
            tracing::error!(error = %e, "transaction check-back failed");
        }
    }
}

async fn check_once(broker: &Broker) -> Result<(), StoreError> {
    let config = &broker.config;
    let due_before = now_ms().saturating_sub(config.transaction_time_out);
    let mut at = 0;
    loop {
        let halves = broker.store.get(HALF_TOPIC, 0, at, 256)?;
        if halves.is_empty() {
            return Ok(());
        }
        at += halves.len() as u64;
        for half in halves {
            let offset = half.commitlog_offset;
            if broker
                .transactions
                .resolved
                .lock()
                .expect("tx lock")
                .contains_key(&offset)
            {
                continue;
            }
            if half.message.store_ms > due_before {
                return Ok(()); // stored in order: the rest are younger
            }
            let tx_id = half
                .message
                .property(PROP_TX_ID)
                .unwrap_or_default()
                .to_owned();
            let checks = *broker
                .transactions
                .checks
                .lock()
                .expect("tx lock")
                .get(&offset)
                .unwrap_or(&0);
            if checks >= config.transaction_check_max {
                tracing::warn!(
                    tx_id,
                    offset,
                    checks,
                    "transaction unresolved after its check-backs; rolling back"
                );
                end(broker, &tx_id, offset, TxState::Rollback, true).await;
                continue;
            }
            let group = half.message.property(PROP_GROUP).unwrap_or_default();
            let Some(writer) = broker.transactions.producer(group) else {
                continue;
            };
            let m = &half.message;
            let span = tracing::info_span!(
                "tx.check",
                { attr::HOP } = "tx.check",
                { attr::MESSAGING_MESSAGE_ID } = m.msg_id.as_str(),
                { attr::MESSAGING_DESTINATION_NAME } =
                    m.property(PROP_REAL_TOPIC).unwrap_or_default(),
                { attr::BROKER } = config.broker_name.as_str(),
                { attr::BROKER_EPOCH } = int(broker.store.epoch()),
                { attr::TX_ID } = tx_id.as_str(),
                "lasthop.tx.check" = checks + 1,
            );
            trace_context::join(&span, &m.properties);
            let check = Request::CheckTransaction {
                tx_id: tx_id.clone(),
                msg_id: m.msg_id.clone(),
                half_offset: offset,
                topic: m.property(PROP_REAL_TOPIC).unwrap_or_default().to_owned(),
                keys: m.keys.clone(),
                properties: m.properties.clone(),
            };
            let id = broker
                .transactions
                .next_check_id
                .fetch_add(1, Ordering::Relaxed);
            let frame = protocol::encode_frame(KIND_REQUEST, id, &check);
            let sent = protocol::write_frame(&mut *writer.lock().await, &frame).await;
            drop(span);
            if sent.is_ok() {
                *broker
                    .transactions
                    .checks
                    .lock()
                    .expect("tx lock")
                    .entry(offset)
                    .or_default() += 1;
            }
        }
    }
}
