//! The strict JSON reader: its tree form and its typed form (the one proofs and access
//! tokens are read with) agree with each other on every input, and both agree with an
//! independent reference (serde_json for the syntax and values, a separate walk for
//! duplicate members).
#![no_main]

use std::fmt;

use keybound_proto::{ProtoError, fuzzing};
use libfuzzer_sys::fuzz_target;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let tree = fuzzing::parse_object(data);
    let header = fuzzing::typed_header(data);
    let claims = fuzzing::typed_claims(data);
    match (&tree, reference(data)) {
        (Ok(map), Reference::Value(Value::Object(expected))) => {
            assert_eq!(map, &expected, "tree form differs from serde_json");
            assert_eq!(header.as_ref().ok(), Some(&header_view(map)));
            assert_eq!(claims.as_ref().ok(), Some(&claims_view(map)));
        }
        (Err(ProtoError::InvalidJson { .. }), Reference::Value(v)) if !v.is_object() => {}
        (Err(ProtoError::InvalidJson { .. }), Reference::Syntax) => {}
        (Err(ProtoError::DuplicateMember { .. }), Reference::Duplicate) => {}
        (tree, reference) => panic!("tree form {tree:?}, reference {reference:?}"),
    }
    if let Err(err) = &tree {
        assert_eq!(header.as_ref().err(), Some(err), "typed header form");
        assert_eq!(claims.as_ref().err(), Some(err), "typed claims form");
    }
});

/// What an independent reader finds.
#[derive(Debug)]
enum Reference {
    Value(Value),
    Duplicate,
    Syntax,
}

const DUPLICATE: &str = "reference: duplicate";

fn reference(data: &[u8]) -> Reference {
    let mut de = serde_json::Deserializer::from_slice(data);
    match DupCheck.deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => {}
        Err(e) if e.to_string().starts_with(DUPLICATE) => return Reference::Duplicate,
        Err(_) => return Reference::Syntax,
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(value) => Reference::Value(value),
        Err(_) => Reference::Syntax,
    }
}

/// Walks a JSON value and fails at the first member whose name appeared before in
/// the same object, once that member's value has been read.
struct DupCheck;

impl<'de> DeserializeSeed<'de> for DupCheck {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupCheck {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
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
        while seq.next_element_seed(DupCheck)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names: Vec<String> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value_seed(DupCheck)?;
            if names.contains(&name) {
                return Err(de::Error::custom(DUPLICATE));
            }
            names.push(name);
        }
        Ok(())
    }
}

/// How the typed form renders a member it read (see `keybound_proto::fuzzing`).
fn loose(value: &Value) -> Value {
    match value {
        Value::String(s) => json!({"str": s}),
        Value::Number(n) if n.as_i64().is_some() => json!({"int": n.as_i64()}),
        _ => json!({"other": true}),
    }
}

fn put(out: &mut Map<String, Value>, map: &Map<String, Value>, names: &[&str]) {
    for name in names {
        if let Some(value) = map.get(*name) {
            out.insert((*name).to_owned(), loose(value));
        }
    }
}

fn nested(value: &Value, members: impl FnOnce(&Map<String, Value>) -> Value) -> Value {
    match value {
        Value::Object(inner) => json!({"object": members(inner)}),
        _ => json!({"not_object": true}),
    }
}

const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn header_view(map: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    put(&mut out, map, &["alg", "typ", "kid"]);
    if map.contains_key("crit") {
        out.insert("crit".into(), Value::Bool(true));
    }
    if let Some(jwk) = map.get("jwk") {
        let view = nested(jwk, |inner| {
            let mut members = Map::new();
            put(&mut members, inner, &["kty", "crv", "x"]);
            let private = PRIVATE.iter().any(|m| inner.contains_key(*m));
            members.insert("private".into(), Value::Bool(private));
            Value::Object(members)
        });
        out.insert("jwk".into(), view);
    }
    Value::Object(out)
}

fn claims_view(map: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    put(
        &mut out,
        map,
        &[
            "jti", "htm", "htu", "iat", "ath", "nonce", "iss", "sub", "sid", "exp",
        ],
    );
    if let Some(cnf) = map.get("cnf") {
        let view = nested(cnf, |inner| {
            let mut members = Map::new();
            put(&mut members, inner, &["jkt"]);
            Value::Object(members)
        });
        out.insert("cnf".into(), view);
    }
    Value::Object(out)
}
