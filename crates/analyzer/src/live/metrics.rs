//! The live judge's Prometheus metrics, encoded at the collector's
//! `/metrics` beside the collector's own counters.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::{ConstGauge, Gauge};

use super::Shared;

type Labels<const N: usize> = [(&'static str, String); N];

/// Counter families, counted as messages settle.
#[derive(Debug, Default)]
pub(super) struct Families {
    /// Per (verdict, topic, group): messages judged.
    pub judged: Family<Labels<3>, Counter>,
    /// Per (hop, topic, group, broker): messages lost.
    pub lost: Family<Labels<4>, Counter>,
    /// Per (hop, topic, group, broker): when the latest loss was found,
    /// seconds since the epoch. What the alerting rule watches: unlike
    /// the first increment of a new counter series, it is seen at once.
    pub last_lost: Family<Labels<4>, Gauge<f64, AtomicU64>>,
    /// Per (from, to): verdicts a late span changed.
    pub changed: Family<Labels<2>, Counter>,
}

/// Encodes the families and the judge's gauges at each scrape.
#[derive(Debug)]
pub(super) struct LiveMetrics(pub std::sync::Arc<Shared>);

impl Collector for LiveMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shared = &self.0;
        let f = &shared.families;
        f.judged.encode(encoder.encode_descriptor(
            "lasthop_messages_judged",
            "Messages judged live, per verdict, topic and consumer group (one per message and group).",
            None,
            f.judged.metric_type(),
        )?)?;
        f.lost.encode(encoder.encode_descriptor(
            "lasthop_messages_lost",
            "Messages lost, per hop where they were lost, topic, consumer group and broker.",
            None,
            f.lost.metric_type(),
        )?)?;
        f.last_lost.encode(encoder.encode_descriptor(
            "lasthop_message_lost_last_timestamp_seconds",
            "When the latest message lost at this hop, topic, group and broker was found (Unix seconds).",
            None,
            f.last_lost.metric_type(),
        )?)?;
        f.changed.encode(encoder.encode_descriptor(
            "lasthop_verdicts_changed",
            "Verdicts that a late span changed after they were settled, per old and new verdict.",
            None,
            f.changed.metric_type(),
        )?)?;
        let status = shared.status();
        let open = ConstGauge::new(status.open as i64);
        open.encode(encoder.encode_descriptor(
            "lasthop_messages_open",
            "Messages waiting for a verdict.",
            None,
            open.metric_type(),
        )?)?;
        let counters: [(&str, &str, u64); 7] = [
            (
                "lasthop_live_spans",
                "Spans the live judge has taken in.",
                status.spans,
            ),
            (
                "lasthop_live_evicted_messages",
                "Open messages let go unjudged to keep memory bounded (report still judges them).",
                status.evicted,
            ),
            (
                "lasthop_live_forgotten_messages",
                "Settled messages forgotten to keep memory bounded (a late span of one is judged without its old verdict).",
                status.forgotten,
            ),
            (
                "lasthop_live_judgings",
                "Times a message was judged (first judging and re-checks).",
                status.judgings,
            ),
            (
                "lasthop_alerts_sent",
                "Loss alerts the webhook accepted.",
                shared.alerts.sent(),
            ),
            (
                "lasthop_alerts_retried",
                "Webhook deliveries tried again after a failure.",
                shared.alerts.retried(),
            ),
            (
                "lasthop_alerts_failed",
                "Loss alerts given up on (webhook failing past the retries, or the queue full).",
                shared.alerts.failed(),
            ),
        ];
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        Ok(())
    }
}
