//! Full scans over fast fields, for batch work (loss reports over history).
//!
//! A scan reads only columns, never the stored records. String columns are
//! dictionary-encoded per segment: each dictionary is decoded once into shared
//! strings, and rows point at them, so repeated values (hop, service, topic)
//! cost one allocation per segment rather than one per row.

use std::sync::Arc;

use tantivy::SegmentReader;
use tantivy::columnar::Column;

use super::chunk::{Mapped, numbers};
use super::{SpanStore, StoreError};

/// The fast-field columns of the spans a scan selected, one entry per span.
#[derive(Debug, Default, Clone)]
pub struct ScanColumns {
    pub trace_id: Vec<Arc<str>>,
    pub span_id: Vec<Arc<str>>,
    pub service: Vec<Arc<str>>,
    pub name: Vec<Arc<str>>,
    pub hop: Vec<Option<Arc<str>>>,
    pub message_id: Vec<Option<Arc<str>>>,
    pub keys: Vec<Vec<Arc<str>>>,
    pub topic: Vec<Option<Arc<str>>>,
    pub group: Vec<Option<Arc<str>>>,
    pub broker: Vec<Option<Arc<str>>>,
    pub error_type: Vec<Option<Arc<str>>>,
    pub start_ns: Vec<u64>,
    pub end_ns: Vec<u64>,
    /// 0 unset, 1 ok, 2 error.
    pub status: Vec<u64>,
    pub queue_id: Vec<Option<u64>>,
    pub epoch: Vec<Option<u64>>,
    pub commitlog_offset: Vec<Option<u64>>,
    pub commitlog_size: Vec<Option<u64>>,
    pub queue_offset: Vec<Option<u64>>,
    pub range_start: Vec<Option<u64>>,
    pub range_end: Vec<Option<u64>>,
}

/// One span of a [`ScanColumns`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct ScanRow<'a> {
    pub columns: &'a ScanColumns,
    pub index: usize,
}

impl ScanColumns {
    pub fn len(&self) -> usize {
        self.start_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start_ns.is_empty()
    }

    pub fn rows(&self) -> impl Iterator<Item = ScanRow<'_>> {
        (0..self.len()).map(move |index| ScanRow {
            columns: self,
            index,
        })
    }
}

/// A string column with its dictionary decoded once into shared strings.
fn strings(segment: &SegmentReader, name: &str) -> Result<Mapped<Arc<str>>, StoreError> {
    Mapped::open(segment, name, |bytes| {
        Arc::from(String::from_utf8_lossy(bytes).as_ref())
    })
}

pub(super) fn first(column: &Option<Column<u64>>, doc: u32) -> Option<u64> {
    column.as_ref().and_then(|c| c.first(doc))
}

impl SpanStore {
    /// Reads the columns of every span that started in `[start_ns, end_ns)`
    /// (either bound open when `None`), in index order.
    pub fn scan(
        &self,
        start_ns: Option<u64>,
        end_ns: Option<u64>,
    ) -> Result<ScanColumns, StoreError> {
        let searcher = self.searcher();
        let mut out = ScanColumns::default();
        let lo = start_ns.unwrap_or(0);
        let hi = end_ns.unwrap_or(u64::MAX);
        for segment in searcher.segment_readers() {
            scan_segment(segment, lo, hi, &mut out)?;
        }
        Ok(out)
    }
}

/// Appends the columns of `segment`'s spans that started in `[lo, hi)` to `out`.
pub(super) fn scan_segment(
    segment: &SegmentReader,
    lo: u64,
    hi: u64,
    out: &mut ScanColumns,
) -> Result<(), StoreError> {
    {
        {
            let start = numbers(segment, "start_ns")?;
            let [
                trace_id,
                span_id,
                service,
                name,
                hop,
                message_id,
                keys,
                topic,
                group,
                broker,
                error_type,
            ] = [
                "trace_id",
                "span_id",
                "service",
                "name",
                "hop",
                "message_id",
                "keys",
                "topic",
                "group",
                "broker",
                "error_type",
            ]
            .map(|n| strings(segment, n));
            let (trace_id, span_id, service, name) = (trace_id?, span_id?, service?, name?);
            let (hop, message_id, keys, topic) = (hop?, message_id?, keys?, topic?);
            let (group, broker, error_type) = (group?, broker?, error_type?);
            let [
                end,
                status,
                queue_id,
                epoch,
                cl_offset,
                cl_size,
                q_offset,
                r_start,
                r_end,
            ] = [
                "end_ns",
                "status",
                "queue_id",
                "epoch",
                "commitlog_offset",
                "commitlog_size",
                "queue_offset",
                "range_start",
                "range_end",
            ]
            .map(|n| numbers(segment, n));
            let (end, status, queue_id, epoch) = (end?, status?, queue_id?, epoch?);
            let (cl_offset, cl_size, q_offset, r_start, r_end) =
                (cl_offset?, cl_size?, q_offset?, r_start?, r_end?);
            let alive = segment.alive_bitset();
            let empty: Arc<str> = Arc::from("");
            for doc in 0..segment.max_doc() {
                if alive.is_some_and(|a| !a.is_alive(doc)) {
                    continue;
                }
                let t = first(&start, doc).unwrap_or(0);
                if t < lo || t >= hi {
                    continue;
                }
                out.start_ns.push(t);
                out.trace_id
                    .push(trace_id.first(doc).unwrap_or_else(|| empty.clone()));
                out.span_id
                    .push(span_id.first(doc).unwrap_or_else(|| empty.clone()));
                out.service
                    .push(service.first(doc).unwrap_or_else(|| empty.clone()));
                out.name
                    .push(name.first(doc).unwrap_or_else(|| empty.clone()));
                out.hop.push(hop.first(doc));
                out.message_id.push(message_id.first(doc));
                out.keys.push(keys.all(doc));
                out.topic.push(topic.first(doc));
                out.group.push(group.first(doc));
                out.broker.push(broker.first(doc));
                out.error_type.push(error_type.first(doc));
                out.end_ns.push(first(&end, doc).unwrap_or(t));
                out.status.push(first(&status, doc).unwrap_or(0));
                out.queue_id.push(first(&queue_id, doc));
                out.epoch.push(first(&epoch, doc));
                out.commitlog_offset.push(first(&cl_offset, doc));
                out.commitlog_size.push(first(&cl_size, doc));
                out.queue_offset.push(first(&q_offset, doc));
                out.range_start.push(first(&r_start, doc));
                out.range_end.push(first(&r_end, doc));
            }
        }
    }
    Ok(())
}
