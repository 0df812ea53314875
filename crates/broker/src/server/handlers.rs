//! What the broker does with each request, and the spans it leaves:
//! `store` per message (joined to the producer's trace), `receive` per
//! delivered pull batch, `settle` per offset commit it receives.

use lasthop_telemetry::int;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lasthop_vocab::attr;

use super::send_path::{refuse_send, store_error, wait_durable, wire};
use super::{Broker, replication, retry, transaction};
use crate::protocol::{self, ErrorCode, QueueProgress, Request, Response, SendRequest, SendResult};
use crate::store::record::StoredMessage;
use crate::trace_context;

/// Most messages one pull returns.
const MAX_PULL: u32 = 256;

pub(crate) async fn handle(broker: &Broker, request: Request) -> Response {
    match request {
        Request::Send(send) => handle_send(broker, send).await,
        Request::Pull {
            group,
            topic,
            queue_id,
            offset,
            max,
            wait_ms,
        } => handle_pull(broker, &group, &topic, queue_id, offset, max, wait_ms).await,
        Request::CommitOffset {
            group,
            topic,
            queue_id,
            next_offset,
            on_receive,
        } => {
            let span = tracing::info_span!(
                "settle",
                { attr::HOP } = "settle",
                { attr::MESSAGING_OPERATION_TYPE } = "settle",
                { attr::BROKER } = broker.config.broker_name.as_str(),
                { attr::BROKER_EPOCH } = int(broker.store.epoch()),
                { attr::MESSAGING_CONSUMER_GROUP_NAME } = group.as_str(),
                { attr::MESSAGING_DESTINATION_NAME } = topic.as_str(),
                { attr::MESSAGING_DESTINATION_PARTITION_ID } = int(queue_id),
                { attr::QUEUE_OFFSET } = int(next_offset),
                { attr::SETTLE_ON_RECEIVE } = on_receive,
            );
            broker
                .store
                .commit_offset(&group, &topic, queue_id, next_offset);
            drop(span);
            Response::Committed
        }
        Request::QueryOffset {
            group,
            topic,
            queue_id,
        } => Response::Offset(broker.store.committed_offset(&group, &topic, queue_id)),
        Request::Route { topic: _ } => Response::Route {
            broker: broker.config.broker_name.clone(),
            epoch: broker.store.epoch(),
            queues: broker.config.default_topic_queue_nums,
        },
        Request::FindMessages { msg_id, key } => {
            match broker.store.find(msg_id.as_deref(), key.as_deref()) {
                Ok(found) => Response::Messages(found.into_iter().map(wire).collect()),
                Err(e) => store_error(e),
            }
        }
        Request::ReplicaPull {
            replica,
            from,
            max_bytes,
            wait_ms,
        } => replication::handle_pull(broker, replica, from, max_bytes, wait_ms).await,
        Request::Promote { cause } => replication::promote(broker, &cause).await,
        Request::ReplicationStatus => replication::status(broker),
        Request::SendBack {
            group,
            commitlog_offset,
            max_reconsume_times,
        } => retry::send_back(broker, &group, commitlog_offset, max_reconsume_times),
        Request::ListDeadLetters { group } => retry::list_dead_letters(broker, &group),
        Request::SendHalf { group, tx_id, send } => {
            transaction::send_half(broker, group, tx_id, send).await
        }
        Request::EndTransaction {
            tx_id,
            half_offset,
            state,
            from_check,
            ..
        } => transaction::end(broker, &tx_id, half_offset, state, from_check).await,
        // Registration needs the connection: the connection task handles it.
        Request::RegisterProducer { .. } | Request::CheckTransaction { .. } => Response::Error {
            code: ErrorCode::BadRequest,
            message: "not a request a broker answers here".into(),
        },
        Request::ResendDeadLetter { group, msg_id } => {
            retry::resend_dead_letter(broker, &group, &msg_id)
        }
        Request::GroupProgress { group, topic } => {
            let mut ids = broker.store.queue_ids(&topic);
            ids.extend(0..broker.config.default_topic_queue_nums);
            ids.sort_unstable();
            ids.dedup();
            Response::Progress(
                ids.into_iter()
                    .map(|q| QueueProgress {
                        queue_id: q,
                        broker_offset: broker.store.next_queue_offset(&topic, q),
                        consumer_offset: broker.store.committed_offset(&group, &topic, q),
                    })
                    .collect(),
            )
        }
    }
}

async fn handle_send(broker: &Broker, send: SendRequest) -> Response {
    let config = &broker.config;
    if let Some(refused) = refuse_send(broker, &send) {
        return refused;
    }
    let queues = config.default_topic_queue_nums;
    let queue_id = send
        .queue_id
        .unwrap_or_else(|| broker.next_queue.fetch_add(1, Ordering::Relaxed))
        % queues;
    let span = tracing::info_span!(
        "store",
        "otel.kind" = "server",
        { attr::HOP } = "store",
        { attr::MESSAGING_SYSTEM } = "rocketmq",
        { attr::MESSAGING_MESSAGE_ID } = send.msg_id.as_str(),
        { attr::MESSAGING_DESTINATION_NAME } = send.topic.as_str(),
        { attr::MESSAGING_DESTINATION_PARTITION_ID } = int(queue_id),
        { attr::BROKER } = config.broker_name.as_str(),
        { attr::BROKER_EPOCH } = int(broker.store.epoch()),
        { attr::COMMITLOG_OFFSET } = tracing::field::Empty,
        { attr::COMMITLOG_SIZE } = tracing::field::Empty,
        { attr::QUEUE_OFFSET } = tracing::field::Empty,
        { attr::SEND_STATUS } = tracing::field::Empty,
        "otel.status_code" = tracing::field::Empty,
    );
    trace_context::join(&span, &send.properties);
    trace_context::set_keys(&span, &send.keys);
    let msg_id = send.msg_id.clone();
    let message = StoredMessage {
        msg_id: send.msg_id,
        topic: send.topic,
        queue_id,
        queue_offset: 0,
        keys: send.keys,
        tags: send.tags,
        properties: send.properties,
        born_ms: send.born_ms,
        store_ms: 0,
        reconsume_times: 0,
        body: send.body,
    };
    let put = match broker.store.put(message) {
        Ok(put) => put,
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            return store_error(e);
        }
    };
    let end = put.commitlog_offset + put.size;
    span.record(attr::COMMITLOG_OFFSET, int(put.commitlog_offset));
    span.record(attr::COMMITLOG_SIZE, int(put.size));
    span.record(attr::QUEUE_OFFSET, int(put.queue_offset));
    broker.appended_to(end);
    let status = wait_durable(broker, end).await;
    span.record(attr::SEND_STATUS, status.as_str());
    Response::Sent(SendResult {
        status,
        msg_id,
        broker: config.broker_name.clone(),
        epoch: broker.store.epoch(),
        queue_id,
        queue_offset: put.queue_offset,
        commitlog_offset: put.commitlog_offset,
    })
}

async fn handle_pull(
    broker: &Broker,
    group: &str,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max: u32,
    wait_ms: u64,
) -> Response {
    if protocol::is_internal(topic) {
        let message = format!("{topic} is an internal topic");
        return Response::Error {
            code: ErrorCode::BadRequest,
            message,
        };
    }
    let max = max.clamp(1, MAX_PULL) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let mut appended = broker.appended.subscribe();
    let mut stopping = broker.stopping.clone();
    let messages = loop {
        appended.borrow_and_update();
        let found = match broker.store.get(topic, queue_id, offset, max) {
            Ok(found) => found,
            Err(e) => return store_error(e),
        };
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            break found;
        }
        // Long polling: wait for any new message, the deadline, or shutdown.
        tokio::select! {
            _ = appended.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
        if *stopping.borrow() {
            break Vec::new();
        }
    };
    let max_offset = broker.store.next_queue_offset(topic, queue_id);
    let next_offset = messages.last().map_or(offset, |m| m.queue_offset + 1);
    if !messages.is_empty() {
        let span = tracing::info_span!(
            "receive",
            { attr::HOP } = "receive",
            { attr::MESSAGING_OPERATION_TYPE } = "receive",
            { attr::BROKER } = broker.config.broker_name.as_str(),
            { attr::BROKER_EPOCH } = int(broker.store.epoch()),
            { attr::MESSAGING_CONSUMER_GROUP_NAME } = group,
            { attr::MESSAGING_DESTINATION_NAME } = topic,
            { attr::MESSAGING_DESTINATION_PARTITION_ID } = int(queue_id),
            { attr::RANGE_START } = int(offset),
            { attr::RANGE_END } = int(next_offset),
        );
        drop(span);
    }
    Response::Pulled {
        messages: messages.into_iter().map(wire).collect(),
        next_offset,
        max_offset,
    }
}
