//! Internal parsers exposed for keybound's fuzz targets (`fuzz/` in the repository),
//! behind the `fuzzing` feature. Not a stable API: it follows the internals and changes
//! with them.
//!
//! The strict JSON reader has two forms that must agree on every input: the tree form
//! ([`parse_object`], also behind [`decode_unverified`](crate::decode_unverified)) and
//! the typed form that proofs and access tokens are read with. [`typed_header`] and
//! [`typed_claims`] run the typed form and render what it read as JSON, so a fuzz
//! target can compare it with what the tree form read from the same bytes:
//!
//! * a member read as a string is `{"str": …}`, as an integer that fits an `i64`
//!   `{"int": …}`, as any other value `{"other": true}`; absent members are left out;
//! * `crit` is `true` when present (its value is only walked);
//! * `jwk` (header) and `cnf` (claims) are `{"not_object": true}` or
//!   `{"object": {…}}` with their own members the same way; a `jwk` object also has
//!   `"private"`, whether a private-key member was present.

use serde_json::{Map, Value, json};

use crate::ProtoError;
use crate::json::{self, Loose, Nested};
use crate::prelude::*;

/// The tree form: the whole object, or the error a JOSE part gets (`part` is `input`).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ProtoError> {
    json::parse_object(bytes, "input")
}

/// The typed form as a JWS header is read, rendered as described in the module docs.
pub fn typed_header(bytes: &[u8]) -> Result<Value, ProtoError> {
    let header: crate::jws::Header<'_> = json::parse_members(bytes, "input")?;
    let mut out = Map::new();
    put(&mut out, "alg", &header.alg);
    put(&mut out, "typ", &header.typ);
    if header.crit {
        out.insert("crit".into(), Value::Bool(true));
    }
    put(&mut out, "kid", &header.kid);
    put_nested(&mut out, "jwk", &header.jwk, |jwk| {
        let (kty, crv, x, private) = jwk.parts();
        let mut members = Map::new();
        put(&mut members, "kty", kty);
        put(&mut members, "crv", crv);
        put(&mut members, "x", x);
        members.insert("private".into(), Value::Bool(private));
        members
    });
    Ok(Value::Object(out))
}

/// The typed form as a JWT payload is read, rendered as described in the module docs.
pub fn typed_claims(bytes: &[u8]) -> Result<Value, ProtoError> {
    let claims: crate::jws::Claims<'_> = json::parse_members(bytes, "input")?;
    let mut out = Map::new();
    for (name, value) in [
        ("jti", &claims.jti),
        ("htm", &claims.htm),
        ("htu", &claims.htu),
        ("iat", &claims.iat),
        ("ath", &claims.ath),
        ("nonce", &claims.nonce),
        ("iss", &claims.iss),
        ("sub", &claims.sub),
        ("sid", &claims.sid),
        ("exp", &claims.exp),
    ] {
        put(&mut out, name, value);
    }
    put_nested(&mut out, "cnf", &claims.cnf, |cnf| {
        let mut members = Map::new();
        put(&mut members, "jkt", &cnf.jkt);
        members
    });
    Ok(Value::Object(out))
}

fn put(out: &mut Map<String, Value>, name: &str, value: &Loose<'_>) {
    let rendered = match value {
        Loose::Absent => return,
        Loose::Str(s) => json!({"str": s}),
        Loose::Int(i) => json!({"int": i}),
        Loose::Other => json!({"other": true}),
    };
    out.insert(name.to_owned(), rendered);
}

fn put_nested<T>(
    out: &mut Map<String, Value>,
    name: &str,
    value: &Nested<T>,
    members: impl FnOnce(&T) -> Map<String, Value>,
) {
    let rendered = match value {
        Nested::Absent => return,
        Nested::NotObject => json!({"not_object": true}),
        Nested::Object(inner) => json!({"object": members(inner)}),
    };
    out.insert(name.to_owned(), rendered);
}
