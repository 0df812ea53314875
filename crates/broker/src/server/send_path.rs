//! The path every message into the store shares, whoever sends it (a
//! producer's send, a half message, a commit, a retry, a dead letter): which
//! sends are refused, the append that wakes long-polling pulls, the wait for
//! durability the configuration asks for, and a stored message as it goes
//! back on the wire. The request handlers (`handlers.rs`, `retry.rs`,
//! `transaction.rs`) call these and not each other.

use std::time::Duration;

use super::Broker;
use crate::config::{BrokerRole, FlushDiskType};
use crate::protocol::{self, ErrorCode, Response, SendRequest, SendStatus, WireMessage};
use crate::store::record::StoredMessage;
use crate::store::{PutResult, QueuedMessage};

/// A store failure as the answer to a request (and a log line).
pub(crate) fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "store error");
    Response::Error {
        code: ErrorCode::StoreError,
        message: e.to_string(),
    }
}

/// Why a send (or half message) cannot be taken, if it cannot (counted
/// by its error code).
pub(crate) fn refuse_send(broker: &Broker, send: &SendRequest) -> Option<Response> {
    let refused = refusal(broker, send);
    if let Some(Response::Error { code, .. }) = &refused {
        broker.counters.answered(&format!("{code:?}"));
    }
    refused
}

fn refusal(broker: &Broker, send: &SendRequest) -> Option<Response> {
    let config = &broker.config;
    if protocol::is_system(&send.topic) {
        let message = format!(
            "{} is a system topic; producers cannot send to it",
            send.topic
        );
        return Some(Response::Error {
            code: ErrorCode::BadRequest,
            message,
        });
    }
    let role = broker.role();
    if role == BrokerRole::Slave {
        return Some(Response::Error {
            code: ErrorCode::NotMaster,
            message: format!("{} is a slave", config.broker_name),
        });
    }
    if send.body.len() > config.max_message_size {
        return Some(Response::Error {
            code: ErrorCode::MessageTooLarge,
            message: format!(
                "message body of {} bytes exceeds maxMessageSize {}",
                send.body.len(),
                config.max_message_size
            ),
        });
    }
    None
}

/// Appends `message` to the store and wakes long-polling pulls.
pub(crate) fn put(broker: &Broker, message: StoredMessage) -> Result<PutResult, Response> {
    let put = broker.store.put(message).map_err(|e| {
        broker.counters.answered("StoreError");
        store_error(e)
    })?;
    broker.appended_to(put.commitlog_offset + put.size);
    Ok(put)
}

/// Waits as the configuration asks before a send is acknowledged: for the
/// fsync covering `end` (SYNC_FLUSH) and for a slave's ack (SYNC_MASTER).
/// Each answer is counted by its status.
pub(crate) async fn wait_durable(broker: &Broker, end: u64) -> SendStatus {
    let status = durable(broker, end).await;
    broker.counters.answered(status.as_str());
    status
}

async fn durable(broker: &Broker, end: u64) -> SendStatus {
    let config = &broker.config;
    if config.flush_disk_type == FlushDiskType::SyncFlush {
        broker.flush.request(end);
        if !broker
            .flush
            .wait_flushed(end, Duration::from_millis(config.sync_flush_timeout))
            .await
        {
            return SendStatus::FlushDiskTimeout;
        }
    }
    if broker.role() == BrokerRole::SyncMaster {
        if !broker.replication.available() {
            return SendStatus::SlaveNotAvailable;
        }
        if !broker
            .replication
            .wait_acked(end, Duration::from_millis(config.slave_ack_timeout))
            .await
        {
            return SendStatus::FlushSlaveTimeout;
        }
    }
    SendStatus::SendOk
}

/// A stored message as a pull or a lookup returns it.
pub(crate) fn wire(q: QueuedMessage) -> WireMessage {
    let m = q.message;
    WireMessage {
        msg_id: m.msg_id,
        topic: m.topic,
        queue_id: m.queue_id,
        queue_offset: q.queue_offset,
        commitlog_offset: q.commitlog_offset,
        keys: m.keys,
        tags: m.tags,
        properties: m.properties,
        born_ms: m.born_ms,
        store_ms: m.store_ms,
        reconsume_times: m.reconsume_times,
        body: m.body,
    }
}
