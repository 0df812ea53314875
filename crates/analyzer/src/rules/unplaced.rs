//! The rules for a message no store span or broker offset places: other
//! people's telemetry (OpenTelemetry SDKs and agents, RocketMQ message
//! traces, application logs). What can still be said, per DESIGN section 5:
//! every send failed (lost at send); the business event without a send
//! (never sent); processing failed and the group went on without a retry
//! (lost at the consumer); received and never processed while the group
//! went on (lost at the consumer); accepted and never received while the
//! group processed later messages (lost in transit, with the candidate
//! hops); otherwise in flight, or not enough evidence, saying what is
//! missing.

use std::collections::BTreeSet;

use lasthop_vocab::{Hop, SpanRecord};

use super::{Facts, decisive_processing, from_log, never_received, send_ok, verdict, who};
use crate::evidence::Evidence;
use crate::explain::at;
use crate::model::{Cause, GroupVerdict, Options, Verdict};

/// No store location: lost at send, never sent, or not enough evidence.
pub(super) fn unplaced(
    e: &Evidence<'_>,
    f: &Facts<'_>,
    keys: &BTreeSet<&str>,
    group: Option<&str>,
    options: &Options,
) -> GroupVerdict {
    // A committed transaction's half message is its send.
    let sends: Vec<&SpanRecord> = match f.of(Hop::Send).next() {
        Some(_) => f.of(Hop::Send).collect(),
        None => f.of(Hop::TxPrepare).collect(),
    };
    if !sends.is_empty() && sends.iter().all(|s| s.is_error()) {
        let errors: Vec<String> = sends
            .iter()
            .map(|s| {
                format!(
                    "{} ({})",
                    at(s.start_ns),
                    s.error_type.as_deref().unwrap_or("error")
                )
            })
            .collect();
        let text = format!(
            "every send attempt failed ({}: {}) and no broker stored it; {}",
            sends.len(),
            errors.join(", "),
            never_received(group)
        );
        return verdict(group, Verdict::LostAtSend, Some("send"), text, &sends);
    }
    if sends.is_empty() {
        let intents: Vec<&SpanRecord> = keys
            .iter()
            .filter_map(|k| e.intents_by_key.get(k))
            .flatten()
            .copied()
            .collect();
        if let Some(intent) = intents.first() {
            let text = format!(
                "the business event happened at {} but no send attempt was made",
                at(intent.start_ns)
            );
            return verdict(group, Verdict::NeverSent, Some("send"), text, &intents);
        }
    }
    if let Some(v) = failed_unplaced(e, f, &sends, group, options) {
        return v;
    }
    // Accepted (a send succeeded) but nothing says where it was stored: third-party spans.
    if let (Some(sent), Some(topic), Some(g)) = (f.sent_at, f.topic, group)
        && sends.iter().any(|s| send_ok(s))
        && e.newest_processed
            .get(&(g, topic))
            .is_some_and(|newest| *newest > sent + options.grace_ns)
    {
        let text = format!(
            "sent at {} and accepted{}, but {} never received it although it processed messages sent after it; \
             the spans cannot say which hop lost it. Candidates: the broker (not flushed or not replicated before a crash, \
             dropped as unroutable or expired) or a consumer that took it and never processed it (acknowledged on receipt, \
             then crashed); the broker's flush, replication and recovery spans and the group's offset commits would name it",
            at(sent),
            stored_at(&sends),
            who(group)
        );
        let ev: Vec<&SpanRecord> = sends.iter().copied().filter(|s| send_ok(s)).collect();
        return verdict(group, Verdict::LostInTransit, None, text, &ev);
    }
    if let Some(sent) = f.sent_at
        && options.now_ns.saturating_sub(sent) < options.grace_ns
    {
        let text = format!(
            "sent at {}, within the grace period; not consumed yet",
            at(sent)
        );
        return verdict(group, Verdict::InFlight, None, text, &sends);
    }
    if let Some(sent) = sends.iter().find(|s| send_ok(s)) {
        let received = f.by(Hop::Receive, group).next();
        let text = match (group, f.topic) {
            (Some(_), _) if received.is_some() => format!(
                "sent at {} and accepted{}, and {} received it at {}, but nothing in the data says whether it was processed: \
                 a span that covers the handler, or the application's log of it, would tell \
                 (some instrumentations' receive spans end before the handler runs)",
                at(sent.start_ns),
                stored_at(&sends),
                who(group),
                at(received.map_or(0, |r| r.start_ns))
            ),
            (None, Some(topic)) => format!(
                "sent at {} and accepted for {topic}, but no consumer in the data reads {topic}: whether it was consumed cannot be said \
                 (if nothing consumes {topic}, the broker may have dropped it as unroutable: a send that must reach a queue can ask to be told, e.g. RabbitMQ's mandatory flag)",
                at(sent.start_ns)
            ),
            _ => format!(
                "sent at {} and accepted{}, but nothing in the data says whether {} received it: \
                 the group's processing spans, or messages it processed that were sent after this one, would tell",
                at(sent.start_ns),
                stored_at(&sends),
                who(group)
            ),
        };
        return verdict(group, Verdict::IncompleteTrace, None, text, &[sent]);
    }
    let have: BTreeSet<&str> = f
        .spans
        .iter()
        .filter_map(|s| s.hop.map(|h| h.as_str()))
        .collect();
    let text = format!(
        "not enough evidence: no store span and no successful send that names the broker and offset (spans seen: {})",
        if have.is_empty() {
            "none with a hop".to_owned()
        } else {
            have.into_iter().collect::<Vec<_>>().join(", ")
        }
    );
    verdict(group, Verdict::IncompleteTrace, None, text, &[])
}

/// Processing failed and no broker offsets say what became of the message
/// (third-party spans, logs): was it retried, or did the group go on?
/// For per-message acknowledgements the group moving on is the commit.
fn failed_unplaced(
    e: &Evidence<'_>,
    f: &Facts<'_>,
    sends: &[&SpanRecord],
    group: Option<&str>,
    options: &Options,
) -> Option<GroupVerdict> {
    let (g, topic) = (group?, f.topic?);
    let decisive = decisive_processing(f, group);
    let Some(last) = decisive
        .iter()
        .copied()
        .filter(|s| s.is_error())
        .max_by_key(|s| s.start_ns)
    else {
        return received_unprocessed(e, f, g, topic, &decisive, options);
    };
    // Sources that disagree: the more specific wins, and the story says so.
    let overruled = f
        .by(Hop::Process, group)
        .find(|s| !s.is_error() && !from_log(s))
        .filter(|_| from_log(last))
        .map_or_else(String::new, |ok| {
            format!(
                " (the trace says {} processed it at {}; the application's log, the business code's own word, says it failed)",
                ok.service,
                at(ok.start_ns)
            )
        });
    let error = last.error_type.as_deref().unwrap_or("error");
    let after = |s: &&SpanRecord| s.start_ns >= last.start_ns;
    // Sent back for retry, or published again (a Celery retry is a new apply_async).
    let retry = f
        .by(Hop::Retry, group)
        .chain(sends.iter().copied().filter(|s| send_ok(s)))
        .find(after);
    if let Some(retry) = retry {
        let text = format!(
            "processing by {} failed at {} ({error}); it was sent again for a retry at {} and has not been processed since",
            who(group),
            at(last.start_ns),
            at(retry.start_ns)
        );
        return Some(verdict(
            group,
            Verdict::InFlight,
            Some("retry"),
            text,
            &[last, retry],
        ));
    }
    let went_on = e.last_processing.get(&(g, topic)).copied()?;
    if went_on <= last.end_ns.max(last.start_ns) + options.grace_ns {
        return None;
    }
    let text = format!(
        "processing by {} failed at {} ({error}){overruled} and it was never retried or redelivered, \
         while the group went on processing messages until {}: the failure was acknowledged (or swallowed) as if it had succeeded",
        who(group),
        at(last.start_ns),
        at(went_on)
    );
    let mut v = verdict(
        group,
        Verdict::LostAtConsumer,
        Some("process"),
        text,
        &[last],
    );
    v.cause = Some(Cause::FailedButAcked);
    Some(v)
}

/// Received by the group, never processed, never delivered again, while the
/// group went on: the consumer had acknowledged it on receipt (RabbitMQ's
/// auto-ack, Celery's default early ack) and stopped before processing it.
fn received_unprocessed(
    e: &Evidence<'_>,
    f: &Facts<'_>,
    g: &str,
    topic: &str,
    processing: &[&SpanRecord],
    options: &Options,
) -> Option<GroupVerdict> {
    if !processing.is_empty() {
        return None;
    }
    let received = f.by(Hop::Receive, Some(g)).max_by_key(|s| s.start_ns)?;
    let went_on = e.last_processing.get(&(g, topic)).copied()?;
    if went_on <= received.start_ns + options.grace_ns {
        return None;
    }
    let text = format!(
        "received by the {g} group at {} ({}) and never processed or delivered again, while the group went on processing messages until {}: \
         it was acknowledged on receipt (auto-ack, an early ack) and the consumer stopped before processing it",
        at(received.start_ns),
        received.service,
        at(went_on)
    );
    let mut v = verdict(
        Some(g),
        Verdict::LostAtConsumer,
        Some("settle"),
        text,
        &[received],
    );
    v.cause = Some(Cause::CommittedBeforeProcessed);
    Some(v)
}

/// ", stored on H at commit-log offset O" where an accepted send says so
/// (a RocketMQ trace record's offsetMsgId), without the broker's epoch
/// that would place it among the broker's own spans.
fn stored_at(sends: &[&SpanRecord]) -> String {
    sends
        .iter()
        .filter(|s| send_ok(s))
        .find_map(|s| Some((s.broker.as_deref()?, s.commitlog_offset?)))
        .map_or_else(String::new, |(broker, offset)| {
            format!(", stored on {broker} at commit-log offset {offset}")
        })
}
