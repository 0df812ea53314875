use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// An attribute value as OpenTelemetry defines them (maps are kept as JSON text).
///
/// In human-readable formats (JSON) it is written as the plain value
/// (`"a"`, `3`, `true`, `[..]`); in binary formats (the write-ahead log, the
/// stored span) it is tagged so that it reads back exactly.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Vec<AttrValue>),
}

impl AttrValue {
    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer: an int, or a string holding one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            AttrValue::Int(i) => u64::try_from(*i).ok(),
            AttrValue::Str(s) => s.trim().parse().ok(),
            AttrValue::Double(d) if d.fract() == 0.0 && *d >= 0.0 && *d < u64::MAX as f64 => {
                Some(*d as u64)
            }
            _ => None,
        }
    }

    /// The value as a bool: a bool, or the strings `true`/`false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            AttrValue::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value as a list of strings: an array's scalar items, or one scalar.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            AttrValue::Array(items) => items.iter().filter_map(AttrValue::scalar_text).collect(),
            other => other.scalar_text().into_iter().collect(),
        }
    }

    /// The text of a scalar value; `None` for arrays.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            AttrValue::Str(s) => Some(s.clone()),
            AttrValue::Bool(b) => Some(b.to_string()),
            AttrValue::Int(i) => Some(i.to_string()),
            AttrValue::Double(d) => Some(d.to_string()),
            AttrValue::Array(_) => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            scalar => f.write_str(&scalar.scalar_text().unwrap_or_default()),
        }
    }
}

/// The tagged form used by binary formats.
#[derive(Serialize, Deserialize)]
enum Tagged {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Vec<AttrValue>),
}

impl Serialize for AttrValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            match self {
                AttrValue::Str(s) => serializer.serialize_str(s),
                AttrValue::Bool(b) => serializer.serialize_bool(*b),
                AttrValue::Int(i) => serializer.serialize_i64(*i),
                AttrValue::Double(d) => serializer.serialize_f64(*d),
                AttrValue::Array(items) => serializer.collect_seq(items),
            }
        } else {
            let tagged = match self {
                AttrValue::Str(s) => Tagged::Str(s.clone()),
                AttrValue::Bool(b) => Tagged::Bool(*b),
                AttrValue::Int(i) => Tagged::Int(*i),
                AttrValue::Double(d) => Tagged::Double(*d),
                AttrValue::Array(items) => Tagged::Array(items.clone()),
            };
            tagged.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return Ok(match Tagged::deserialize(deserializer)? {
                Tagged::Str(s) => AttrValue::Str(s),
                Tagged::Bool(b) => AttrValue::Bool(b),
                Tagged::Int(i) => AttrValue::Int(i),
                Tagged::Double(d) => AttrValue::Double(d),
                Tagged::Array(items) => AttrValue::Array(items),
            });
        }
        deserializer.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = AttrValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, bool, number or array")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<AttrValue, E> {
        Ok(AttrValue::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<AttrValue, E> {
        Ok(AttrValue::Str(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<AttrValue, E> {
        Ok(AttrValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AttrValue, E> {
        Ok(AttrValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AttrValue, E> {
        Ok(i64::try_from(v).map_or(AttrValue::Double(v as f64), AttrValue::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<AttrValue, E> {
        Ok(AttrValue::Double(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AttrValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(AttrValue::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_is_the_plain_value() {
        let v = AttrValue::Array(vec![AttrValue::Str("ORDER_1".into()), AttrValue::Int(7)]);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["ORDER_1",7]"#);
        assert_eq!(
            serde_json::from_str::<AttrValue>(r#"["ORDER_1",7]"#).unwrap(),
            v
        );
    }

    #[test]
    fn binary_form_reads_back_exactly() {
        for v in [
            AttrValue::Str("7".into()),
            AttrValue::Int(7),
            AttrValue::Double(7.0),
            AttrValue::Bool(true),
            AttrValue::Array(vec![AttrValue::Str("a".into())]),
        ] {
            let bytes = postcard::to_stdvec(&v).unwrap();
            assert_eq!(postcard::from_bytes::<AttrValue>(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn numeric_views() {
        assert_eq!(AttrValue::Str(" 42".into()).as_u64(), Some(42));
        assert_eq!(AttrValue::Int(-1).as_u64(), None);
        assert_eq!(AttrValue::Str("k1".into()).to_strings(), vec!["k1"]);
    }
}
