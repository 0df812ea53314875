//! The tantivy schema of the span index.
//!
//! Lookup fields (ids, keys, names) are indexed as raw terms; the fields batch
//! work reads are fast fields (columnar); the whole [`SpanRecord`] is stored
//! once, postcard-encoded, in `record`, so a hit reads back exactly what was
//! acknowledged without a stored copy of every field.

use lasthop_vocab::SpanRecord;
use tantivy::TantivyDocument;
use tantivy::schema::document::{DeserializeError, DocumentDeserialize, DocumentDeserializer};
use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, SchemaBuilder};

/// Separator inside `svc_op` terms (service, then span name).
pub const SVC_OP_SEP: char = '\u{1f}';
/// Tag terms longer than this are not indexed (they stay in the stored record).
const MAX_TAG_TERM: usize = 256;

/// Field handles of the span index.
#[derive(Clone, Debug)]
pub struct SpanSchema {
    pub schema: Schema,
    pub trace_id: Field,
    pub span_id: Field,
    pub service: Field,
    pub name: Field,
    /// `service\x1fname`: lists a service's operations from the term dictionary.
    pub svc_op: Field,
    pub hop: Field,
    pub message_id: Field,
    pub keys: Field,
    pub topic: Field,
    pub group: Field,
    pub broker: Field,
    pub error_type: Field,
    /// `key=value` of every scalar attribute, for tag search.
    pub tags: Field,
    pub start_ns: Field,
    pub end_ns: Field,
    pub status: Field,
    pub queue_id: Field,
    pub epoch: Field,
    pub commitlog_offset: Field,
    pub commitlog_size: Field,
    pub queue_offset: Field,
    pub range_start: Field,
    pub range_end: Field,
    pub record: Field,
}

impl Default for SpanSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanSchema {
    pub fn new() -> Self {
        let mut b = SchemaBuilder::new();
        let lookup = STRING | FAST;
        let mut s = SpanSchema {
            trace_id: b.add_text_field("trace_id", lookup.clone()),
            span_id: b.add_text_field("span_id", FAST),
            service: b.add_text_field("service", lookup.clone()),
            name: b.add_text_field("name", lookup.clone()),
            svc_op: b.add_text_field("svc_op", STRING),
            hop: b.add_text_field("hop", lookup.clone()),
            message_id: b.add_text_field("message_id", lookup.clone()),
            keys: b.add_text_field("keys", lookup.clone()),
            topic: b.add_text_field("topic", lookup.clone()),
            group: b.add_text_field("group", lookup.clone()),
            broker: b.add_text_field("broker", lookup),
            error_type: b.add_text_field("error_type", FAST),
            tags: b.add_text_field("tags", STRING),
            start_ns: b.add_u64_field("start_ns", INDEXED | FAST),
            end_ns: b.add_u64_field("end_ns", FAST),
            status: b.add_u64_field("status", FAST),
            queue_id: b.add_u64_field("queue_id", FAST),
            epoch: b.add_u64_field("epoch", FAST),
            commitlog_offset: b.add_u64_field("commitlog_offset", FAST),
            commitlog_size: b.add_u64_field("commitlog_size", FAST),
            queue_offset: b.add_u64_field("queue_offset", FAST),
            range_start: b.add_u64_field("range_start", FAST),
            range_end: b.add_u64_field("range_end", FAST),
            record: b.add_bytes_field("record", STORED),
            schema: Schema::builder().build(),
        };
        s.schema = b.build();
        s
    }

    /// The index document of a record; `encoded` is the record's postcard bytes.
    pub fn document(&self, r: &SpanRecord, encoded: &[u8]) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_text(self.trace_id, &r.trace_id);
        d.add_text(self.span_id, &r.span_id);
        d.add_text(self.service, &r.service);
        d.add_text(self.name, &r.name);
        d.add_text(self.svc_op, format!("{}{SVC_OP_SEP}{}", r.service, r.name));
        let text = [
            (self.hop, r.hop.map(|h| h.as_str())),
            (self.message_id, r.message_id.as_deref()),
            (self.topic, r.topic.as_deref()),
            (self.group, r.group.as_deref()),
            (self.broker, r.broker.as_deref()),
            (self.error_type, r.error_type.as_deref()),
        ];
        for (field, value) in text {
            if let Some(v) = value {
                d.add_text(field, v);
            }
        }
        for key in &r.keys {
            d.add_text(self.keys, key);
        }
        for a in &r.attributes {
            if let Some(v) = a.value.scalar_text() {
                let term = format!("{}={}", a.key, v);
                if term.len() <= MAX_TAG_TERM {
                    d.add_text(self.tags, term);
                }
            }
        }
        d.add_u64(self.start_ns, r.start_ns);
        d.add_u64(self.end_ns, r.end_ns);
        d.add_u64(self.status, status_number(r));
        let numbers = [
            (self.queue_id, r.queue_id.map(u64::from)),
            (self.epoch, r.epoch),
            (self.commitlog_offset, r.commitlog_offset),
            (self.commitlog_size, r.commitlog_size),
            (self.queue_offset, r.queue_offset),
            (self.range_start, r.range_start),
            (self.range_end, r.range_end),
        ];
        for (field, value) in numbers {
            if let Some(v) = value {
                d.add_u64(field, v);
            }
        }
        d.add_bytes(self.record, encoded);
        d
    }
}

/// A stored span document read back as its record's postcard bytes alone.
/// `record` is the schema's only stored field, so the first stored value is
/// the record; nothing else is built (a `TantivyDocument` would allocate a
/// table of field values for every document read).
pub(super) struct StoredRecord(pub Vec<u8>);

impl DocumentDeserialize for StoredRecord {
    fn deserialize<'de, D: DocumentDeserializer<'de>>(
        mut doc: D,
    ) -> Result<Self, DeserializeError> {
        match doc.next_field::<Vec<u8>>()? {
            Some((_, bytes)) => Ok(StoredRecord(bytes)),
            None => Err(DeserializeError::custom("span document without record")),
        }
    }
}

/// 0 unset, 1 ok, 2 error: the OTLP numbers.
fn status_number(r: &SpanRecord) -> u64 {
    match r.status {
        lasthop_vocab::StatusCode::Unset => 0,
        lasthop_vocab::StatusCode::Ok => 1,
        lasthop_vocab::StatusCode::Error => 2,
    }
}
