//! OTLP/protobuf `ExportTraceServiceRequest` bytes straight to normalized
//! span records.
//!
//! The generic path (prost into opentelemetry-proto's structs, then
//! [`normalize_request`](crate::normalize::normalize_request)) allocates every
//! id, attribute key and `AnyValue` wrapper only to convert, move or drop
//! them: on the collector's hot path it cost more CPU than anything but
//! tantivy. This reader walks the wire format once, borrows ids and attribute
//! keys from the request bytes, and allocates only what a record keeps; the
//! lifting rules are the same code (`normalize_parts`).
//!
//! Contract, checked by the property test in `proto_tests.rs`: for every
//! request prost can decode, the result equals the generic path's. It refuses,
//! like prost, broken varints, keys and lengths, a wire type that does not
//! fit a field it reads, and strings that are not UTF-8. Fields lasthop does
//! not keep (scopes, schema URLs, trace state, dropped counts, flags) are
//! skipped without looking inside them.
//!
//! Protobuf allows fields in any order and a singular field more than once:
//! a `ResourceSpans`' resource is read before its spans wherever it stands;
//! repeated resources, statuses and values merge as protobuf merges messages
//! (later scalars win, repeated fields append).

use lasthop_vocab::{AttrValue, Attribute, SpanEvent, attr};
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

use crate::normalize::{Normalized, SpanParts, hex, kvlist_value, normalize_parts};

/// Attribute values nested deeper than this (arrays in arrays, lists in
/// lists) are refused, as prost refuses messages nested past its limit.
pub const MAX_VALUE_DEPTH: usize = 64;

/// Why a request body is not a valid `ExportTraceServiceRequest`.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The wire format is broken: a bad varint or key, a length past the end.
    #[error("{at}: {source}")]
    Wire {
        at: &'static str,
        source: prost::DecodeError,
    },
    /// A field arrived with a wire type its declared type cannot have.
    #[error("{at}: wire type {actual:?} where {expected:?} was expected")]
    WireType {
        at: &'static str,
        expected: WireType,
        actual: WireType,
    },
    /// A field runs past the end of the message that holds it.
    #[error("{at}: field runs past the end of its message")]
    Truncated { at: &'static str },
    /// A string field is not UTF-8.
    #[error("{at}: string is not valid UTF-8")]
    Utf8 { at: &'static str },
    /// Attribute values nested deeper than [`MAX_VALUE_DEPTH`].
    #[error("attribute values nested more than {MAX_VALUE_DEPTH} levels deep")]
    TooDeep,
}

type Result<T> = std::result::Result<T, ProtoError>;

/// Decodes and normalizes every span of an OTLP/protobuf export request.
pub fn decode_request(bytes: &[u8]) -> Result<Normalized> {
    let mut out = Normalized::default();
    let mut r = Reader::new(bytes);
    while let Some((tag, wire)) = r.field("ExportTraceServiceRequest")? {
        match tag {
            1 => {
                let message = r.message(wire, "ExportTraceServiceRequest.resource_spans")?;
                resource_spans(message, &mut out)?;
            }
            _ => r.skip(tag, wire, "ExportTraceServiceRequest")?,
        }
    }
    Ok(out)
}

fn resource_spans(message: Reader<'_>, out: &mut Normalized) -> Result<()> {
    let mut service = None;
    let mut resource = Vec::new();
    let mut r = message.clone();
    while let Some((tag, wire)) = r.field("ResourceSpans")? {
        match tag {
            1 => resource_attributes(
                r.message(wire, "ResourceSpans.resource")?,
                &mut service,
                &mut resource,
            )?,
            _ => r.skip(tag, wire, "ResourceSpans")?,
        }
    }
    let service = service.unwrap_or_else(|| "unknown_service".to_owned());
    let mut r = message;
    while let Some((tag, wire)) = r.field("ResourceSpans")? {
        match tag {
            2 => scope_spans(
                r.message(wire, "ResourceSpans.scope_spans")?,
                &service,
                &resource,
                out,
            )?,
            _ => r.skip(tag, wire, "ResourceSpans")?,
        }
    }
    Ok(())
}

/// A resource's attributes: `service.name` (a string) apart, the rest kept.
fn resource_attributes(
    mut r: Reader<'_>,
    service: &mut Option<String>,
    resource: &mut Vec<Attribute>,
) -> Result<()> {
    while let Some((tag, wire)) = r.field("Resource")? {
        match tag {
            1 => match key_value(r.message(wire, "Resource.attributes")?, 0)? {
                (attr::SERVICE_NAME, AttrValue::Str(s)) => *service = Some(s),
                (key, value) => resource.push(Attribute::new(key, value)),
            },
            _ => r.skip(tag, wire, "Resource")?,
        }
    }
    Ok(())
}

fn scope_spans<'a>(
    message: Reader<'a>,
    service: &str,
    resource: &[Attribute],
    out: &mut Normalized,
) -> Result<()> {
    // The scope first (it may follow the spans on the wire), then the spans.
    let mut scope = "";
    let mut r = message.clone();
    while let Some((tag, wire)) = r.field("ScopeSpans")? {
        match tag {
            1 => scope = scope_name(r.message(wire, "ScopeSpans.scope")?)?,
            _ => r.skip(tag, wire, "ScopeSpans")?,
        }
    }
    let mut r = message;
    while let Some((tag, wire)) = r.field("ScopeSpans")? {
        match tag {
            2 => {
                let mut parts = span(r.message(wire, "ScopeSpans.spans")?)?;
                parts.scope = scope;
                match normalize_parts(parts, service, resource) {
                    Ok(record) => out.records.push(record),
                    Err(reason) => {
                        out.rejected += 1;
                        out.first_reason.get_or_insert(reason);
                    }
                }
            }
            _ => r.skip(tag, wire, "ScopeSpans")?,
        }
    }
    Ok(())
}

/// `InstrumentationScope.name`.
fn scope_name<'a>(mut r: Reader<'a>) -> Result<&'a str> {
    let mut name = "";
    while let Some((tag, wire)) = r.field("InstrumentationScope")? {
        match tag {
            1 => name = r.str(wire, "InstrumentationScope.name")?,
            _ => r.skip(tag, wire, "InstrumentationScope")?,
        }
    }
    Ok(name)
}

fn span(mut r: Reader<'_>) -> Result<SpanParts<'_, &str>> {
    let mut s = SpanParts {
        trace_id: &[],
        span_id: &[],
        parent_span_id: &[],
        scope: "",
        name: String::new(),
        kind: 0,
        start_ns: 0,
        end_ns: 0,
        attributes: Vec::with_capacity(16),
        events: Vec::new(),
        links: Vec::new(),
        status_code: 0,
        status_message: String::new(),
    };
    while let Some((tag, wire)) = r.field("Span")? {
        match tag {
            1 => s.trace_id = r.bytes(wire, "Span.trace_id")?,
            2 => s.span_id = r.bytes(wire, "Span.span_id")?,
            4 => s.parent_span_id = r.bytes(wire, "Span.parent_span_id")?,
            5 => s.name = r.str(wire, "Span.name")?.to_owned(),
            6 => s.kind = r.varint(wire, "Span.kind")? as i32,
            7 => s.start_ns = r.fixed64(wire, "Span.start_time_unix_nano")?,
            8 => s.end_ns = r.fixed64(wire, "Span.end_time_unix_nano")?,
            9 => s
                .attributes
                .push(key_value(r.message(wire, "Span.attributes")?, 0)?),
            11 => s.events.push(event(r.message(wire, "Span.events")?)?),
            13 => s.links.push(link(r.message(wire, "Span.links")?)?),
            15 => {
                let message = r.message(wire, "Span.status")?;
                status(message, &mut s.status_code, &mut s.status_message)?;
            }
            _ => r.skip(tag, wire, "Span")?,
        }
    }
    Ok(s)
}

fn event(mut r: Reader<'_>) -> Result<SpanEvent> {
    let mut e = SpanEvent {
        time_ns: 0,
        name: String::new(),
        attributes: Vec::new(),
    };
    while let Some((tag, wire)) = r.field("Span.Event")? {
        match tag {
            1 => e.time_ns = r.fixed64(wire, "Span.Event.time_unix_nano")?,
            2 => e.name = r.str(wire, "Span.Event.name")?.to_owned(),
            3 => {
                let (key, value) = key_value(r.message(wire, "Span.Event.attributes")?, 0)?;
                e.attributes.push(Attribute::new(key, value));
            }
            _ => r.skip(tag, wire, "Span.Event")?,
        }
    }
    Ok(e)
}

fn link(mut r: Reader<'_>) -> Result<(&[u8], &[u8])> {
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
    while let Some((tag, wire)) = r.field("Span.Link")? {
        match tag {
            1 => trace_id = r.bytes(wire, "Span.Link.trace_id")?,
            2 => span_id = r.bytes(wire, "Span.Link.span_id")?,
            _ => r.skip(tag, wire, "Span.Link")?,
        }
    }
    Ok((trace_id, span_id))
}

fn status(mut r: Reader<'_>, code: &mut i32, message: &mut String) -> Result<()> {
    while let Some((tag, wire)) = r.field("Status")? {
        match tag {
            2 => *message = r.str(wire, "Status.message")?.to_owned(),
            3 => *code = r.varint(wire, "Status.code")? as i32,
            _ => r.skip(tag, wire, "Status")?,
        }
    }
    Ok(())
}

/// A `KeyValue`: its key borrowed, its value converted (no value reads as "").
fn key_value(mut r: Reader<'_>, depth: usize) -> Result<(&str, AttrValue)> {
    let mut key = "";
    let mut value = Slot::Unset;
    while let Some((tag, wire)) = r.field("KeyValue")? {
        match tag {
            1 => key = r.str(wire, "KeyValue.key")?,
            2 => any_value(r.message(wire, "KeyValue.value")?, &mut value, depth)?,
            _ => r.skip(tag, wire, "KeyValue")?,
        }
    }
    Ok((key, value.finish()))
}

/// An `AnyValue` being read. A key-value list stays a list until the end, so
/// a second piece of the same list merges into it as protobuf merges.
enum Slot {
    Unset,
    Value(AttrValue),
    List(Vec<(String, AttrValue)>),
}

impl Slot {
    /// The value as the generic path converts it: unset reads as "", a list as JSON text.
    fn finish(self) -> AttrValue {
        match self {
            Slot::Unset => AttrValue::Str(String::new()),
            Slot::Value(value) => value,
            Slot::List(pairs) => kvlist_value(pairs),
        }
    }
}

/// Merges one `AnyValue` message into `slot`: a scalar replaces what was
/// there, an array or list extends one of its own kind.
fn any_value(mut r: Reader<'_>, slot: &mut Slot, depth: usize) -> Result<()> {
    if depth >= MAX_VALUE_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    while let Some((tag, wire)) = r.field("AnyValue")? {
        let value = match tag {
            1 => AttrValue::Str(r.str(wire, "AnyValue.string_value")?.to_owned()),
            2 => AttrValue::Bool(r.varint(wire, "AnyValue.bool_value")? != 0),
            3 => AttrValue::Int(r.varint(wire, "AnyValue.int_value")? as i64),
            4 => AttrValue::Double(f64::from_bits(r.fixed64(wire, "AnyValue.double_value")?)),
            5 => {
                let mut items = match std::mem::replace(slot, Slot::Unset) {
                    Slot::Value(AttrValue::Array(items)) => items,
                    _ => Vec::new(),
                };
                array_values(r.message(wire, "AnyValue.array_value")?, &mut items, depth)?;
                AttrValue::Array(items)
            }
            6 => {
                let mut pairs = match std::mem::replace(slot, Slot::Unset) {
                    Slot::List(pairs) => pairs,
                    _ => Vec::new(),
                };
                kvlist(r.message(wire, "AnyValue.kvlist_value")?, &mut pairs, depth)?;
                *slot = Slot::List(pairs);
                continue;
            }
            7 => AttrValue::Str(hex(r.bytes(wire, "AnyValue.bytes_value")?)),
            // An index into a profile's string table; meaningless without it.
            8 => AttrValue::Int(i64::from(
                r.varint(wire, "AnyValue.string_value_strindex")? as i32
            )),
            _ => {
                r.skip(tag, wire, "AnyValue")?;
                continue;
            }
        };
        *slot = Slot::Value(value);
    }
    Ok(())
}

fn array_values(mut r: Reader<'_>, items: &mut Vec<AttrValue>, depth: usize) -> Result<()> {
    while let Some((tag, wire)) = r.field("ArrayValue")? {
        match tag {
            1 => {
                let mut item = Slot::Unset;
                any_value(r.message(wire, "ArrayValue.values")?, &mut item, depth + 1)?;
                items.push(item.finish());
            }
            _ => r.skip(tag, wire, "ArrayValue")?,
        }
    }
    Ok(())
}

fn kvlist(mut r: Reader<'_>, pairs: &mut Vec<(String, AttrValue)>, depth: usize) -> Result<()> {
    while let Some((tag, wire)) = r.field("KeyValueList")? {
        match tag {
            1 => {
                let (key, value) = key_value(r.message(wire, "KeyValueList.values")?, depth + 1)?;
                pairs.push((key.to_owned(), value));
            }
            _ => r.skip(tag, wire, "KeyValueList")?,
        }
    }
    Ok(())
}

/// A cursor over one message's bytes.
#[derive(Clone)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next field's number and wire type; `None` at the end of the message.
    fn field(&mut self, at: &'static str) -> Result<Option<(u32, WireType)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        decode_key(&mut self.buf)
            .map(Some)
            .map_err(|source| ProtoError::Wire { at, source })
    }

    fn expect(&self, wire: WireType, expected: WireType, at: &'static str) -> Result<()> {
        if wire == expected {
            Ok(())
        } else {
            Err(ProtoError::WireType {
                at,
                expected,
                actual: wire,
            })
        }
    }

    fn varint(&mut self, wire: WireType, at: &'static str) -> Result<u64> {
        self.expect(wire, WireType::Varint, at)?;
        decode_varint(&mut self.buf).map_err(|source| ProtoError::Wire { at, source })
    }

    fn fixed64(&mut self, wire: WireType, at: &'static str) -> Result<u64> {
        self.expect(wire, WireType::SixtyFourBit, at)?;
        let (bytes, rest) = self
            .buf
            .split_first_chunk::<8>()
            .ok_or(ProtoError::Truncated { at })?;
        self.buf = rest;
        Ok(u64::from_le_bytes(*bytes))
    }

    fn bytes(&mut self, wire: WireType, at: &'static str) -> Result<&'a [u8]> {
        self.expect(wire, WireType::LengthDelimited, at)?;
        let len = decode_varint(&mut self.buf).map_err(|source| ProtoError::Wire { at, source })?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.buf.len())
            .ok_or(ProtoError::Truncated { at })?;
        let (bytes, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(bytes)
    }

    fn message(&mut self, wire: WireType, at: &'static str) -> Result<Reader<'a>> {
        self.bytes(wire, at).map(Reader::new)
    }

    fn str(&mut self, wire: WireType, at: &'static str) -> Result<&'a str> {
        std::str::from_utf8(self.bytes(wire, at)?).map_err(|_| ProtoError::Utf8 { at })
    }

    fn skip(&mut self, tag: u32, wire: WireType, at: &'static str) -> Result<()> {
        skip_field(wire, tag, &mut self.buf, DecodeContext::default())
            .map_err(|source| ProtoError::Wire { at, source })
    }
}

#[cfg(test)]
#[path = "proto_tests.rs"]
mod tests;
