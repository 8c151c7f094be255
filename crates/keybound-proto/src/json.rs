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
// Typed, borrowing parse: the JOSE parts keybound reads, straight into structs.
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

/// A JWS header: the members either a proof or an access token uses.
#[derive(Default)]
pub(crate) struct Header<'a> {
    pub(crate) alg: Loose<'a>,
    pub(crate) typ: Loose<'a>,
    pub(crate) crit: bool,
    pub(crate) kid: Loose<'a>,
    pub(crate) jwk: Nested<JwkMembers<'a>>,
}

impl<'de> Members<'de> for Header<'de> {
    const NAMES: &'static [&'static str] = &["alg", "typ", "crit", "kid", "jwk"];

    fn read<A: MapAccess<'de>>(&mut self, index: usize, access: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.alg = access.next_value_seed(LooseSeed)?,
            1 => self.typ = access.next_value_seed(LooseSeed)?,
            2 => {
                access.next_value_seed(Skip)?;
                self.crit = true;
            }
            3 => self.kid = access.next_value_seed(LooseSeed)?,
            _ => self.jwk = access.next_value_seed(NestedSeed(PhantomData))?,
        }
        Ok(())
    }
}

/// The members of a `jwk` that keybound reads.
#[derive(Default)]
pub(crate) struct JwkMembers<'a> {
    pub(crate) kty: Loose<'a>,
    pub(crate) crv: Loose<'a>,
    pub(crate) x: Loose<'a>,
    /// Whether a member that carries private key material is present.
    pub(crate) private: bool,
}

impl<'de> Members<'de> for JwkMembers<'de> {
    const NAMES: &'static [&'static str] = &["kty", "crv", "x"];

    fn read<A: MapAccess<'de>>(&mut self, index: usize, access: &mut A) -> Result<(), A::Error> {
        let value = access.next_value_seed(LooseSeed)?;
        match index {
            0 => self.kty = value,
            1 => self.crv = value,
            _ => self.x = value,
        }
        Ok(())
    }

    fn other(&mut self, name: &str) {
        if crate::jwk::PRIVATE_MEMBERS.contains(&name) {
            self.private = true;
        }
    }
}

/// A JWT payload: the claims either a proof or an access token uses.
#[derive(Default)]
pub(crate) struct Claims<'a> {
    pub(crate) jti: Loose<'a>,
    pub(crate) htm: Loose<'a>,
    pub(crate) htu: Loose<'a>,
    pub(crate) iat: Loose<'a>,
    pub(crate) ath: Loose<'a>,
    pub(crate) nonce: Loose<'a>,
    pub(crate) iss: Loose<'a>,
    pub(crate) sub: Loose<'a>,
    pub(crate) sid: Loose<'a>,
    pub(crate) exp: Loose<'a>,
    pub(crate) cnf: Nested<CnfMembers<'a>>,
}

impl<'de> Members<'de> for Claims<'de> {
    const NAMES: &'static [&'static str] = &[
        "jti", "htm", "htu", "iat", "ath", "nonce", "iss", "sub", "sid", "exp", "cnf",
    ];

    fn read<A: MapAccess<'de>>(&mut self, index: usize, access: &mut A) -> Result<(), A::Error> {
        if index == 10 {
            self.cnf = access.next_value_seed(NestedSeed(PhantomData))?;
            return Ok(());
        }
        let value = access.next_value_seed(LooseSeed)?;
        let field = match index {
            0 => &mut self.jti,
            1 => &mut self.htm,
            2 => &mut self.htu,
            3 => &mut self.iat,
            4 => &mut self.ath,
            5 => &mut self.nonce,
            6 => &mut self.iss,
            7 => &mut self.sub,
            8 => &mut self.sid,
            _ => &mut self.exp,
        };
        *field = value;
        Ok(())
    }
}

/// The members of `cnf` that keybound reads.
#[derive(Default)]
pub(crate) struct CnfMembers<'a> {
    pub(crate) jkt: Loose<'a>,
}

impl<'de> Members<'de> for CnfMembers<'de> {
    const NAMES: &'static [&'static str] = &["jkt"];

    fn read<A: MapAccess<'de>>(&mut self, _index: usize, access: &mut A) -> Result<(), A::Error> {
        self.jkt = access.next_value_seed(LooseSeed)?;
        Ok(())
    }
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

    /// Both parses agree on every input: same error, or both succeed.
    fn agree(bytes: &[u8]) {
        let map = parse_object(bytes, "t");
        let claims = parse_members::<Claims<'_>>(bytes, "t").map(|_| ());
        let header = parse_members::<Header<'_>>(bytes, "t").map(|_| ());
        assert_eq!(
            map.clone().map(|_| ()),
            claims,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(
            map.map(|_| ()),
            header,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }

    #[test]
    fn typed_parse_has_the_errors_of_the_map_parse() {
        for text in [
            r#"{"jti":"a","jti":"b"}"#,
            r#"{"jti":"a","jti":}"#,
            r#"{"x":1,"x":2}"#,
            r#"{"cnf":{"jkt":"a","jkt":"a"}}"#,
            r#"{"cnf":{"jkt":"a","o":1,"o":2}}"#,
            r#"{"cnf":[{"a":1,"a":1}]}"#,
            r#"{"jwk":{"kty":"OKP","d":"x","d":"y"}}"#,
            r#"{"jwk":{"kty":"OKP","kty":"OKP"}}"#,
            r#"{"alg":"EdDSA","al\u0067":"none"}"#,
            r#"{"a\u0062":1,"ab":2}"#,
            r#"{"crit":null,"crit":[]}"#,
            r#"[{"a":1,"a":1}]"#,
            r#"[1] x"#,
            r#"{"a":{"b":{"c":{"d":1,"d":2}}}}"#,
            r#"{"iat":1e400}"#,
            r#"{"iat":18446744073709551616}"#,
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18,"a":19}"#,
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18,"s":19}"#,
            "",
            "null",
            "{}",
        ] {
            agree(text.as_bytes());
        }
        agree(b"{\"a\":\"\xff\"}");
    }

    proptest::proptest! {
        #[test]
        fn typed_parse_agrees_on_token_soup(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "\"jti\"", "\"jwk\"", "\"cnf\"", "\"jkt\"",
                "\"d\"", "\"kty\"", "\"a\"", "\"b\"", "\"crit\"", "\"j\\u0074i\"", "1",
                "-1", "1.5", "true", "null", "\"\"", " ",
            ]),
            0..24,
        )) {
            agree(parts.concat().as_bytes());
        }

        #[test]
        fn typed_parse_agrees_on_objects(
            members in proptest::collection::vec((
                proptest::sample::select(vec!["jti", "iat", "cnf", "jwk", "kty", "x", "d", "zz"]),
                proptest::sample::select(vec![
                    "1", "\"s\"", "{}", "{\"jkt\":1}", "{\"d\":1,\"d\":2}", "[{\"q\":1,\"q\":1}]",
                    "{\"kty\":\"OKP\",\"x\":\"a\"}", "null",
                ]),
            ), 0..6),
        ) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            agree(format!("{{{}}}", body.join(",")).as_bytes());
        }
    }
}
