//! What other people's instrumentation emits, read as lasthop's hops.
//!
//! lasthop's own spans name their hop (`lasthop.hop`). Spans from OpenTelemetry
//! SDKs and agents do not: their hop comes from the instrumentation scope
//! (where a library's spans are known to mean something the attributes do not
//! say), then the messaging operation attributes, then the span's name, then
//! its kind. `INSTRUMENTATION.md` at the repository root is the table of what
//! each library emits, checked against the libraries themselves (and, for
//! pika and Celery, against recordings of real runs in `recordings/`).
//!
//! Identity and grouping follow the same order of trust: a message id where
//! the library sets one, else what identifies a message in that system (a
//! Kafka record is its topic, partition and offset); a consumer group where
//! one is named, else the destination the consumer reads (a RabbitMQ queue, a
//! Celery queue: the queue is the group of competing consumers).

use lasthop_vocab::{Hop, SpanKind, SpanLink};

/// Scope names of instrumentations whose consumer span wraps the
/// application's handler (its status is the handler's outcome), though they
/// label it `receive`.
const HANDLER_WRAPPING_CONSUMERS: &[&str] = &[
    "opentelemetry.instrumentation.pika",
    "opentelemetry.instrumentation.aio_pika",
];

/// opentelemetry-instrumentation-celery.
const CELERY: &str = "opentelemetry.instrumentation.celery";
/// opentelemetry-instrumentation-aio-pika: producer destinations are `exchange,routing_key`.
const AIO_PIKA: &str = "opentelemetry.instrumentation.aio_pika";

/// A span as far as its hop is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    /// The instrumentation scope's name (empty when none).
    pub scope: &'a str,
    pub kind: SpanKind,
    pub name: &'a str,
    /// `messaging.operation.type`, `messaging.operation.name` or the older
    /// `messaging.operation`, the first present.
    pub operation: Option<&'a str>,
    /// Whether the span carries any messaging attribute at all.
    pub messaging: bool,
}

/// The hop of a span without `lasthop.hop`, if it records one.
pub(crate) fn hop(shape: Shape<'_>) -> Option<Hop> {
    if matches_scope(shape.scope, HANDLER_WRAPPING_CONSUMERS) {
        match shape.kind {
            SpanKind::Producer => return Some(Hop::Send),
            SpanKind::Consumer => return Some(Hop::Process),
            _ => {}
        }
    }
    if matches_scope(shape.scope, &[CELERY]) {
        if shape.name.starts_with("apply_async/") {
            return Some(Hop::Send);
        }
        if shape.name.starts_with("run/") {
            return Some(Hop::Process);
        }
    }
    if let Some(hop) = shape.operation.and_then(hop_of_operation) {
        return Some(hop);
    }
    if !shape.messaging {
        return None;
    }
    // `{destination} {operation}`, the conventions' span name.
    let last = shape.name.rsplit(' ').next().unwrap_or_default();
    if let Some(hop) = hop_of_operation(last) {
        return Some(hop);
    }
    match shape.kind {
        SpanKind::Producer => Some(Hop::Send),
        SpanKind::Consumer => Some(Hop::Receive),
        _ => None,
    }
}

/// The hop an OpenTelemetry messaging operation stands for.
pub fn hop_of_operation(operation: &str) -> Option<Hop> {
    match operation {
        "send" | "publish" | "create" => Some(Hop::Send),
        "receive" => Some(Hop::Receive),
        "process" | "deliver" => Some(Hop::Process),
        "settle" => Some(Hop::Settle),
        _ => None,
    }
}

/// The destination as the consumer side names it: aio-pika's producer spans
/// say `exchange,routing_key` where its consumer spans say the exchange, or
/// the routing key (the queue) on the default exchange.
pub(crate) fn destination(scope: &str, destination: Option<String>) -> Option<String> {
    let destination = destination?;
    if !matches_scope(scope, &[AIO_PIKA]) {
        return Some(destination);
    }
    match destination.split_once(',') {
        Some(("", routing_key)) => Some(routing_key.to_owned()),
        Some((exchange, _)) => Some(exchange.to_owned()),
        None => Some(destination),
    }
}

/// What identifies a Kafka record without a message id: topic, partition and
/// offset, written as opentelemetry-instrumentation-confluent-kafka writes its
/// message ids, so that spans of different instrumentations meet.
pub(crate) fn kafka_record_id(
    system: Option<&str>,
    topic: Option<&str>,
    partition: Option<u32>,
    offset: Option<u64>,
) -> Option<String> {
    if system != Some("kafka") {
        return None;
    }
    Some(format!("{}.{}.{}", topic?, partition?, offset?))
}

/// Instrumentations that give a message no id both sides share:
/// kafka-python (no id at all), confluent-kafka (the producer cannot know
/// the offset its consumer's id is made of), otel-instrumentation-nats.
/// There a message is its producer span's context, which the producer
/// injected into the message: a consumer span's parent, or its one link.
const CONTEXT_IDENTIFIED: &[&str] = &[
    "opentelemetry.instrumentation.kafka",
    "opentelemetry.instrumentation.confluent_kafka",
    "otel_instrumentation_nats",
];

/// The message id of a span of [`CONTEXT_IDENTIFIED`] instrumentation:
/// `{trace id}-{span id}` of the producer span that sent the message.
pub(crate) fn context_id(
    scope: &str,
    hop: Option<Hop>,
    (trace_id, span_id): (&str, &str),
    parent_span_id: Option<&str>,
    links: &[SpanLink],
) -> Option<String> {
    if !matches_scope(scope, CONTEXT_IDENTIFIED) {
        return None;
    }
    match hop? {
        Hop::Send => Some(format!("{trace_id}-{span_id}")),
        Hop::Receive | Hop::Process => match links {
            [one] => Some(format!("{}-{}", one.trace_id, one.span_id)),
            [] => parent_span_id.map(|p| format!("{trace_id}-{p}")),
            _ => None,
        },
        _ => None,
    }
}

/// `Some(())` for a span of opentelemetry-instrumentation-celery.
pub(crate) fn is_celery(scope: &str) -> Option<()> {
    matches_scope(scope, &[CELERY]).then_some(())
}

/// Celery's `run/...` span of an attempt that failed and was retried has no
/// error status (only `celery.state = RETRY`): the attempt failed all the same.
pub(crate) fn celery_failure(state: Option<&str>, retry_reason: Option<&str>) -> Option<String> {
    if state != Some("RETRY") {
        return None;
    }
    Some(retry_reason.map_or_else(|| "Retry".to_owned(), |r| format!("Retry: {r}")))
}

fn matches_scope(scope: &str, names: &[&str]) -> bool {
    names.iter().any(|n| {
        scope == *n
            || scope
                .strip_prefix(n)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape<'a>(scope: &'a str, kind: SpanKind, name: &'a str, op: Option<&'a str>) -> Shape<'a> {
        Shape {
            scope,
            kind,
            name,
            operation: op,
            messaging: true,
        }
    }

    #[test]
    fn hops_of_each_library_shape() {
        let pika = "opentelemetry.instrumentation.pika.pika_instrumentor";
        let cases = [
            // pika: the consumer span wraps the callback, though it says receive.
            (
                shape(pika, SpanKind::Producer, "red-packet send", None),
                Some(Hop::Send),
            ),
            (
                shape(
                    pika,
                    SpanKind::Consumer,
                    "red-packet receive",
                    Some("receive"),
                ),
                Some(Hop::Process),
            ),
            (
                shape(
                    AIO_PIKA,
                    SpanKind::Consumer,
                    "orders receive",
                    Some("receive"),
                ),
                Some(Hop::Process),
            ),
            // Celery.
            (
                shape(CELERY, SpanKind::Producer, "apply_async/tasks.grant", None),
                Some(Hop::Send),
            ),
            (
                shape(CELERY, SpanKind::Consumer, "run/tasks.grant", None),
                Some(Hop::Process),
            ),
            // The conventions: the operation, then the name, then the kind.
            (
                shape(
                    "io.opentelemetry.rocketmq-client-4.8",
                    SpanKind::Producer,
                    "t publish",
                    Some("publish"),
                ),
                Some(Hop::Send),
            ),
            (
                shape(
                    "io.opentelemetry.kafka-clients-0.11",
                    SpanKind::Consumer,
                    "t process",
                    Some("process"),
                ),
                Some(Hop::Process),
            ),
            (
                shape(
                    "x",
                    SpanKind::Consumer,
                    "multiple_sources receive",
                    Some("receive"),
                ),
                Some(Hop::Receive),
            ),
            (
                shape(
                    "opentelemetry.instrumentation.kafka",
                    SpanKind::Consumer,
                    "t receive",
                    None,
                ),
                Some(Hop::Receive),
            ),
            (
                shape("x", SpanKind::Producer, "orders", None),
                Some(Hop::Send),
            ),
            (shape("x", SpanKind::Client, "orders", None), None),
        ];
        for (shape, hop) in cases {
            assert_eq!(super::hop(shape), hop, "{shape:?}");
        }
        let http = Shape {
            messaging: false,
            ..shape("x", SpanKind::Consumer, "GET /orders", None)
        };
        assert_eq!(super::hop(http), None, "no messaging attribute, no hop");
    }

    #[test]
    fn aio_pika_destinations_read_as_the_consumer_reads_them() {
        let d = |s: &str| destination(AIO_PIKA, Some(s.to_owned()));
        assert_eq!(d(",red-packet").as_deref(), Some("red-packet"));
        assert_eq!(d("orders,order.paid").as_deref(), Some("orders"));
        let pika = destination("opentelemetry.instrumentation.pika", Some("a,b".into()));
        assert_eq!(pika.as_deref(), Some("a,b"));
    }

    #[test]
    fn kafka_records_are_named_by_topic_partition_and_offset() {
        let id = kafka_record_id(Some("kafka"), Some("orders"), Some(2), Some(17));
        assert_eq!(id.as_deref(), Some("orders.2.17"));
        assert_eq!(
            kafka_record_id(Some("kafka"), Some("orders"), Some(2), None),
            None
        );
        assert_eq!(
            kafka_record_id(Some("rabbitmq"), Some("o"), Some(0), Some(1)),
            None
        );
    }
}
