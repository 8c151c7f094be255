//! Strict compact JWS for `alg: EdDSA` (RFC 7515, RFC 8037) and `alg: ES256` (RFC 7518
//! §3.4): parsing, signing input, and signing through the [`Signer`] trait.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::borrow::Cow;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::de::MapAccess;
use serde_json::Value;

use crate::json::{self, Loose, Members, Nested};
use crate::jwk::JwkMembers;
use crate::{ProofAlg, ProofAlgs, ProofKey, ProtoError, b64};

/// The group order L of edwards25519, little-endian; a signature's S must be below it.
const ORDER_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Something that can produce JWS signatures for a public key: Ed25519 (pure, no
/// pre-hash) for an `OKP` key, ECDSA P-256 with SHA-256 as the 64-byte `r || s` for an
/// `EC` key (the form WebCrypto's `sign` returns).
///
/// Implemented for [`ed25519_dalek::SigningKey`]. Signers whose signing is asynchronous
/// (WebCrypto in the browser) use the two-step form instead:
/// [`crate::ProofBuilder::signing_input`] then [`crate::ProofBuilder::finish`].
pub trait Signer {
    /// The public key that verifies this signer's signatures; its
    /// [`alg`](crate::PublicJwk::alg) is the JWS `alg`.
    fn public_jwk(&self) -> crate::PublicJwk;
    /// Signs `message` with the key's algorithm.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError>;
}

impl Signer for ed25519_dalek::SigningKey {
    fn public_jwk(&self) -> crate::PublicJwk {
        crate::PublicJwk::from_verifying_key(&self.verifying_key())
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError> {
        Ok(ed25519_dalek::Signer::sign(self, message).to_bytes())
    }
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
            0 => self.alg = json::loose(access)?,
            1 => self.typ = json::loose(access)?,
            2 => {
                json::skip(access)?;
                self.crit = true;
            }
            3 => self.kid = json::loose(access)?,
            _ => self.jwk = json::nested(access)?,
        }
        Ok(())
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
    /// The session generation a DBSC bound cookie was issued for.
    pub(crate) generation: Loose<'a>,
}

impl<'de> Members<'de> for Claims<'de> {
    const NAMES: &'static [&'static str] = &[
        "jti", "htm", "htu", "iat", "ath", "nonce", "iss", "sub", "sid", "exp", "cnf", "gen",
    ];

    fn read<A: MapAccess<'de>>(&mut self, index: usize, access: &mut A) -> Result<(), A::Error> {
        if index == 10 {
            self.cnf = json::nested(access)?;
            return Ok(());
        }
        let value = json::loose(access)?;
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
            9 => &mut self.exp,
            _ => &mut self.generation,
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
        self.jkt = json::loose(access)?;
        Ok(())
    }
}

/// A compact JWS whose structure and header were checked, signature not yet verified.
#[derive(Clone, Debug)]
pub(crate) struct Jws {
    signing_input_len: usize,
    compact: String,
    alg: ProofAlg,
    signature: [u8; 64],
}

/// Decoded parts up to this size are decoded on the stack.
const STACK_PART: usize = 768;

impl Jws {
    /// Parses `text`, requiring an `alg` in `algs` (`EdDSA`, also spelled `Ed25519` as
    /// in RFC 9864, or `ES256`), `typ` equal to one of `typs`, no `crit`, canonical
    /// base64url everywhere, JSON objects without duplicate members and a signature of
    /// the algorithm's form: 64 bytes with S < L for EdDSA, the 64-byte `r || s` with
    /// both in `[1, n - 1]` for ES256. The header and claims go to `read` (borrowed
    /// from the decoded parts), whose result is returned with the JWS.
    pub(crate) fn parse<R>(
        text: &str,
        max_len: usize,
        algs: ProofAlgs,
        typs: &[&str],
        typ_name: &'static str,
        read: impl FnOnce(Header<'_>, Claims<'_>) -> Result<R, ProtoError>,
    ) -> Result<(Self, R), ProtoError> {
        if text.len() > max_len {
            return Err(ProtoError::TooLarge { limit: max_len });
        }
        let mut parts = text.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProtoError::MalformedJws);
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(ProtoError::MalformedJws);
        }
        let mut header_stack = [0u8; STACK_PART];
        let mut header_heap = Vec::new();
        let header_bytes = b64::decode_into(h, "header", &mut header_stack, &mut header_heap)?;
        let header: Header<'_> = json::parse_members(header_bytes, "header")?;
        // `Ed25519` is RFC 9864's fully specified name for exactly what keybound accepts
        // as `EdDSA` (the key is always an Ed25519 `OKP`); panva's `dpop` 2.x signs
        // Ed25519 proofs with it.
        let alg = match header.alg.as_str().and_then(ProofAlg::from_name) {
            Some(alg) if algs.contains(alg) => alg,
            _ => return Err(ProtoError::UnsupportedAlg),
        };
        if header.crit {
            return Err(ProtoError::UnknownCrit);
        }
        match header.typ.as_str() {
            Some(typ) if typs.contains(&typ) => {}
            _ => return Err(ProtoError::InvalidTyp { expected: typ_name }),
        }
        let signature = match alg {
            ProofAlg::EdDSA => {
                let signature = b64::decode_array::<64>(s, "signature")?;
                if !scalar_is_canonical(&signature[32..]) {
                    return Err(ProtoError::NonCanonicalSignature);
                }
                signature
            }
            ProofAlg::ES256 => crate::ec::signature(s)?,
        };
        let mut payload_stack = [0u8; STACK_PART];
        let mut payload_heap = Vec::new();
        let payload_bytes = b64::decode_into(p, "payload", &mut payload_stack, &mut payload_heap)?;
        let claims: Claims<'_> = json::parse_members(payload_bytes, "payload")?;
        let read = read(header, claims)?;
        Ok((
            Self {
                signing_input_len: h.len() + 1 + p.len(),
                compact: text.to_owned(),
                alg,
                signature,
            },
            read,
        ))
    }

    /// The bytes the signature covers: `base64url(header) "." base64url(payload)`.
    pub(crate) fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signing_input_len]
    }

    /// The `alg` the header named.
    pub(crate) fn alg(&self) -> ProofAlg {
        self.alg
    }

    /// Verifies an EdDSA signature with RFC 8032 strict rules (`verify_strict`: rejects
    /// small-order keys and non-canonical R as well).
    pub(crate) fn verify_ed25519(&self, key: &VerifyingKey) -> Result<(), ProtoError> {
        if self.alg != ProofAlg::EdDSA {
            return Err(ProtoError::UnsupportedAlg);
        }
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(self.signing_input(), &signature)
            .map_err(|_| ProtoError::InvalidSignature)
    }

    /// Verifies the signature with a decoded device key of the same algorithm.
    pub(crate) fn verify(&self, key: &ProofKey) -> Result<(), ProtoError> {
        if key.jwk().alg() != self.alg {
            return Err(ProtoError::AlgKeyMismatch);
        }
        key.verify(self.signing_input(), &self.signature)
    }

    /// The full compact text.
    pub(crate) fn text(&self) -> &str {
        &self.compact
    }
}

/// Whether the little-endian scalar is below the group order L.
fn scalar_is_canonical(s: &[u8]) -> bool {
    for i in (0..32).rev() {
        let (a, b) = (s[i], ORDER_L[i]);
        if a != b {
            return a < b;
        }
    }
    false
}

/// Builds the signing input for `header` and `payload` (both JSON objects).
pub(crate) fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(payload.to_string())
    )
}

/// Appends a signature to a signing input, giving the compact JWS.
pub(crate) fn finish(signing_input: &str, signature: &[u8; 64]) -> String {
    format!("{signing_input}.{}", b64::encode(signature))
}

/// Reads a required string member: present, a string, not empty.
pub(crate) fn str_member<'a>(
    value: Loose<'a>,
    name: &'static str,
) -> Result<Cow<'a, str>, ProtoError> {
    match value {
        Loose::Absent => Err(ProtoError::MissingClaim { name }),
        Loose::Str(s) if !s.is_empty() => Ok(s),
        _ => Err(ProtoError::InvalidClaim { name }),
    }
}

/// Reads an optional string member.
pub(crate) fn opt_str_member<'a>(
    value: Loose<'a>,
    name: &'static str,
) -> Result<Option<Cow<'a, str>>, ProtoError> {
    match value {
        Loose::Absent => Ok(None),
        Loose::Str(s) => Ok(Some(s)),
        _ => Err(ProtoError::InvalidClaim { name }),
    }
}

/// Reads a required integer member (seconds since the epoch).
pub(crate) fn int_member(value: &Loose<'_>, name: &'static str) -> Result<i64, ProtoError> {
    match value {
        Loose::Absent => Err(ProtoError::MissingClaim { name }),
        Loose::Int(i) => Ok(*i),
        _ => Err(ProtoError::InvalidClaim { name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both parses agree on every input: same error, or both succeed.
    fn agree(bytes: &[u8]) {
        let map = json::parse_object(bytes, "t");
        let claims = json::parse_members::<Claims<'_>>(bytes, "t").map(|_| ());
        let header = json::parse_members::<Header<'_>>(bytes, "t").map(|_| ());
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

    #[test]
    fn order_comparison() {
        assert!(!scalar_is_canonical(&ORDER_L));
        let mut below = ORDER_L;
        below[0] -= 1;
        assert!(scalar_is_canonical(&below));
        let mut above = ORDER_L;
        above[31] = 0x11;
        assert!(!scalar_is_canonical(&above));
        assert!(scalar_is_canonical(&[0u8; 32]));
    }
}
