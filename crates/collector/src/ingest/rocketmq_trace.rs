//! RocketMQ message-trace records: the bodies of messages in
//! `RMQ_SYS_TRACE_TOPIC`. A record ends with byte 0x02; its fields are
//! separated by byte 0x01; field 0 is the type. Older clients write shorter
//! records, which are legal: missing trailing fields are simply absent.
//!
//! | type | fields after the type |
//! | --- | --- |
//! | `Pub` | time ms, region, producer group, topic, msgId, tags, keys (space-separated), storeHost, body length, cost ms, msgType, offsetMsgId, success, \[clientHost\] |
//! | `SubBefore` | time, region, consumer group, requestId, msgId, retryTimes, keys |
//! | `SubAfter` | requestId, msgId, cost ms, success, keys, [contextCode, time, consumer group] |
//! | `EndTransaction` | time, region, group, topic, msgId, tags, keys, storeHost, msgType, transactionId, transactionState, fromTransactionCheck |
//!
//! There is no trace context in these records, so `trace_id` stays empty and
//! span ids are made from the file position.

use std::collections::HashMap;

use lasthop_vocab::{AttrValue, Attribute, Hop, SpanKind, SpanRecord, StatusCode, attr};

use super::{BadRecord, Reader, Sniff};

/// The `rocketmq-trace` input format.
#[derive(Debug)]
pub struct RocketmqTrace;

impl Reader for RocketmqTrace {
    fn name(&self) -> &'static str {
        "rocketmq-trace"
    }

    fn about(&self) -> &'static str {
        "RocketMQ message-trace records (bodies of RMQ_SYS_TRACE_TOPIC messages)"
    }

    fn sniff(&self, head: &[u8]) -> Sniff {
        // No text format lasthop reads has the field separator.
        if head.contains(&FIELD) {
            Sniff::Certain
        } else {
            Sniff::No
        }
    }

    fn read(
        &self,
        path: &std::path::Path,
        options: &super::ReadOptions,
        sink: &mut dyn FnMut(Vec<SpanRecord>),
    ) -> std::io::Result<Vec<BadRecord>> {
        let data = std::fs::read(path)?;
        let (records, bad) = read_with(&data, &path.display().to_string(), options);
        sink(records);
        Ok(bad)
    }
}

const FIELD: u8 = 0x01;
const RECORD_END: u8 = 0x02;

/// Where an `offsetMsgId` says the message is: store host and commit-log offset.
pub fn decode_offset_msg_id(id: &str) -> Option<(String, u64)> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    match id.len() {
        // IPv4: 8 hex of address, 8 of port, 16 of offset.
        32 => {
            let ip = u32::from_str_radix(&id[0..8], 16).ok()?;
            let port = hex(&id[8..16])?;
            let offset = hex(&id[16..32])?;
            Some((format!("{}:{port}", std::net::Ipv4Addr::from(ip)), offset))
        }
        // IPv6: 32 hex of address, 8 of port, 16 of offset.
        56 => {
            let ip = u128::from_str_radix(&id[0..32], 16).ok()?;
            let port = hex(&id[32..40])?;
            let offset = hex(&id[40..56])?;
            Some((format!("[{}]:{port}", std::net::Ipv6Addr::from(ip)), offset))
        }
        _ => None,
    }
}

/// Parses a whole file's bytes with the default options.
pub fn read(data: &[u8], source: &str) -> (Vec<SpanRecord>, Vec<BadRecord>) {
    read_with(data, source, &super::ReadOptions::default())
}

/// What a SubBefore says of its pull request, for the SubAfter records of it.
#[derive(Debug, Clone)]
struct Request {
    group: String,
    time: u64,
    /// The message's `retryTimes` in it, by msgId.
    retries: HashMap<String, u64>,
}

/// Parses a whole file's bytes; bad records are reported with their line.
///
/// RocketMQ's semantics are read in: a failed consumption (`SubAfter`
/// with success false: the listener returned RECONSUME_LATER, threw, or
/// timed out) is sent back for a retry, so it also yields a `retry` record,
/// or a `dlq` one when it was the message's last allowed try
/// (`retryTimes` reached `maxReconsumeTimes`). A `Pub` of a half message is
/// the transaction's prepare. `SubBefore` and `SubAfter` name no topic:
/// they take their message's from its `Pub` here, and the analyzer does the
/// same across files.
pub fn read_with(
    data: &[u8],
    source: &str,
    options: &super::ReadOptions,
) -> (Vec<SpanRecord>, Vec<BadRecord>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    // requestId -> what its SubBefore said, for SubAfter records that lack it.
    let mut requests: HashMap<String, Request> = HashMap::new();
    let mut line = 1u64;
    let mut n = 0u64;
    for raw in data.split(|b| *b == RECORD_END) {
        let record_line = line
            + raw
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .filter(|b| **b == b'\n')
                .count() as u64;
        line += raw.iter().filter(|b| **b == b'\n').count() as u64;
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        n += 1;
        let Ok(text) = std::str::from_utf8(trimmed) else {
            bad.push(BadRecord {
                line: record_line,
                reason: "record is not UTF-8".into(),
            });
            continue;
        };
        let fields: Vec<&str> = text.split(FIELD as char).collect();
        let span_id = format!("{:016x}", fnv(source) ^ n);
        match parse(&fields, span_id, &mut requests) {
            Ok(span) => {
                let sent_back = sent_back(&span, &requests, options.max_reconsume_times());
                out.push(span);
                out.extend(sent_back);
            }
            Err(reason) => bad.push(BadRecord {
                line: record_line,
                reason,
            }),
        }
    }
    let topics: HashMap<String, String> = out
        .iter()
        .filter_map(|s| Some((s.message_id.clone()?, s.topic.clone()?)))
        .collect();
    let known = options.rocketmq_topics.as_deref();
    for s in out.iter_mut().filter(|s| s.topic.is_none()) {
        let id = s.message_id.as_deref();
        s.topic = id.and_then(|id| topics.get(id).or_else(|| known?.get(id)).cloned());
    }
    (out, bad)
}

/// The topic of each msgId that a `Pub` or `EndTransaction` record of
/// `data` names: what the consumer's records, in another file, lack.
pub fn topics(data: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for raw in data.split(|b| *b == RECORD_END) {
        let Ok(record) = std::str::from_utf8(raw.trim_ascii()) else {
            continue;
        };
        let f: Vec<&str> = record.split(FIELD as char).collect();
        if matches!(f.first().map(|t| t.trim()), Some("Pub" | "EndTransaction"))
            && let (Some(topic), Some(id)) = (text(f.get(4)), text(f.get(5)))
        {
            out.insert(id, topic);
        }
    }
    out
}

/// The retry (or dead letter) that a failed consumption implies.
fn sent_back(
    span: &SpanRecord,
    requests: &HashMap<String, Request>,
    max_reconsume_times: u64,
) -> Option<SpanRecord> {
    if span.hop != Some(Hop::Process) || !span.is_error() {
        return None;
    }
    let tries = span
        .attr(attr::RECONSUME_COUNT)
        .and_then(|v| v.as_u64())
        .or_else(|| {
            let request = span.attr(REQUEST_ID)?.as_str()?;
            requests
                .get(request)?
                .retries
                .get(span.message_id.as_deref()?)
                .copied()
        })
        .unwrap_or(0);
    let dead = tries >= max_reconsume_times;
    let hop = if dead { Hop::Dlq } else { Hop::Retry };
    let mut s = base(
        hop,
        span.service.clone(),
        format!("{}r", &span.span_id[..15]),
        0,
        0,
    );
    s.start_ns = span.end_ns;
    s.end_ns = span.end_ns;
    s.kind = SpanKind::Consumer;
    s.group = span.group.clone();
    s.message_id = span.message_id.clone();
    s.keys = span.keys.clone();
    s.attributes.push(Attribute::new(
        attr::RECONSUME_COUNT,
        AttrValue::Int(tries as i64 + 1),
    ));
    s.attributes.push(Attribute::new(
        attr::SOURCE,
        AttrValue::Str("rocketmq-trace".into()),
    ));
    s.attributes.push(Attribute::new(
        "lasthop.inferred",
        AttrValue::Str(if dead {
            "a consumption that failed on the last allowed retry goes to the dead-letter queue"
                .into()
        } else {
            "a consumption that failed is sent back for a retry".into()
        }),
    ));
    Some(s)
}

/// The SubAfter's requestId, kept to find its SubBefore.
const REQUEST_ID: &str = "messaging.rocketmq.request_id";

/// RocketMQ's ConsumeReturnType, by ordinal (`contextCode`).
fn consume_return(code: Option<&&str>) -> Option<&'static str> {
    match code?.trim().parse::<u32>().ok()? {
        0 => Some("SUCCESS"),
        1 => Some("TIME_OUT"),
        2 => Some("EXCEPTION"),
        3 => Some("RETURNNULL"),
        4 => Some("FAILED"),
        _ => None,
    }
}

/// Whether a Pub's msgType (MessageType by ordinal, or by name) is a half message.
fn is_half(msg_type: Option<&&str>) -> bool {
    msg_type.is_some_and(|t| {
        let t = t.trim();
        t == "1" || t.eq_ignore_ascii_case("Trans_Msg_Half")
    })
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn ms(field: Option<&&str>, what: &str) -> Result<u64, String> {
    let text = field.ok_or_else(|| format!("missing {what}"))?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{what} {text:?} is not a number"))
}

fn keys(field: Option<&&str>) -> Vec<String> {
    field
        .map(|k| k.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn text(field: Option<&&str>) -> Option<String> {
    field
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn base(hop: Hop, service: String, span_id: String, start_ms: u64, cost_ms: u64) -> SpanRecord {
    SpanRecord {
        span_id,
        service,
        name: hop.as_str().into(),
        hop: Some(hop),
        start_ns: start_ms * 1_000_000,
        end_ns: (start_ms + cost_ms) * 1_000_000,
        attributes: vec![
            Attribute::new(attr::MESSAGING_SYSTEM, AttrValue::Str("rocketmq".into())),
            Attribute::new(attr::SOURCE, AttrValue::Str("rocketmq-trace".into())),
        ],
        ..SpanRecord::default()
    }
}

fn outcome(span: &mut SpanRecord, success: Option<&&str>, error: &str) {
    match success.map(|s| s.trim()) {
        Some("false") => {
            span.status = StatusCode::Error;
            span.error_type = Some(error.into());
        }
        Some("true") => span.status = StatusCode::Ok,
        _ => {}
    }
}

/// What `Pub` and `EndTransaction` records share: time, region, producer
/// group (the service), topic, msgId, tags, keys.
fn producer_record(
    f: &[&str],
    hop: Hop,
    span_id: String,
    time: u64,
    cost: u64,
) -> Result<SpanRecord, String> {
    let service = text(f.get(3)).unwrap_or_else(|| "producer".into());
    let mut s = base(hop, service, span_id, time, cost);
    s.kind = SpanKind::Producer;
    s.topic = text(f.get(4));
    s.message_id = Some(text(f.get(5)).ok_or("missing msgId")?);
    s.keys = keys(f.get(7));
    Ok(s)
}

fn parse(
    f: &[&str],
    span_id: String,
    requests: &mut HashMap<String, Request>,
) -> Result<SpanRecord, String> {
    match f.first().map(|t| t.trim()) {
        Some("Pub") => {
            let time = ms(f.get(1), "time")?;
            let cost = f.get(10).and_then(|c| c.trim().parse().ok()).unwrap_or(0);
            let hop = if is_half(f.get(11)) {
                Hop::TxPrepare
            } else {
                Hop::Send
            };
            let mut s = producer_record(f, hop, span_id, time, cost)?;
            if let Some(tags) = text(f.get(6)) {
                s.attributes.push(Attribute::new(
                    "messaging.rocketmq.message.tag",
                    AttrValue::Str(tags),
                ));
            }
            if let Some((host, offset)) = f.get(12).and_then(|id| decode_offset_msg_id(id.trim())) {
                s.broker = Some(host);
                s.commitlog_offset = Some(offset);
            } else if let Some(host) = text(f.get(8)) {
                s.broker = Some(host);
            }
            outcome(&mut s, f.get(13), "send_failed");
            if s.status != StatusCode::Error && f.get(13).is_some() {
                s.attributes.push(Attribute::new(
                    attr::SEND_STATUS,
                    AttrValue::Str("SEND_OK".into()),
                ));
            }
            Ok(s)
        }
        Some("SubBefore") => {
            let time = ms(f.get(1), "time")?;
            let group = text(f.get(3)).ok_or("missing consumer group")?;
            let mut s = base(Hop::Receive, group.clone(), span_id, time, 0);
            s.kind = SpanKind::Consumer;
            s.group = Some(group.clone());
            let msg_id = text(f.get(5)).ok_or("missing msgId")?;
            s.message_id = Some(msg_id.clone());
            s.keys = keys(f.get(7));
            let retries = f.get(6).and_then(|r| r.trim().parse::<u64>().ok());
            if let Some(retries) = retries {
                s.attributes.push(Attribute::new(
                    attr::RECONSUME_COUNT,
                    AttrValue::Int(retries as i64),
                ));
            }
            if let Some(request) = text(f.get(4)) {
                let entry = requests.entry(request).or_insert_with(|| Request {
                    group,
                    time,
                    retries: HashMap::new(),
                });
                entry.retries.insert(msg_id, retries.unwrap_or(0));
            }
            Ok(s)
        }
        Some("SubAfter") => {
            let request = text(f.get(1)).unwrap_or_default();
            let earlier = requests.get(&request);
            let time = f
                .get(7)
                .and_then(|t| t.trim().parse().ok())
                .or(earlier.map(|e| e.time))
                .ok_or("no time and no SubBefore with its requestId")?;
            let group = text(f.get(8))
                .or(earlier.map(|e| e.group.clone()))
                .ok_or("no consumer group and no SubBefore with its requestId")?;
            let cost = f.get(3).and_then(|c| c.trim().parse().ok()).unwrap_or(0);
            let mut s = base(Hop::Process, group.clone(), span_id, time, cost);
            s.kind = SpanKind::Consumer;
            s.group = Some(group);
            s.message_id = Some(text(f.get(2)).ok_or("missing msgId")?);
            s.keys = keys(f.get(5));
            let returned = consume_return(f.get(6));
            outcome(&mut s, f.get(4), returned.unwrap_or("consume_failed"));
            if !request.is_empty() {
                s.attributes
                    .push(Attribute::new(REQUEST_ID, AttrValue::Str(request)));
            }
            Ok(s)
        }
        Some("EndTransaction") => {
            let time = ms(f.get(1), "time")?;
            let mut s = producer_record(f, Hop::TxEnd, span_id, time, 0)?;
            s.broker = text(f.get(8));
            let state = match f.get(11).map(|s| s.trim()) {
                Some("COMMIT_MESSAGE") => "commit",
                Some("ROLLBACK_MESSAGE") => "rollback",
                _ => "unknown",
            };
            if let Some(tx) = text(f.get(10)) {
                s.attributes
                    .push(Attribute::new(attr::TX_ID, AttrValue::Str(tx)));
            }
            s.attributes
                .push(Attribute::new(attr::TX_STATE, AttrValue::Str(state.into())));
            if let Some(check) = f.get(12).and_then(|c| c.trim().parse::<bool>().ok()) {
                s.attributes
                    .push(Attribute::new(attr::TX_FROM_CHECK, AttrValue::Bool(check)));
            }
            Ok(s)
        }
        Some(other) => Err(format!("unknown record type {other:?}")),
        None => Err("empty record".into()),
    }
}
