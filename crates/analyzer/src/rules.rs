//! The verdict rules of DESIGN section 5, for one message and one group at a time.
//!
//! Order matters and follows the message's path: a dead letter or a success
//! of the group decides first; then transactions; then whether the broker ever
//! had the message; then whether the broker lost it (a recovery or failover
//! that ended below it); then whether the group's offset moved past it.

use std::borrow::Cow;
use std::collections::BTreeSet;

use lasthop_vocab::{Hop, SpanRecord, attr};

mod unplaced;

use crate::evidence::Evidence;
use crate::explain::{at, fix};
use crate::model::{Cause, GroupVerdict, MessageVerdicts, Options, Verdict};

/// Judges every message in `evidence`.
pub fn analyze(evidence: &Evidence<'_>, options: &Options) -> Vec<MessageVerdicts> {
    use rayon::prelude::*;
    let ids: Vec<&str> = evidence.message_ids().collect();
    // In parallel (rayon), in message id order.
    ids.par_iter()
        .map(|id| judge(evidence, id, options))
        .collect()
}

/// Where the broker said it stored a message.
#[derive(Debug, Clone, Copy)]
struct Location<'a> {
    broker: &'a str,
    epoch: u64,
    offset: u64,
    /// Just past the record (the offset + 1 when only the producer saw it).
    end: u64,
    queue_id: Option<u32>,
    queue_offset: Option<u64>,
    time: u64,
    span: &'a SpanRecord,
}

struct Facts<'a> {
    spans: &'a [&'a SpanRecord],
    topic: Option<&'a str>,
    sent_at: Option<u64>,
    /// The message's one consumer group, when it has exactly one.
    sole_group: Option<&'a str>,
}

impl<'a> Facts<'a> {
    fn of(&self, hop: Hop) -> impl Iterator<Item = &'a SpanRecord> + '_ {
        self.spans
            .iter()
            .copied()
            .filter(move |s| s.hop == Some(hop))
    }

    /// The spans of `hop` that speak of `group`: its own, and application
    /// log lines that name no group when the message has only this one.
    fn by<'g>(
        &self,
        hop: Hop,
        group: Option<&'g str>,
    ) -> impl Iterator<Item = &'a SpanRecord> + use<'a, '_, 'g> {
        self.of(hop).filter(move |s| {
            group.is_some()
                && (s.group.as_deref() == group
                    || (s.group.is_none() && from_log(s) && self.sole_group == group))
        })
    }
}

/// A send attempt the broker accepted: no error, and a status (lasthop's, or
/// the OpenTelemetry Java agent's RocketMQ send result) of `SEND_OK` if any.
fn send_ok(s: &SpanRecord) -> bool {
    !s.is_error()
        && [
            attr::SEND_STATUS,
            attr::legacy::MESSAGING_ROCKETMQ_SEND_RESULT,
        ]
        .iter()
        .find_map(|key| s.attr(key).and_then(|v| v.as_str()))
        .is_none_or(|st| st == "SEND_OK")
}

/// The committed message's store span, else the producer's witness of a SEND_OK.
fn location<'a>(facts: &Facts<'a>) -> Option<Location<'a>> {
    let from = |s: &'a SpanRecord| -> Option<Location<'a>> {
        let offset = s.commitlog_offset?;
        Some(Location {
            broker: s.broker.as_deref()?,
            epoch: s.epoch?,
            offset,
            end: offset + s.commitlog_size.unwrap_or(1),
            queue_id: s.queue_id,
            queue_offset: s.queue_offset,
            time: s.start_ns,
            span: s,
        })
    };
    facts
        .of(Hop::Store)
        .find_map(from)
        .or_else(|| facts.of(Hop::Send).filter(|s| send_ok(s)).find_map(from))
}

/// The spans of one message, one per send attempt: where a library's send
/// span has a child send span of the same message (opentelemetry-
/// instrumentation-pika wraps both pika's blocking channel and the channel
/// under it), they are one attempt, and the outer span, which saw the
/// broker's answer (a publisher confirm, a returned message), tells it.
fn one_span_per_attempt<'a, 's>(spans: &'s [&'a SpanRecord]) -> Cow<'s, [&'a SpanRecord]> {
    // A message has a handful of spans: a scan beats a set.
    let nested = |s: &SpanRecord| {
        s.hop == Some(Hop::Send)
            && (s.parent_span_id.as_deref()).is_some_and(|p| {
                spans
                    .iter()
                    .any(|t| t.hop == Some(Hop::Send) && t.span_id == p)
            })
    };
    if !spans.iter().any(|s| nested(s)) {
        return Cow::Borrowed(spans);
    }
    Cow::Owned(spans.iter().copied().filter(|s| !nested(s)).collect())
}

fn judge(e: &Evidence<'_>, id: &str, options: &Options) -> MessageVerdicts {
    let spans = one_span_per_attempt(e.by_message.get(id).map_or(&[], Vec::as_slice));
    let spans: &[&SpanRecord] = &spans;
    let keys: BTreeSet<&str> = spans
        .iter()
        .flat_map(|s| s.keys.iter().map(String::as_str))
        .collect();
    let traces: BTreeSet<&str> = spans
        .iter()
        .map(|s| s.trace_id.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    let topic = spans
        .iter()
        .find_map(|s| s.topic.as_deref().filter(|t| !t.starts_with('%')));
    let mut facts = Facts {
        spans,
        topic,
        // When it was sent: its first send attempt, or its half message's.
        sent_at: [Hop::Send, Hop::TxPrepare].iter().find_map(|hop| {
            let first = spans.iter().filter(|s| s.hop == Some(*hop));
            first.map(|s| s.start_ns).min()
        }),
        sole_group: None,
    };
    let location = location(&facts);
    // Successful processings, as the application's log counts them where it speaks.
    let logged = facts.of(Hop::Process).any(from_log);
    let process_count = (facts.of(Hop::Process))
        .filter(|s| !s.is_error() && (!logged || from_log(s)))
        .count() as u32;
    let send_failed = facts.of(Hop::Send).any(|s| s.is_error());
    let stored = facts.of(Hop::Store).next().is_some() || facts.of(Hop::Send).any(send_ok);

    let mut groups: BTreeSet<&str> = topic
        .and_then(|t| e.groups_by_topic.get(t))
        .into_iter()
        .flatten()
        .copied()
        .collect();
    groups.extend(options.groups.iter().map(String::as_str));
    groups.extend(
        spans
            .iter()
            .filter(|s| matches!(s.hop, Some(Hop::Process | Hop::Dlq)))
            .filter_map(|s| s.group.as_deref()),
    );
    let groups: Vec<Option<&str>> = if groups.is_empty() {
        vec![None]
    } else {
        groups.into_iter().map(Some).collect()
    };
    if let [only] = groups.as_slice() {
        facts.sole_group = *only;
    }

    let verdicts = groups
        .into_iter()
        .map(|g| judge_group(e, &facts, location, &keys, g, options))
        .collect();
    MessageVerdicts {
        message_id: id.to_owned(),
        broker: location.map(|l| l.broker.to_owned()),
        sent_ns: facts.sent_at.or(location.map(|l| l.time)),
        keys: keys.into_iter().map(str::to_owned).collect(),
        topic: topic.map(str::to_owned),
        trace_ids: traces.into_iter().map(str::to_owned).collect(),
        process_count,
        send_indeterminate: send_failed && stored,
        reached: reached(e, &facts, location),
        verdicts,
    }
}

/// The funnel stages the message reached.
fn reached(e: &Evidence<'_>, f: &Facts<'_>, loc: Option<Location<'_>>) -> Vec<&'static str> {
    let covered = |hop: Hop| {
        loc.is_some_and(|l| {
            e.covered_up_to(l.broker, hop, l.epoch)
                .is_some_and(|end| end >= l.end)
        })
    };
    let received = f.of(Hop::Receive).next().is_some()
        || loc.is_some_and(|l| {
            let (Some(topic), Some(q), Some(qo)) = (f.topic, l.queue_id, l.queue_offset) else {
                return false;
            };
            e.groups_by_topic.get(topic).into_iter().flatten().any(|g| {
                e.deliveries
                    .get(&(*g, topic, q))
                    .into_iter()
                    .flatten()
                    .any(|d| {
                        on_log(d, l)
                            && d.range_start.is_some_and(|s| s <= qo)
                            && d.range_end.is_some_and(|en| en > qo)
                    })
            })
        });
    [
        (
            "send",
            f.of(Hop::Send).next().is_some() || f.of(Hop::TxPrepare).next().is_some(),
        ),
        ("store", loc.is_some()),
        ("flush", covered(Hop::Flush)),
        ("replicate", covered(Hop::Replicate)),
        ("receive", received),
        ("process", f.of(Hop::Process).any(|s| !s.is_error())),
    ]
    .into_iter()
    .filter_map(|(stage, yes)| yes.then_some(stage))
    .collect()
}

fn verdict(
    group: Option<&str>,
    verdict: Verdict,
    hop: Option<&str>,
    explanation: String,
    evidence: &[&SpanRecord],
) -> GroupVerdict {
    GroupVerdict {
        group: group.map(str::to_owned),
        verdict,
        hop: hop.map(str::to_owned),
        cause: None,
        explanation,
        fix: fix(verdict).map(str::to_owned),
        evidence: evidence.iter().map(|s| s.span_id.clone()).collect(),
    }
}

fn who(group: Option<&str>) -> String {
    group.map_or_else(
        || "no consumer group".to_owned(),
        |g| format!("the {g} group"),
    )
}

/// "the red-packet group never received it", or, with no group known, "no consumer received it".
fn never_received(group: Option<&str>) -> String {
    group.map_or_else(
        || "no consumer received it".to_owned(),
        |g| format!("the {g} group never received it"),
    )
}

fn judge_group(
    e: &Evidence<'_>,
    f: &Facts<'_>,
    location: Option<Location<'_>>,
    keys: &BTreeSet<&str>,
    group: Option<&str>,
    options: &Options,
) -> GroupVerdict {
    if let Some(dlq) = f.by(Hop::Dlq, group).next() {
        let tries = dlq
            .attr(attr::RECONSUME_COUNT)
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let failures: Vec<&SpanRecord> =
            f.by(Hop::Process, group).filter(|s| s.is_error()).collect();
        let last_error = failures
            .last()
            .and_then(|s| s.error_type.as_deref())
            .unwrap_or("an error");
        let mut ev = failures.clone();
        ev.push(dlq);
        let text = format!(
            "{} failed to process it {} times (last: {last_error}); after {tries} deliveries it was moved to the dead-letter queue at {}",
            who(group),
            failures.len(),
            at(dlq.start_ns)
        );
        return verdict(group, Verdict::DeadLettered, Some("dlq"), text, &ev);
    }
    let decisive = decisive_processing(f, group);
    if let Some(p) = decisive.iter().copied().find(|s| !s.is_error()) {
        let failed: Vec<&SpanRecord> = (decisive.iter().copied())
            .filter(|s| s.is_error() && s.start_ns <= p.start_ns)
            .collect();
        let mut text = format!("processed by {} at {}", who(group), at(p.start_ns));
        if let Some(last) = failed.last() {
            text.push_str(&format!(
                ", after {} failed attempt{} (the last at {}: {}) and a redelivery",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" },
                at(last.start_ns),
                last.error_type.as_deref().unwrap_or("error")
            ));
        }
        let mut ev = failed;
        ev.push(p);
        return verdict(group, Verdict::Delivered, None, text, &ev);
    }
    let prepares: Vec<&SpanRecord> = f.of(Hop::TxPrepare).collect();
    let state = |s: &&SpanRecord| {
        s.attr(attr::TX_STATE)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    // A commit without the broker's store span (RocketMQ message traces):
    // the message goes on like any sent one.
    let committed = f
        .of(Hop::TxEnd)
        .any(|s| state(&s).as_deref() == Some("commit"));
    if !prepares.is_empty() && f.of(Hop::Store).next().is_none() && !committed {
        let ends: Vec<&SpanRecord> = f.of(Hop::TxEnd).collect();
        if let Some(rb) = ends
            .iter()
            .find(|s| s.broker.is_some() && state(s).as_deref() == Some("rollback"))
        {
            let from_check = rb
                .attr(attr::TX_FROM_CHECK)
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let text = format!(
                "transactional message rolled back at {}{}; it was never meant to be delivered",
                at(rb.start_ns),
                if from_check {
                    " after a check-back"
                } else {
                    ""
                }
            );
            return verdict(group, Verdict::RolledBack, Some("tx.end"), text, &[rb]);
        }
        let half = prepares
            .iter()
            .find(|s| s.broker.is_some())
            .unwrap_or(&prepares[0]);
        let checks = f.of(Hop::TxCheck).count();
        let text = format!(
            "half message stored at {} is neither committed nor rolled back yet ({checks} check-backs so far)",
            at(half.start_ns)
        );
        let mut ev = vec![*half];
        ev.extend(ends);
        return verdict(group, Verdict::HalfPending, Some("tx.end"), text, &ev);
    }
    let Some(loc) = location else {
        return unplaced::unplaced(e, f, keys, group, options);
    };

    if let Some(lost) = broker_loss(e, f, loc, group) {
        return lost;
    }
    consumer_side(e, f, loc, group, options)
}

/// Whether a record is an application's own log line (not a tracer's span).
fn from_log(s: &SpanRecord) -> bool {
    s.attr(attr::SOURCE).and_then(|v| v.as_str()) == Some("log")
}

/// The group's processing records that decide whether it processed the
/// message. Where the application's own log says an attempt failed, it
/// speaks for that attempt: a tracer's span or a trace record of the same
/// attempt only saw the listener return (the swallowed exception), so its
/// success does not count, and its failure is the same one. Other attempts
/// (a redelivery that succeeded) keep their spans.
fn decisive_processing<'a>(f: &Facts<'a>, group: Option<&str>) -> Vec<&'a SpanRecord> {
    /// How far a log line's time may lie outside its attempt's span (log
    /// timestamps are milliseconds; some lines are written as the handler returns).
    const SAME_ATTEMPT_NS: u64 = 10_000_000;
    let mine: Vec<&SpanRecord> = f.by(Hop::Process, group).collect();
    let log_failures: Vec<&SpanRecord> = (mine.iter().copied())
        .filter(|s| from_log(s) && s.is_error())
        .collect();
    let same_attempt = |t: &SpanRecord| {
        log_failures.iter().any(|l| {
            l.start_ns + SAME_ATTEMPT_NS >= t.start_ns
                && l.start_ns <= t.end_ns.max(t.start_ns) + SAME_ATTEMPT_NS
        })
    };
    mine.into_iter()
        .filter(|s| from_log(s) || !same_attempt(s))
        .collect()
}

/// A recovery or failover of the broker that ended below the message.
fn broker_loss(
    e: &Evidence<'_>,
    f: &Facts<'_>,
    loc: Location<'_>,
    group: Option<&str>,
) -> Option<GroupVerdict> {
    let next = [Hop::Recover, Hop::Failover]
        .into_iter()
        .flat_map(|h| e.ranges_of(loc.broker, h))
        .filter(|s| s.epoch.is_some_and(|ep| ep > loc.epoch) && s.start_ns > loc.time)
        .min_by_key(|s| s.epoch)?;
    let survived = next.range_end?;
    if survived > loc.offset {
        return None;
    }
    // Two lives under one name at one epoch (two brokers named alike, or a
    // store wiped and started afresh): whose flushes and restarts these are
    // cannot be told, so no hop is named.
    let starts: BTreeSet<&str> = e
        .ranges_of(loc.broker, Hop::Recover)
        .filter(|s| s.epoch == Some(loc.epoch))
        .map(|s| s.span_id.as_str())
        .collect();
    if starts.len() > 1 {
        let text = format!(
            "stored on {} at offset {} (epoch {}) at {}, and a restart of {} ended its log at {survived}; \
             but {} brokers named {} started at epoch {} (or its store was wiped and started again), \
             so whose flushes and restarts these are cannot be told: give each broker its own brokerName",
            loc.broker,
            loc.offset,
            loc.epoch,
            at(loc.time),
            loc.broker,
            starts.len(),
            loc.broker,
            loc.epoch
        );
        return Some(verdict(
            group,
            Verdict::IncompleteTrace,
            None,
            text,
            &[loc.span, next],
        ));
    }
    let sent = f
        .sent_at
        .map_or_else(String::new, |t| format!("sent at {}, ", at(t)));
    let stored = format!(
        "{sent}stored on {} at offset {} (epoch {}) at {}",
        loc.broker,
        loc.offset,
        loc.epoch,
        at(loc.time)
    );
    let cause = next
        .attr(attr::RECOVER_CAUSE)
        .and_then(|v| v.as_str())
        .unwrap_or("an unknown cause");
    let never = never_received(group);
    let found = |v: Verdict, hop: &str, text: String| {
        Some(verdict(group, v, Some(hop), text, &[loc.span, next]))
    };
    if next.hop == Some(Hop::Failover) {
        let acked = e.covered_up_to(loc.broker, Hop::Replicate, loc.epoch);
        if acked.is_some_and(|a| a >= loc.end) {
            let text = format!(
                "{stored}; a replica acknowledged it, yet the promoted replica's log ends at {survived}"
            );
            return found(Verdict::IncompleteTrace, "replicate", text);
        }
        let text = format!(
            "{stored}; {} lost its data ({cause}) at {} and a replica took over with its log ending at {survived}; \
             no replica had acknowledged the message ({}); {never}",
            loc.broker,
            at(next.start_ns),
            acked.map_or_else(
                || "no replicate span shows it acknowledged".to_owned(),
                |a| format!("acknowledged up to {a}")
            )
        );
        return found(Verdict::LostAtReplication, "replicate", text);
    }
    let flushed = e.covered_up_to(loc.broker, Hop::Flush, loc.epoch);
    if flushed.is_some_and(|fl| fl >= loc.end) {
        let text = format!(
            "{stored}; it was flushed to disk, but {} came back at {} ({cause}) with its log ending at {survived}: \
             the disk's data was lost and no replica held it; {never}",
            loc.broker,
            at(next.start_ns)
        );
        return found(Verdict::LostAtReplication, "replicate", text);
    }
    let text = format!(
        "{stored}; {} went down ({cause}) and came back at {} with its log ending at {survived}; \
         the async flush had not covered it ({}); {never}",
        loc.broker,
        at(next.start_ns),
        flushed.map_or_else(
            || format!(
                "no flush had run since the broker started at epoch {}",
                loc.epoch
            ),
            |fl| format!("flushed up to {fl}")
        )
    );
    found(Verdict::LostAtFlush, "flush", text)
}

/// The broker kept it: did the group's offset move past it without processing it?
fn consumer_side(
    e: &Evidence<'_>,
    f: &Facts<'_>,
    loc: Location<'_>,
    group: Option<&str>,
    options: &Options,
) -> GroupVerdict {
    let stored = format!(
        "stored on {} at offset {} at {}",
        loc.broker,
        loc.offset,
        at(loc.time)
    );
    let (Some(g), Some(topic), Some(q), Some(qo)) =
        (group, f.topic, loc.queue_id, loc.queue_offset)
    else {
        return waiting(e, f, loc, group, options, &stored);
    };
    // Commits on the same broker (a group's offsets are per broker and queue)
    // and from the same epoch (after a recovery, queue offsets are reused).
    let same_log_since = |s: &&&SpanRecord| on_log(s, loc) && s.start_ns >= loc.time;
    let settles = e.settles.get(&(g, topic, q)).map_or(&[][..], Vec::as_slice);
    let Some(past) = settles
        .iter()
        .filter(same_log_since)
        .filter(|s| s.queue_offset.is_some_and(|n| n > qo))
        .min_by_key(|s| s.start_ns)
    else {
        return waiting(e, f, loc, group, options, &stored);
    };
    let commit = format!(
        "{g} committed offset {} of queue {q} at {}",
        past.queue_offset.unwrap_or(0),
        at(past.start_ns)
    );
    let failed: Vec<&SpanRecord> = f.by(Hop::Process, group).filter(|s| s.is_error()).collect();
    if let Some(last) = failed.last() {
        let text = format!(
            "{stored}; processing failed at {} ({}) and the failure was swallowed: {commit}, past the message (queue offset {qo})",
            at(last.start_ns),
            last.error_type.as_deref().unwrap_or("error")
        );
        let mut v = verdict(
            group,
            Verdict::LostAtConsumer,
            Some("process"),
            text,
            &[*last, *past],
        );
        v.cause = Some(Cause::FailedButAcked);
        return v;
    }
    let deliveries: Vec<&SpanRecord> = e
        .deliveries
        .get(&(g, topic, q))
        .into_iter()
        .flatten()
        .copied()
        .filter(|d| on_log(d, loc))
        .collect();
    let delivered = |d: &&&SpanRecord| {
        d.range_start.is_some_and(|s| s <= qo) && d.range_end.is_some_and(|en| en > qo)
    };
    let received = f
        .by(Hop::Receive, group)
        .next()
        .or_else(|| deliveries.iter().find(delivered).copied());
    // Positive evidence that it was committed and then never processed: the
    // consumer says it committed on receipt, and the group went on processing
    // after that commit (a missing span alone proves nothing).
    let went_on = e.last_processing.get(&(g, topic)).copied();
    let on_receive = settles.iter().filter(same_log_since).find(|s| {
        s.queue_offset.is_some_and(|n| n > qo)
            && s.attr(attr::SETTLE_ON_RECEIVE).and_then(|v| v.as_bool()) == Some(true)
            && went_on.is_some_and(|t| t > s.start_ns)
    });
    match (received, on_receive) {
        (Some(r), Some(commit_on_receipt)) => {
            let text = format!(
                "{stored}; delivered to {g} at {} and committed on receipt (offset {} at {}) before it was processed; \
                 no process span of it reached lasthop and the group went on after that commit: the consumer stopped mid-batch \
                 (its last unexported spans die with a killed consumer, so one it finished at that very moment looks the same)",
                at(r.start_ns),
                commit_on_receipt.queue_offset.unwrap_or(0),
                at(commit_on_receipt.start_ns)
            );
            let mut v = verdict(
                group,
                Verdict::LostAtConsumer,
                Some("settle"),
                text,
                &[r, *commit_on_receipt],
            );
            v.cause = Some(Cause::CommittedBeforeProcessed);
            v
        }
        (None, _) if !deliveries.is_empty() => {
            let text = format!(
                "{stored}; {commit}, past the message (queue offset {qo}), which the broker never delivered to {g}: skipped"
            );
            let mut v = verdict(
                group,
                Verdict::LostAtConsumer,
                Some("settle"),
                text,
                &[*past],
            );
            v.cause = Some(Cause::Skipped);
            v
        }
        _ => {
            let text = format!(
                "{stored}; {commit}, past the message, but no process span shows it processed. Missing: its process span, \
                 or the consumer's settle spans saying whether it committed before processing, or the broker's delivery spans"
            );
            verdict(
                group,
                Verdict::IncompleteTrace,
                Some("process"),
                text,
                &[*past],
            )
        }
    }
}

/// Whether a span about queue offsets (a commit, a delivery) speaks of the
/// log `loc` is in: the same broker and epoch, where it names them.
fn on_log(s: &SpanRecord, loc: Location<'_>) -> bool {
    s.broker.as_deref().is_none_or(|b| b == loc.broker) && s.epoch.is_none_or(|ep| ep == loc.epoch)
}

/// Stored, not consumed, offset not past it: backlog, or not enough evidence to say more.
fn waiting(
    e: &Evidence<'_>,
    f: &Facts<'_>,
    loc: Location<'_>,
    group: Option<&str>,
    options: &Options,
    stored: &str,
) -> GroupVerdict {
    if let (Some(g), Some(topic), Some(sent)) = (group, f.topic, f.sent_at)
        && loc.queue_offset.is_none()
        && e.newest_processed
            .get(&(g, topic))
            .is_some_and(|newest| *newest > sent + options.grace_ns)
    {
        let text = format!(
            "{stored}; {} processed messages sent after it but never received it; the offsets that would show where are not in the data",
            who(group)
        );
        return verdict(group, Verdict::LostInTransit, None, text, &[loc.span]);
    }
    let text = if options.now_ns.saturating_sub(loc.time) < options.grace_ns {
        format!("{stored}; within the grace period, not consumed yet")
    } else {
        format!(
            "{stored}; not consumed by {} yet and its committed offset has not passed it: backlog",
            who(group)
        )
    };
    verdict(group, Verdict::InFlight, None, text, &[loc.span])
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
