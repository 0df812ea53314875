//! The span vocabulary every lasthop part speaks (DESIGN sections 3 and 4).
//!
//! Hop names, attribute keys and the normalized span record are defined here
//! once; the broker, client, collector and analyzer depend on this crate and
//! never spell a key themselves.

pub mod attr;
mod attr_value;
mod hop;
mod record;

pub use attr_value::AttrValue;
pub use hop::{Hop, UnknownHop};
pub use record::{Attribute, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode};
