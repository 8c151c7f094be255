//! Strict JSON objects: duplicate members are an error at any depth.
//!
//! `serde_json` keeps the last of two equal keys; JOSE (RFC 7515 §5.2) asks parsers to
//! reject such input or use a parser that does, so two parsers can never disagree on
//! which value a header carries.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::borrow::Cow;
use alloc::collections::BTreeSet;
use core::fmt;
use core::marker::PhantomData;

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

// ---------------------------------------------------------------------------------
// Typed, borrowing parse: the members a caller names, straight into its struct (the
// JOSE header and claims in `jws`, the `jwk` in `jwk`).
//
// Every member is read in document order; known members go into their field, every
// other value is walked (not built) so duplicates are still rejected at any depth,
// with exactly the errors of `parse_object`: a duplicate is reported once its value
// was read, a syntax error where it occurs, and a non-object as `InvalidJson`.
// ---------------------------------------------------------------------------------

/// A member's value, as far as keybound needs to know it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Loose<'a> {
    /// The member is absent.
    #[default]
    Absent,
    /// A string (borrowed from the input unless it had escapes).
    Str(Cow<'a, str>),
    /// An integer that fits an `i64`.
    Int(i64),
    /// Any other value (float, large integer, bool, null, array, object).
    Other,
}

impl Loose<'_> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A member whose value should be an object with members `T`.
#[derive(Clone, Debug, Default)]
pub(crate) enum Nested<T> {
    /// The member is absent.
    #[default]
    Absent,
    /// The member is not an object.
    NotObject,
    /// The member is an object.
    Object(T),
}

/// The members of one kind of object that keybound reads.
pub(crate) trait Members<'de>: Default {
    /// Names of the members read into fields, by index.
    const NAMES: &'static [&'static str];
    /// Reads the value of member `NAMES[index]`.
    fn read<A: MapAccess<'de>>(&mut self, index: usize, access: &mut A) -> Result<(), A::Error>;
    /// Told about every other member (before its value is walked).
    fn other(&mut self, _name: &str) {}
}

/// Reads the current member's value as a [`Loose`] (for [`Members::read`]).
pub(crate) fn loose<'de, A: MapAccess<'de>>(access: &mut A) -> Result<Loose<'de>, A::Error> {
    access.next_value_seed(LooseSeed)
}

/// Reads the current member's value as an object with members `T` (for
/// [`Members::read`]).
pub(crate) fn nested<'de, T: Members<'de>, A: MapAccess<'de>>(
    access: &mut A,
) -> Result<Nested<T>, A::Error> {
    access.next_value_seed(NestedSeed(PhantomData))
}

/// Walks the current member's value without keeping it (for [`Members::read`]);
/// duplicates inside it are still rejected.
pub(crate) fn skip<'de, A: MapAccess<'de>>(access: &mut A) -> Result<(), A::Error> {
    access.next_value_seed(Skip)
}

/// Reads an already parsed JSON value as an object with members `T` (a
/// `serde_json::Value` cannot hold duplicate members, so nothing can fail here).
pub(crate) fn members_of_value<'de, T: Members<'de>>(value: &'de Value) -> Nested<T> {
    NestedSeed(PhantomData)
        .deserialize(value)
        .unwrap_or(Nested::NotObject)
}

/// Parses `bytes` as one JSON object into `T`, with exactly the errors of
/// [`parse_object`].
pub(crate) fn parse_members<'de, T: Members<'de>>(
    bytes: &'de [u8],
    part: &'static str,
) -> Result<T, ProtoError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let nested = match NestedSeed::<T>(PhantomData).deserialize(&mut de) {
        Ok(nested) => nested,
        Err(err) if err.to_string().starts_with(DUPLICATE) => {
            return Err(ProtoError::DuplicateMember { part });
        }
        Err(_) => return Err(ProtoError::InvalidJson { part }),
    };
    de.end().map_err(|_| ProtoError::InvalidJson { part })?;
    match nested {
        Nested::Object(members) => Ok(members),
        _ => Err(ProtoError::InvalidJson { part }),
    }
}

/// Names of the members of one object that were not read into fields.
struct SeenNames<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<BTreeSet<Cow<'de, str>>>,
}

impl<'de> SeenNames<'de> {
    const FEW: usize = 16;

    fn new() -> Self {
        Self {
            few: Vec::new(),
            many: None,
        }
    }

    /// Records `name`; false if it was seen before.
    fn insert(&mut self, name: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(name);
        }
        if self.few.contains(&name) {
            return false;
        }
        self.few.push(name);
        if self.few.len() > Self::FEW {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// A member name: the index of a known one, or the name itself.
enum Name<'de> {
    Known(usize),
    Other(Cow<'de, str>),
}

struct NameSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Name<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Name<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
        Ok(match self.0.iter().position(|n| *n == v) {
            Some(i) => Name::Known(i),
            None => Name::Other(Cow::Borrowed(v)),
        })
    }

    fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
        Ok(match self.0.iter().position(|n| *n == v) {
            Some(i) => Name::Known(i),
            None => Name::Other(Cow::Owned(v.to_owned())),
        })
    }

    fn visit_string<E>(self, v: String) -> Result<Name<'de>, E> {
        Ok(match self.0.iter().position(|n| *n == v) {
            Some(i) => Name::Known(i),
            None => Name::Other(Cow::Owned(v)),
        })
    }
}

/// Walks the members of an object into `members`, rejecting duplicates.
fn read_members<'de, T: Members<'de>, A: MapAccess<'de>>(mut access: A) -> Result<T, A::Error> {
    let mut members = T::default();
    let mut known: u64 = 0;
    let mut others = SeenNames::new();
    while let Some(name) = access.next_key_seed(NameSeed(T::NAMES))? {
        match name {
            Name::Known(index) => {
                members.read(index, &mut access)?;
                let bit = 1u64 << index;
                if known & bit != 0 {
                    return Err(de::Error::custom(DUPLICATE));
                }
                known |= bit;
            }
            Name::Other(name) => {
                members.other(&name);
                access.next_value_seed(Skip)?;
                if !others.insert(name) {
                    return Err(de::Error::custom(DUPLICATE));
                }
            }
        }
    }
    Ok(members)
}

struct NestedSeed<T>(PhantomData<T>);

impl<'de, T: Members<'de>> DeserializeSeed<'de> for NestedSeed<T> {
    type Value = Nested<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Nested<T>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Members<'de>> Visitor<'de> for NestedSeed<T> {
    type Value = Nested<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Nested<T>, E> {
        Ok(Nested::NotObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Nested<T>, E> {
        Ok(Nested::NotObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Nested<T>, E> {
        Ok(Nested::NotObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Nested<T>, E> {
        Ok(Nested::NotObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Nested<T>, E> {
        Ok(Nested::NotObject)
    }

    fn visit_unit<E>(self) -> Result<Nested<T>, E> {
        Ok(Nested::NotObject)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Nested<T>, A::Error> {
        Skip.visit_seq(seq)?;
        Ok(Nested::NotObject)
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Nested<T>, A::Error> {
        read_members(access).map(Nested::Object)
    }
}

struct LooseSeed;

impl<'de> DeserializeSeed<'de> for LooseSeed {
    type Value = Loose<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Loose<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LooseSeed {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }

    fn visit_i64<E>(self, v: i64) -> Result<Loose<'de>, E> {
        Ok(Loose::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Loose<'de>, E> {
        Ok(i64::try_from(v).map_or(Loose::Other, Loose::Int))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose<'de>, A::Error> {
        Skip.visit_seq(seq)?;
        Ok(Loose::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Loose<'de>, A::Error> {
        Skip.visit_map(access)?;
        Ok(Loose::Other)
    }
}

/// Walks any value without building it, rejecting duplicate members at any depth.
#[derive(Clone, Copy)]
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        let mut names = SeenNames::new();
        while let Some(name) = access.next_key_seed(NameSeed(&[]))? {
            access.next_value_seed(Skip)?;
            let Name::Other(name) = name else {
                continue;
            };
            if !names.insert(name) {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(())
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
