//! Strict JSON objects: duplicate members are an error at any depth.
//!
//! `serde_json` keeps the last of two equal keys; JOSE (RFC 7515 §5.2) asks parsers to
//! reject such input or use a parser that does, so two parsers can never disagree on
//! which value a header carries.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::ProtoError;

/// Parses `bytes` as one JSON object, rejecting duplicate members at any depth.
pub(crate) fn parse_object(
    bytes: &[u8],
    part: &'static str,
) -> Result<Map<String, Value>, ProtoError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match StrictValue.deserialize(&mut de) {
        Ok(value) => value,
        Err(err) if err.to_string().starts_with(DUPLICATE) => {
            return Err(ProtoError::DuplicateMember { part });
        }
        Err(_) => return Err(ProtoError::InvalidJson { part }),
    };
    de.end().map_err(|_| ProtoError::InvalidJson { part })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ProtoError::InvalidJson { part }),
    }
}

const DUPLICATE: &str = "keybound: duplicate member";

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictValue)?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let map = parse_object(br#"{"a":1,"b":{"c":[1,{"d":2}]}}"#, "t").unwrap();
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#, "t"),
            Err(ProtoError::DuplicateMember { part: "t" })
        );
        assert_eq!(
            parse_object(br#"{"a":{"b":1,"b":1}}"#, "t"),
            Err(ProtoError::DuplicateMember { part: "t" })
        );
        assert_eq!(
            parse_object(br#"{"a":[{"b":1,"b":1}]}"#, "t"),
            Err(ProtoError::DuplicateMember { part: "t" })
        );
    }

    #[test]
    fn rejects_non_objects_and_trailing_text() {
        assert_eq!(
            parse_object(b"[1]", "t"),
            Err(ProtoError::InvalidJson { part: "t" })
        );
        assert_eq!(
            parse_object(b"{} x", "t"),
            Err(ProtoError::InvalidJson { part: "t" })
        );
        assert_eq!(
            parse_object(b"{", "t"),
            Err(ProtoError::InvalidJson { part: "t" })
        );
    }
}
