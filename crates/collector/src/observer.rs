//! Seams through which another part of lasthop joins a running collector:
//! a [`SpanObserver`] hears every span once it is searchable, [`Plugins`]
//! carries that observer, more API routes and more metrics to
//! [`crate::server::start`]. The collector knows nothing of what they do
//! (the live judge, for one, lives in the analyzer).

use std::sync::Arc;

use lasthop_vocab::SpanRecord;
use prometheus_client::collector::Collector;

use crate::store::SpanStore;

/// Hears every acknowledged span once, on the index thread, batch by
/// batch in the order of the write-ahead log, right after the batch's
/// documents are added to the index writer: they are searchable from the
/// next commit on (within the commit interval). Spans replayed from the
/// write-ahead log when the collector starts belong to before it and are
/// not told.
///
/// The records are handed over, not copied, so observing costs the
/// collector nothing it would not spend dropping them (measured in
/// `BENCHMARKS.md`, "Live judging").
///
/// It may block: blocking holds the index back, and a collector whose index
/// falls behind pushes back on senders (OTLP's retryable statuses), so an
/// observer that cannot keep up slows ingestion instead of losing spans.
pub trait SpanObserver: Send + Sync + 'static {
    /// The collector's store, once it is open (before any [`Self::indexed`]).
    fn opened(&self, _store: &SpanStore) {}

    /// The spans of one accepted batch, now in the index writer.
    fn indexed(&self, records: Vec<SpanRecord>);
}

/// Makes routes for the query API's router from the collector's store
/// once it is open (with their own state applied).
pub type Routes = Arc<dyn Fn(&SpanStore) -> axum::Router + Send + Sync>;

/// What [`crate::server::start`] serves besides the collector's own parts.
#[derive(Clone, Default)]
pub struct Plugins {
    /// Told of every indexed span.
    pub observer: Option<Arc<dyn SpanObserver>>,
    /// Routes merged into the query API's router, in order.
    pub routes: Vec<Routes>,
    /// Metric collectors encoded at `/metrics` after the collector's own.
    pub metrics: Vec<Arc<dyn Collector>>,
}

impl Plugins {
    /// These plugins with more routes.
    pub fn with_routes(
        mut self,
        routes: impl Fn(&SpanStore) -> axum::Router + Send + Sync + 'static,
    ) -> Plugins {
        self.routes.push(Arc::new(routes));
        self
    }
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("observer", &self.observer.is_some())
            .field("routes", &self.routes.len())
            .field("metrics", &self.metrics.len())
            .finish()
    }
}
