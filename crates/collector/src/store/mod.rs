//! The span store: a tantivy index of [`SpanRecord`]s.
//!
//! Readers ([`SpanStore`]) open the index read-only and may run in other
//! processes while a collector writes; they see what the writer has
//! committed (at most one commit interval behind an acknowledgement, and
//! about 50 ms once the spans stop coming).
//! Writing happens only through the collector's pipeline, which owns the
//! index writer and the write-ahead log (see `pipeline.rs`).

mod chunk;
mod context;
mod facts;
mod scan;
pub mod schema;
mod window;

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use lasthop_vocab::SpanRecord;
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, Index, IndexReader, Order, ReloadPolicy, Searcher, Term};

pub use facts::{FactBatch, FactsFold, KeyMemo, MessageKey, NONE, Names, message_key};
pub use scan::{ScanColumns, ScanRow};
pub use schema::SpanSchema;
use schema::StoredRecord;
pub use window::{Messages, Share};

/// Most spans one lookup returns.
pub const LOOKUP_LIMIT: usize = 100_000;

/// Errors of the span store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory holds no span index yet.
    #[error("no lasthop data in {0}: start `lasthop collector` or run `lasthop ingest` first")]
    NotFound(PathBuf),
    /// The index could not be opened, read or written.
    #[error("span index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// A stored span could not be decoded.
    #[error("stored span is unreadable: {0}")]
    Decode(#[from] postcard::Error),
    /// Reading index files failed.
    #[error("span index i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The index directory could not be opened.
    #[error("cannot open span index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
}

/// Where the index lives inside a data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// Opens the index in `dir`, creating it if `create` and it does not exist.
pub(crate) fn open_index(dir: &Path, create: bool) -> Result<Index, StoreError> {
    if !dir.join("meta.json").exists() {
        if !create {
            return Err(StoreError::NotFound(dir.parent().unwrap_or(dir).to_owned()));
        }
        std::fs::create_dir_all(dir)?;
    }
    let directory = MmapDirectory::open(dir)?;
    Ok(Index::open_or_create(directory, SpanSchema::new().schema)?)
}

/// A search over spans, in the shape of Jaeger's trace search.
#[derive(Debug, Default, Clone)]
pub struct SpanQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// `key=value` pairs every span must carry (lifted fields included: `messaging.message.id`, ...).
    pub tags: Vec<(String, String)>,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    /// Most spans to return, newest first.
    pub limit: usize,
}

/// Read access to the span index.
#[derive(Clone)]
pub struct SpanStore {
    reader: IndexReader,
    /// When set, every read sees this commit (see [`SpanStore::pinned`]).
    pinned: Option<Searcher>,
    schema: SpanSchema,
}

impl std::fmt::Debug for SpanStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanStore").finish_non_exhaustive()
    }
}

impl SpanStore {
    /// Opens the store of a data directory for reading.
    pub fn open(data_dir: &Path) -> Result<SpanStore, StoreError> {
        let index = open_index(&index_dir(data_dir), false)?;
        Self::from_index(index, ReloadPolicy::OnCommitWithDelay)
    }

    pub(crate) fn from_index(index: Index, policy: ReloadPolicy) -> Result<SpanStore, StoreError> {
        let reader = index.reader_builder().reload_policy(policy).try_into()?;
        Ok(SpanStore {
            reader,
            pinned: None,
            schema: SpanSchema::new(),
        })
    }

    /// Sees the latest commit now.
    pub fn reload(&self) -> Result<(), StoreError> {
        Ok(self.reader.reload()?)
    }

    pub fn schema(&self) -> &SpanSchema {
        &self.schema
    }

    /// Segments of the index as last reloaded.
    pub fn segment_count(&self) -> usize {
        self.searcher().segment_readers().len()
    }

    /// The store as of now: reads through the returned store keep seeing
    /// this commit while a collector goes on writing, so passes over a
    /// window agree on what is in it.
    pub fn pinned(&self) -> SpanStore {
        SpanStore {
            pinned: Some(self.searcher()),
            ..self.clone()
        }
    }

    fn searcher(&self) -> Searcher {
        match &self.pinned {
            Some(searcher) => searcher.clone(),
            None => self.reader.searcher(),
        }
    }

    /// Number of spans stored.
    pub fn count(&self) -> u64 {
        self.searcher().num_docs()
    }

    /// Every span of a trace (hex, either case), oldest first.
    pub fn by_trace_id(&self, trace_id: &str) -> Result<Vec<SpanRecord>, StoreError> {
        self.by_term(self.schema.trace_id, &trace_id.to_ascii_lowercase())
    }

    /// Every span naming a message id, oldest first.
    pub fn by_message_id(&self, message_id: &str) -> Result<Vec<SpanRecord>, StoreError> {
        self.by_term(self.schema.message_id, message_id)
    }

    /// Every span carrying a business key, oldest first.
    pub fn by_key(&self, key: &str) -> Result<Vec<SpanRecord>, StoreError> {
        self.by_term(self.schema.keys, key)
    }

    /// Spans that started in `[start_ns, end_ns)`, oldest first, at most `limit`.
    pub fn by_time_range(
        &self,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<SpanRecord>, StoreError> {
        let query = self.time_query(Some(start_ns), Some(end_ns));
        self.collect(&query, limit, Order::Asc)
    }

    /// Spans matching a Jaeger-style search, newest first.
    pub fn find(&self, q: &SpanQuery) -> Result<Vec<SpanRecord>, StoreError> {
        let s = &self.schema;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut term = |field: Field, value: &str| {
            clauses.push((Occur::Must, Box::new(term_query(field, value))));
        };
        if let Some(service) = &q.service {
            term(s.service, service);
        }
        if let Some(op) = &q.operation {
            term(s.name, op);
        }
        for (key, value) in &q.tags {
            match self.lifted_field(key) {
                Some(field) => term(field, value),
                None => term(s.tags, &format!("{key}={value}")),
            }
        }
        if q.start_ns.is_some() || q.end_ns.is_some() {
            clauses.push((Occur::Must, self.time_query(q.start_ns, q.end_ns)));
        }
        let query: Box<dyn Query> = if clauses.is_empty() {
            Box::new(tantivy::query::AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        };
        self.collect(query.as_ref(), q.limit.max(1), Order::Desc)
    }

    /// Names of the services that sent spans, sorted.
    pub fn services(&self) -> Result<Vec<String>, StoreError> {
        self.terms(self.schema.service, |t| Some(t.to_owned()))
    }

    /// Span names seen for a service, sorted.
    pub fn operations(&self, service: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{service}{}", schema::SVC_OP_SEP);
        self.terms(self.schema.svc_op, |t| {
            t.strip_prefix(&prefix).map(str::to_owned)
        })
    }

    /// Attribute keys lifted into their own field, so a tag search finds them.
    fn lifted_field(&self, key: &str) -> Option<Field> {
        use lasthop_vocab::attr;
        let s = &self.schema;
        Some(match key {
            attr::MESSAGING_MESSAGE_ID | attr::legacy::MESSAGING_MESSAGE_ID => s.message_id,
            attr::MESSAGING_ROCKETMQ_MESSAGE_KEYS => s.keys,
            attr::MESSAGING_DESTINATION_NAME => s.topic,
            attr::MESSAGING_CONSUMER_GROUP_NAME => s.group,
            attr::HOP => s.hop,
            attr::BROKER => s.broker,
            attr::ERROR_TYPE => s.error_type,
            _ => return None,
        })
    }

    fn by_term(&self, field: Field, value: &str) -> Result<Vec<SpanRecord>, StoreError> {
        self.collect(&term_query(field, value), LOOKUP_LIMIT, Order::Asc)
    }

    fn time_query(&self, start: Option<u64>, end: Option<u64>) -> Box<dyn Query> {
        let field = self.schema.start_ns;
        let lower = start.map_or(Bound::Unbounded, |v| {
            Bound::Included(Term::from_field_u64(field, v))
        });
        let upper = end.map_or(Bound::Unbounded, |v| {
            Bound::Excluded(Term::from_field_u64(field, v))
        });
        if matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
            return Box::new(tantivy::query::AllQuery);
        }
        Box::new(RangeQuery::new(lower, upper))
    }

    fn collect(
        &self,
        query: &dyn Query,
        limit: usize,
        order: Order,
    ) -> Result<Vec<SpanRecord>, StoreError> {
        let searcher = self.searcher();
        let top = TopDocs::with_limit(limit).order_by_fast_field::<u64>("start_ns", order);
        let hits = searcher.search(query, &top)?;
        let mut out = Vec::with_capacity(hits.len());
        for (_, address) in hits {
            out.push(self.record(&searcher, address)?);
        }
        if order == Order::Asc {
            // Equal start times: a stable order by span id.
            out.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
        }
        Ok(out)
    }

    fn record(&self, searcher: &Searcher, address: DocAddress) -> Result<SpanRecord, StoreError> {
        let StoredRecord(bytes) = searcher.doc(address)?;
        Ok(postcard::from_bytes(&bytes)?)
    }

    fn terms(
        &self,
        field: Field,
        keep: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = BTreeSet::new();
        for segment in self.searcher().segment_readers() {
            let inverted = segment.inverted_index(field)?;
            let mut stream = inverted.terms().stream()?;
            while stream.advance() {
                if let Some(kept) = std::str::from_utf8(stream.key()).ok().and_then(&keep) {
                    out.insert(kept);
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

fn term_query(field: Field, value: &str) -> TermQuery {
    TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    )
}
