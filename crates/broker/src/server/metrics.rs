//! `lasthop broker --metrics ADDR`: the broker's state as Prometheus
//! metrics, read at each scrape: the commit log's put and flushed offsets,
//! each replica's acknowledged offset and lag, per group and queue the
//! committed offset and the lag behind the queue's end (RocketMQ's
//! consumerProgress "Diff"), messages in retry and dead-letter queues, and
//! how sends were answered.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::Broker;

type Labels<const N: usize> = [(&'static str, String); N];

/// Counters the broker keeps as it serves.
#[derive(Debug, Default)]
pub(crate) struct BrokerCounters {
    /// Per status: sends answered (SEND_OK, FLUSH_DISK_TIMEOUT, ... or the refusal's error code).
    pub send_status: Family<Labels<1>, Counter>,
}

impl BrokerCounters {
    pub fn answered(&self, status: &str) {
        let labels = [("status", status.to_owned())];
        self.send_status.get_or_create(&labels).inc();
    }
}

#[derive(Debug)]
struct BrokerMetrics(Arc<Broker>);

fn gauge<const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<N>, i64)>,
) -> Result<(), std::fmt::Error> {
    // A family built afresh at each scrape, from what the store says now.
    let family: Family<Labels<N>, Gauge> = Family::default();
    for (labels, value) in samples {
        family.get_or_create(&labels).set(value);
    }
    family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)
}

impl Collector for BrokerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let broker = &self.0;
        let store = &broker.store;
        let put = store.end();
        let one = |v: u64| ConstGauge::new(v as i64);
        for (metric, help, value) in [
            (
                "lasthop_broker_put_offset",
                "Commit-log end: bytes appended.",
                put,
            ),
            (
                "lasthop_broker_flushed_offset",
                "Commit-log bytes fsynced (durable on this broker's disk).",
                store.flushed(),
            ),
            (
                "lasthop_broker_epoch",
                "Incarnation of this broker's store (advances at every start and failover).",
                store.epoch(),
            ),
        ] {
            let g = one(value);
            g.encode(encoder.encode_descriptor(metric, help, None, g.metric_type())?)?;
        }
        let replicas = broker.replication.replicas();
        gauge(
            &mut encoder,
            "lasthop_broker_replica_acked_offset",
            "Commit-log offset the replica has acknowledged (everything below it is on the replica).",
            replicas
                .iter()
                .map(|(r, acked)| ([("replica", r.clone())], *acked as i64)),
        )?;
        gauge(
            &mut encoder,
            "lasthop_broker_replica_lag_bytes",
            "Commit-log bytes the replica has not acknowledged yet.",
            replicas
                .iter()
                .map(|(r, acked)| ([("replica", r.clone())], put.saturating_sub(*acked) as i64)),
        )?;
        // consumerProgress: every queue of a topic a group consumes, those
        // it has not committed on yet at offset 0.
        let mut committed: std::collections::BTreeMap<(String, String, u32), u64> = store
            .committed_offsets()
            .into_iter()
            .map(|(g, t, q, o)| ((g, t, q), o))
            .collect();
        let consumed: std::collections::BTreeSet<(String, String)> = committed
            .keys()
            .map(|(g, t, _)| (g.clone(), t.clone()))
            .collect();
        for (g, t) in consumed {
            for q in store.queue_ids(&t) {
                committed.entry((g.clone(), t.clone(), q)).or_insert(0);
            }
        }
        let committed: Vec<(String, String, u32, u64)> = committed
            .into_iter()
            .map(|((g, t, q), o)| (g, t, q, o))
            .collect();
        gauge(
            &mut encoder,
            "lasthop_broker_consumer_offset",
            "Next queue offset the group will consume (its committed offset), per topic and queue.",
            committed.iter().map(|(g, t, q, o)| {
                (
                    [
                        ("group", g.clone()),
                        ("topic", t.clone()),
                        ("queue", q.to_string()),
                    ],
                    *o as i64,
                )
            }),
        )?;
        gauge(
            &mut encoder,
            "lasthop_broker_consumer_lag",
            "Messages in the queue past the group's committed offset (consumerProgress Diff).",
            committed.iter().map(|(g, t, q, o)| {
                let end = store.next_queue_offset(t, *q);
                (
                    [
                        ("group", g.clone()),
                        ("topic", t.clone()),
                        ("queue", q.to_string()),
                    ],
                    end.saturating_sub(*o) as i64,
                )
            }),
        )?;
        let queues = store.queues();
        let per_group = |prefix: &str| {
            let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
            for (topic, q) in &queues {
                if let Some(group) = topic.strip_prefix(prefix) {
                    *counts.entry(group.to_owned()).or_default() +=
                        store.next_queue_offset(topic, *q);
                }
            }
            counts
        };
        gauge(
            &mut encoder,
            "lasthop_broker_retry_messages",
            "Messages a group sent back for a retry (on its retry topic), all time.",
            per_group("%RETRY%")
                .into_iter()
                .map(|(g, n)| ([("group", g)], n as i64)),
        )?;
        gauge(
            &mut encoder,
            "lasthop_broker_dlq_messages",
            "Messages moved to a group's dead-letter queue after their retries, all time.",
            per_group("%DLQ%")
                .into_iter()
                .map(|(g, n)| ([("group", g)], n as i64)),
        )?;
        let counters = &broker.counters.send_status;
        counters.encode(encoder.encode_descriptor(
            "lasthop_broker_sends",
            "Sends answered, per status (SEND_OK, FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE, or the refusal's error).",
            None,
            counters.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Serves `/metrics` for `broker` on `listener` until `stop` resolves;
/// every metric carries the broker's name as its `broker` label.
pub(crate) async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut registry = Registry::with_labels(
        [(
            std::borrow::Cow::Borrowed("broker"),
            std::borrow::Cow::Owned(broker.config.broker_name.clone()),
        )]
        .into_iter(),
    );
    registry.register_collector(Box::new(BrokerMetrics(broker)));
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(registry));
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "broker metrics server failed");
    }
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = lasthop_telemetry::metrics::exposition(&registry, accept);
    ([(header::CONTENT_TYPE, content_type)], body)
}
