//! Retries and dead letters (RocketMQ's model).
//!
//! A consumer that fails a message sends it back. The broker stores a copy in
//! `SCHEDULE_TOPIC_XXXX`, in the queue of its delay level (level 3 for the
//! first retry, one more per retry), with the time it is due. A scheduler
//! moves due messages, in order per level, into the group's `%RETRY%group`
//! topic, which the group's consumers also pull. A message sent back after
//! `maxReconsumeTimes` deliveries goes to `%DLQ%group` instead, where an
//! operator can list it and resend it. Every move is a new record in the log;
//! nothing is rewritten. Spans: `retry` (with the delay and the reconsume
//! count) and `dlq`, joined to the message's trace.

use lasthop_telemetry::int;
use std::sync::Arc;
use std::time::Duration;

use lasthop_vocab::attr;

use super::Broker;
use super::send_path::{put, store_error, wire};
use crate::protocol::{
    ErrorCode, PROP_ORIGIN_TOPIC, PROP_REAL_TOPIC, Response, SCHEDULE_TOPIC, dlq_topic, retry_topic,
};
use crate::store::now_ms;
use crate::store::record::StoredMessage;
use crate::trace_context;

/// The scheduler's own progress, kept as a consumer offset.
const SCHEDULE_GROUP: &str = "%SCHEDULE%";
const PROP_DELIVER_AT: &str = "DELIVER_AT_MS";

fn set_property(m: &mut StoredMessage, key: &str, value: String) {
    m.properties.retain(|(k, _)| k != key);
    m.properties.push((key.to_owned(), value));
}

pub(crate) fn send_back(
    broker: &Broker,
    group: &str,
    commitlog_offset: u64,
    max: Option<u32>,
) -> Response {
    let original = match broker.store.read_at(commitlog_offset) {
        Ok(m) => m,
        Err(e) => return store_error(e),
    };
    let levels = broker
        .config
        .delay_levels()
        .unwrap_or_else(|_| vec![Duration::from_secs(1)]);
    let max = max.unwrap_or(broker.config.max_reconsume_times);
    let mut copy = original.clone();
    let origin = original
        .property(PROP_ORIGIN_TOPIC)
        .unwrap_or(&original.topic)
        .to_owned();
    set_property(&mut copy, PROP_ORIGIN_TOPIC, origin.clone());
    copy.reconsume_times = original.reconsume_times + 1;
    let dead = copy.reconsume_times > max;
    let (target, delay) = if dead {
        copy.topic = dlq_topic(group);
        copy.queue_id = 0;
        (copy.topic.clone(), Duration::ZERO)
    } else {
        let level = (copy.reconsume_times as usize + 2).min(levels.len());
        let delay = levels[level - 1];
        let target = retry_topic(group);
        set_property(&mut copy, PROP_REAL_TOPIC, target.clone());
        set_property(
            &mut copy,
            PROP_DELIVER_AT,
            (now_ms() + delay.as_millis() as u64).to_string(),
        );
        copy.topic = SCHEDULE_TOPIC.into();
        copy.queue_id = (level - 1) as u32;
        (target, delay)
    };
    let hop = if dead { "dlq" } else { "retry" };
    let span = tracing::info_span!(
        "retry",
        "otel.name" = format!("{origin} {hop}"),
        { attr::HOP } = hop,
        { attr::BROKER } = broker.config.broker_name.as_str(),
        { attr::BROKER_EPOCH } = int(broker.store.epoch()),
        { attr::MESSAGING_MESSAGE_ID } = original.msg_id.as_str(),
        { attr::MESSAGING_DESTINATION_NAME } = origin.as_str(),
        { attr::MESSAGING_CONSUMER_GROUP_NAME } = group,
        { attr::RECONSUME_COUNT } = int(copy.reconsume_times),
        "lasthop.target.topic" = target.as_str(),
        "lasthop.retry.delay_ms" = delay.as_millis() as u64,
    );
    trace_context::join(&span, &original.properties);
    trace_context::set_keys(&span, &original.keys);
    let _entered = span.enter();
    if let Err(response) = put(broker, copy.clone()) {
        return response;
    }
    Response::SentBack {
        topic: target,
        reconsume_times: copy.reconsume_times,
        delay_ms: delay.as_millis() as u64,
    }
}

/// Moves due messages from each delay level into their retry topics.
pub(crate) async fn run_scheduler(broker: Arc<Broker>) {
    let levels = broker.config.delay_levels().map_or(1, |l| l.len());
    let mut stopping = broker.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        for level in 0..levels as u32 {
            if let Err(e) = deliver_due(&broker, level) {
                tracing::error!(error = %e, level, "retry scheduler failed");
            }
        }
    }
}

fn deliver_due(broker: &Broker, level: u32) -> Result<(), String> {
    let store = &broker.store;
    let mut offset = store
        .committed_offset(SCHEDULE_GROUP, SCHEDULE_TOPIC, level)
        .unwrap_or(0);
    let now = now_ms();
    for queued in store
        .get(SCHEDULE_TOPIC, level, offset, 64)
        .map_err(|e| e.to_string())?
    {
        let m = queued.message;
        let due = m
            .property(PROP_DELIVER_AT)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        if due > now {
            break; // one delay per level: the rest are due later
        }
        let mut copy = m.clone();
        copy.topic = m.property(PROP_REAL_TOPIC).unwrap_or_default().to_owned();
        copy.queue_id = 0;
        copy.properties
            .retain(|(k, _)| k != PROP_REAL_TOPIC && k != PROP_DELIVER_AT);
        if !copy.topic.is_empty() {
            put(broker, copy).map_err(|r| format!("{r:?}"))?;
        }
        offset = queued.queue_offset + 1;
        store.commit_offset(SCHEDULE_GROUP, SCHEDULE_TOPIC, level, offset);
    }
    Ok(())
}

pub(crate) fn list_dead_letters(broker: &Broker, group: &str) -> Response {
    match broker.store.get(&dlq_topic(group), 0, 0, 10_000) {
        Ok(found) => Response::Messages(found.into_iter().map(wire).collect()),
        Err(e) => store_error(e),
    }
}

pub(crate) fn resend_dead_letter(broker: &Broker, group: &str, msg_id: &str) -> Response {
    let found = match broker.store.get(&dlq_topic(group), 0, 0, 10_000) {
        Ok(found) => found.into_iter().find(|q| q.message.msg_id == msg_id),
        Err(e) => return store_error(e),
    };
    let Some(found) = found else {
        return Response::Error {
            code: ErrorCode::BadRequest,
            message: format!("{msg_id} is not in {}", dlq_topic(group)),
        };
    };
    let mut copy = found.message;
    copy.topic = retry_topic(group);
    copy.queue_id = 0;
    copy.reconsume_times = 0;
    match put(broker, copy) {
        Ok(_) => Response::SentBack {
            topic: retry_topic(group),
            reconsume_times: 0,
            delay_ms: 0,
        },
        Err(response) => response,
    }
}
