//! `span_cost --recorder`: what a span would cost with a recorder of
//! lasthop's own behind the `tracing` API in place of tracing-opentelemetry
//! and the OpenTelemetry SDK (the choice put to issue 3).
//!
//! A prototype for measuring, not shipped. The layer writes a span's
//! attributes as OTLP protobuf while the span is open, and when it closes
//! appends the whole `Span` message to a shared batch; every 512 spans the
//! batch goes to an export thread that wraps it in an
//! `ExportTraceServiceRequest` and posts it over OTLP/HTTP, as the full
//! pipeline's exporter does. No `KeyValue`, `SpanData` or SDK span is built.
//! Ids come from the parent span or are new; `otel.name`, `otel.kind` and
//! `otel.status_code` are understood, every other field is an attribute. It
//! does not implement OpenTelemetry's span extension (`set_parent`,
//! `set_attribute`): `trace_context::join` parses the `traceparent` but the
//! parent is not applied, and keys are not recorded.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prost::encoding::{encode_varint, encoded_len_varint};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const BATCH_SPANS: usize = 512;

enum Job {
    Batch(Vec<u8>, u64),
    Flush(SyncSender<()>),
}

/// Cloned handles share one batch and one export thread.
#[derive(Clone)]
pub struct Recorder {
    batch: Arc<Mutex<(Vec<u8>, u64)>>,
    jobs: SyncSender<Job>,
    pub exported: Arc<AtomicU64>,
}

/// A span being recorded, kept in the registry's extensions until it closes.
struct Open {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_span_id: Option<[u8; 8]>,
    name: Cow<'static, str>,
    kind: u64,
    status: u64,
    start_ns: u64,
    /// `Span.attributes`, already encoded.
    attributes: Vec<u8>,
}

impl Recorder {
    /// Starts the export thread, posting to `url` (`http://host:port/v1/traces`).
    pub fn start(url: String, service: &str) -> Recorder {
        let (jobs, rx) = sync_channel(256);
        let exported = Arc::new(AtomicU64::new(0));
        let resource = resource(service);
        let count = exported.clone();
        std::thread::spawn(move || export_loop(rx, url, resource, count));
        Recorder {
            batch: Arc::new(Mutex::new((Vec::with_capacity(256 << 10), 0))),
            jobs,
            exported,
        }
    }

    /// Sends the partial batch and waits until everything queued is exported.
    pub fn flush(&self) {
        let (buf, n) = std::mem::take(&mut *self.batch.lock().unwrap());
        if n > 0 {
            self.jobs.send(Job::Batch(buf, n)).unwrap();
        }
        let (done, wait) = sync_channel(1);
        self.jobs.send(Job::Flush(done)).unwrap();
        wait.recv().unwrap();
    }
}

fn export_loop(rx: Receiver<Job>, url: String, resource: Vec<u8>, exported: Arc<AtomicU64>) {
    let client = reqwest::blocking::Client::new();
    let mut request = Vec::new();
    let mut checked = 0;
    while let Ok(job) = rx.recv() {
        match job {
            Job::Batch(spans, n) => {
                request.clear();
                // ExportTraceServiceRequest.resource_spans = 1 {
                //   resource = 1, scope_spans = 2 { scope = 1 { name = 1 }, spans = 2... } }
                let scope_name = b"lasthop";
                let scope_len = 2 + scope_name.len();
                let scope_spans_len =
                    1 + encoded_len_varint(scope_len as u64) + scope_len + spans.len();
                let resource_spans_len = resource.len()
                    + 1
                    + encoded_len_varint(scope_spans_len as u64)
                    + scope_spans_len;
                header(&mut request, 1, resource_spans_len);
                request.extend_from_slice(&resource);
                header(&mut request, 2, scope_spans_len);
                header(&mut request, 1, scope_len);
                header(&mut request, 1, scope_name.len());
                request.extend_from_slice(scope_name);
                request.extend_from_slice(&spans);
                if checked == 0 {
                    check(&request, n);
                    checked += 1;
                }
                let sent = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(request.clone())
                    .send();
                if sent.is_ok_and(|r| r.status().is_success()) {
                    exported.fetch_add(n, Ordering::Relaxed);
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The prototype's bytes are a real OTLP request: decoded by
/// opentelemetry-proto, with every span and its attributes.
fn check(request: &[u8], spans: u64) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let decoded = ExportTraceServiceRequest::decode(request).expect("the recorder's OTLP decodes");
    let resource_spans = &decoded.resource_spans[0];
    let found: Vec<_> = resource_spans
        .scope_spans
        .iter()
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(found.len() as u64, spans);
    assert!(
        found
            .iter()
            .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8)
    );
    assert!(
        found
            .iter()
            .all(|s| !s.attributes.is_empty() && s.end_time_unix_nano >= s.start_time_unix_nano)
    );
    let service = &resource_spans.resource.as_ref().unwrap().attributes[0];
    assert_eq!(service.key, "service.name");
}

/// `ResourceSpans.resource` with `service.name`, encoded.
fn resource(service: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    key_value_str(&mut attrs, 1, "service.name", service);
    let mut out = Vec::new();
    header(&mut out, 1, attrs.len());
    out.extend_from_slice(&attrs);
    out
}

fn header(out: &mut Vec<u8>, field: u64, len: usize) {
    encode_varint((field << 3) | LEN, out);
    encode_varint(len as u64, out);
}

/// A `KeyValue` with a string value as field `field` of the message in `out`.
fn key_value_str(out: &mut Vec<u8>, field: u64, key: &str, value: &str) {
    // AnyValue.string_value = 1
    let any = 1 + encoded_len_varint(value.len() as u64) + value.len();
    key_value(out, field, key, any, |out| {
        header(out, 1, value.len());
        out.extend_from_slice(value.as_bytes());
    });
}

/// A `KeyValue` with an integer value.
fn key_value_int(out: &mut Vec<u8>, field: u64, key: &str, value: i64) {
    // AnyValue.int_value = 3
    let any = 1 + encoded_len_varint(value as u64);
    key_value(out, field, key, any, |out| {
        encode_varint((3 << 3) | VARINT, out);
        encode_varint(value as u64, out);
    });
}

/// A `KeyValue` whose `AnyValue` body, `any` bytes long, `write_any` appends.
fn key_value(
    out: &mut Vec<u8>,
    field: u64,
    key: &str,
    any: usize,
    write_any: impl FnOnce(&mut Vec<u8>),
) {
    let kv = 1
        + encoded_len_varint(key.len() as u64)
        + key.len()
        + 1
        + encoded_len_varint(any as u64)
        + any;
    header(out, field, kv);
    header(out, 1, key.len());
    out.extend_from_slice(key.as_bytes());
    header(out, 2, any);
    write_any(out);
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1,
    );
}

/// xorshift64*: an id that is not zero.
fn random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1
    })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Visit for Open {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "otel.name" => self.name = Cow::Owned(value.to_owned()),
            "otel.kind" => {
                // OTLP Span.SpanKind: internal 1, server 2, client 3, producer 4, consumer 5.
                self.kind = match value {
                    "server" => 2,
                    "client" => 3,
                    "producer" => 4,
                    "consumer" => 5,
                    _ => 1,
                }
            }
            "otel.status_code" => self.status = if value == "error" { 2 } else { 1 },
            name => key_value_str(&mut self.attributes, 9, name, value),
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        key_value_int(&mut self.attributes, 9, field.name(), value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Open {
    /// Appends this span as `ScopeSpans.spans` (field 2).
    fn encode(&self, out: &mut Vec<u8>, end_ns: u64) {
        let name = self.name.as_bytes();
        let status_len = if self.status != 0 { 2 } else { 0 };
        let len = 18
            + 10
            + self.parent_span_id.map_or(0, |_| 10)
            + 1
            + encoded_len_varint(name.len() as u64)
            + name.len()
            + 2
            + 9
            + 9
            + self.attributes.len()
            + if status_len > 0 { 2 + status_len } else { 0 };
        header(out, 2, len);
        header(out, 1, 16);
        out.extend_from_slice(&self.trace_id);
        header(out, 2, 8);
        out.extend_from_slice(&self.span_id);
        if let Some(parent) = &self.parent_span_id {
            header(out, 4, 8);
            out.extend_from_slice(parent);
        }
        header(out, 5, name.len());
        out.extend_from_slice(name);
        encode_varint((6 << 3) | VARINT, out);
        encode_varint(self.kind, out);
        encode_varint((7 << 3) | FIXED64, out);
        out.extend_from_slice(&self.start_ns.to_le_bytes());
        encode_varint((8 << 3) | FIXED64, out);
        out.extend_from_slice(&end_ns.to_le_bytes());
        out.extend_from_slice(&self.attributes);
        if status_len > 0 {
            // Span.status = 15 { code = 3 }
            header(out, 15, status_len);
            encode_varint((3 << 3) | VARINT, out);
            encode_varint(self.status, out);
        }
    }
}

impl<S> Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<Open>()
                .map(|o| (o.trace_id, o.span_id))
        });
        let trace_id = parent.map_or_else(
            || {
                let mut id = [0; 16];
                id[..8].copy_from_slice(&random().to_le_bytes());
                id[8..].copy_from_slice(&random().to_le_bytes());
                id
            },
            |(t, _)| t,
        );
        let mut open = Open {
            trace_id,
            span_id: random().to_le_bytes(),
            parent_span_id: parent.map(|(_, s)| s),
            name: Cow::Borrowed(attrs.metadata().name()),
            kind: 1,
            status: 0,
            start_ns: now_ns(),
            attributes: Vec::with_capacity(32 * attrs.fields().len()),
        };
        attrs.record(&mut open);
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(open) = span.extensions_mut().get_mut::<Open>()
        {
            values.record(open);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(open) = ctx
            .span(&id)
            .and_then(|s| s.extensions_mut().remove::<Open>())
        else {
            return;
        };
        let end_ns = now_ns();
        let full = {
            let mut batch = self.batch.lock().unwrap();
            open.encode(&mut batch.0, end_ns);
            batch.1 += 1;
            (batch.1 as usize >= BATCH_SPANS).then(|| std::mem::take(&mut *batch))
        };
        if let Some((buf, n)) = full {
            // A full export queue blocks the span's thread here; the
            // benchmark checks that every span was exported.
            let _ = self.jobs.send(Job::Batch(buf, n));
        }
    }
}
