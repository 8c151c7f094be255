//! DPoP proofs (RFC 9449 §4): building, strict parsing and the pure checks.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::jwk::{DecodeEveryTime, KeyDecoder};
use crate::jws::{self, Jws, Signer};
use crate::{ProofAlgs, ProofKey, ProtoError, PublicJwk, b64, normalize_htu};

/// The `typ` of a DPoP proof.
pub const PROOF_TYP: &str = "dpop+jwt";

/// Default limit on the size of a proof or access token, in bytes.
pub const MAX_JWS_LEN: usize = 8 * 1024;

/// `ath`: base64url(SHA-256(access token)).
pub fn access_token_hash(access_token: &str) -> String {
    b64::encode(Sha256::digest(access_token.as_bytes()))
}

/// The claims of a DPoP proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofClaims {
    /// Unique id of this proof (replay protection).
    pub jti: String,
    /// HTTP method of the request.
    pub htm: String,
    /// HTTP URL of the request, without query and fragment.
    pub htu: String,
    /// Creation time, seconds since the epoch.
    pub iat: i64,
    /// Hash of the access token sent with the proof, if any.
    pub ath: Option<String>,
    /// Server-provided nonce, if any.
    pub nonce: Option<String>,
}

/// A parsed DPoP proof: structure, header and claim types checked; request binding,
/// time and signature are checked by the methods below, in the order the verifier uses.
#[derive(Clone, Debug)]
pub struct DpopProof {
    /// The proof key (its JWK and decoded point), kept so the signature check does not
    /// decode it a second time.
    key: ProofKey,
    claims: ProofClaims,
    jws: Jws,
}

impl DpopProof {
    /// Parses a proof with the default size limit ([`MAX_JWS_LEN`]).
    pub fn parse(text: &str) -> Result<Self, ProtoError> {
        Self::parse_with_limit(text, MAX_JWS_LEN)
    }

    /// Parses a proof: compact JWS, `alg` `EdDSA` (or `Ed25519`) or `ES256`, `typ`
    /// `dpop+jwt`, no `crit`, a public `jwk` header of the algorithm's key type
    /// (Ed25519 `OKP`, P-256 `EC`) without private members, and the required claims
    /// `jti` (at least 16 characters), `htm`, `htu`, `iat` with the right types.
    /// `ES256` needs the `es256` feature.
    pub fn parse_with_limit(text: &str, max_len: usize) -> Result<Self, ProtoError> {
        Self::parse_with_decoder(text, max_len, &DecodeEveryTime)
    }

    /// [`parse_with_limit`](Self::parse_with_limit), decoding the `jwk` through
    /// `decoder` (which may remember keys it decoded before).
    pub fn parse_with_decoder(
        text: &str,
        max_len: usize,
        decoder: &dyn KeyDecoder,
    ) -> Result<Self, ProtoError> {
        Self::parse_with(text, max_len, ProofAlgs::ALL, decoder)
    }

    /// [`parse_with_decoder`](Self::parse_with_decoder), accepting only the algorithms
    /// in `algs` (any other `alg` is [`ProtoError::UnsupportedAlg`]).
    pub fn parse_with(
        text: &str,
        max_len: usize,
        algs: ProofAlgs,
        decoder: &dyn KeyDecoder,
    ) -> Result<Self, ProtoError> {
        let (jws, (key, claims)) =
            Jws::parse(text, max_len, algs, &[PROOF_TYP], PROOF_TYP, |header, p| {
                let alg = header.alg.as_str().and_then(crate::ProofAlg::from_name);
                let (jwk, key) = PublicJwk::parse(header.jwk, decoder)?;
                if alg != Some(jwk.alg()) {
                    return Err(ProtoError::AlgKeyMismatch);
                }
                let jti = jws::str_member(p.jti, "jti")?;
                if jti.len() < 16 {
                    return Err(ProtoError::InvalidClaim { name: "jti" });
                }
                let claims = ProofClaims {
                    jti: jti.into_owned(),
                    htm: jws::str_member(p.htm, "htm")?.into_owned(),
                    htu: jws::str_member(p.htu, "htu")?.into_owned(),
                    iat: jws::int_member(&p.iat, "iat")?,
                    ath: jws::opt_str_member(p.ath, "ath")?.map(Cow::into_owned),
                    nonce: jws::opt_str_member(p.nonce, "nonce")?.map(Cow::into_owned),
                };
                Ok((key, claims))
            })?;
        Ok(Self { key, claims, jws })
    }

    /// The proof's claims (not yet verified).
    pub fn claims(&self) -> &ProofClaims {
        &self.claims
    }

    /// The claims, consuming the proof (no copy).
    pub fn into_claims(self) -> ProofClaims {
        self.claims
    }

    /// The public key from the proof's header.
    pub fn jwk(&self) -> &PublicJwk {
        self.key.jwk()
    }

    /// The proof's algorithm (the key's: `EdDSA` or `ES256`).
    pub fn alg(&self) -> crate::ProofAlg {
        self.jws.alg()
    }

    /// RFC 7638 thumbprint of the proof key.
    pub fn thumbprint(&self) -> String {
        self.key.jwk().thumbprint()
    }

    /// The compact proof text.
    pub fn as_str(&self) -> &str {
        self.jws.text()
    }

    /// `htm` must equal `method` exactly; `htu` must equal `request_htu` after both are
    /// normalised (the caller passes the request URL as the service sees it publicly).
    ///
    /// Only these two claims: [`check_request`](crate::check_request) runs every pure
    /// check of a request in order.
    pub fn check_htm_htu(&self, method: &str, request_htu: &str) -> Result<(), ProtoError> {
        if self.claims.htm != method {
            return Err(ProtoError::HtmMismatch);
        }
        let claimed = normalize_htu(&self.claims.htu).map_err(|_| ProtoError::HtuMismatch)?;
        if claimed != normalize_htu(request_htu)? {
            return Err(ProtoError::HtuMismatch);
        }
        Ok(())
    }

    /// [`check_htm_htu`](Self::check_htm_htu) for a `request_htu` that is already in
    /// normal form (as [`normalize_htu`] returns it).
    pub(crate) fn check_htm_htu_normalized(
        &self,
        method: &str,
        request_htu: &str,
    ) -> Result<(), ProtoError> {
        if self.claims.htm != method {
            return Err(ProtoError::HtmMismatch);
        }
        let claimed = normalize_htu(&self.claims.htu).map_err(|_| ProtoError::HtuMismatch)?;
        if claimed != request_htu {
            return Err(ProtoError::HtuMismatch);
        }
        Ok(())
    }

    /// `iat` must lie within `max_skew_secs` of `now` (seconds since the epoch).
    pub fn check_iat(&self, now: i64, max_skew_secs: u64) -> Result<(), ProtoError> {
        let skew = i64::try_from(max_skew_secs).unwrap_or(i64::MAX);
        if self.claims.iat < now.saturating_sub(skew) {
            return Err(ProtoError::IatTooOld);
        }
        if self.claims.iat > now.saturating_add(skew) {
            return Err(ProtoError::IatInFuture);
        }
        Ok(())
    }

    /// With an access token, `ath` must be present and equal its hash.
    pub fn check_ath(&self, access_token: Option<&str>) -> Result<(), ProtoError> {
        let Some(token) = access_token else {
            return Ok(());
        };
        let Some(ath) = &self.claims.ath else {
            return Err(ProtoError::AthMissing);
        };
        let expected = access_token_hash(token);
        if !constant_time_eq(ath.as_bytes(), expected.as_bytes()) {
            return Err(ProtoError::AthMismatch);
        }
        Ok(())
    }

    /// [`check_ath`](Self::check_ath) given the SHA-256 of the access token.
    pub(crate) fn check_ath_hash(&self, token_sha256: Option<&[u8; 32]>) -> Result<(), ProtoError> {
        let Some(hash) = token_sha256 else {
            return Ok(());
        };
        let Some(ath) = &self.claims.ath else {
            return Err(ProtoError::AthMissing);
        };
        let mut expected = [0u8; 43];
        if b64::encode_into(hash, &mut expected) != expected.len()
            || !constant_time_eq(ath.as_bytes(), &expected)
        {
            return Err(ProtoError::AthMismatch);
        }
        Ok(())
    }

    /// Verifies the proof's signature with its own `jwk` (`verify_strict` for EdDSA,
    /// ECDSA P-256 for ES256).
    pub fn verify_signature(&self) -> Result<(), ProtoError> {
        self.jws.verify(&self.key)
    }
}

/// Appends `"name":"value"` with `value` escaped as `serde_json` escapes strings
/// (`"`, `\\`, and control characters; nothing else).
fn push_json_member(out: &mut String, name: &str, value: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":\"");
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Compares two byte strings without an early exit on the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Builds a DPoP proof. Synchronous signers call [`sign`](Self::sign); asynchronous
/// ones (WebCrypto) take [`signing_input`](Self::signing_input), sign it themselves and
/// call [`finish`](Self::finish).
///
/// ```
/// use keybound_proto::{DpopProof, ProofBuilder, Signer};
/// let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
/// let proof = ProofBuilder::new(key.public_jwk(), "GET", "https://api.example/x", 1_700_000_000, [1u8; 16])
///     .unwrap()
///     .sign(&key)
///     .unwrap();
/// let parsed = DpopProof::parse(&proof).unwrap();
/// parsed.check_htm_htu("GET", "https://api.example/x").unwrap();
/// parsed.verify_signature().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ProofBuilder {
    jwk: PublicJwk,
    claims: ProofClaims,
}

impl ProofBuilder {
    /// Starts a proof for `method` and `url` (normalised into `htu`) at time `iat`, with
    /// `jti` made from 16 random bytes the caller supplies (this crate has no randomness).
    ///
    /// Errors: `invalid_claim` (`htm`) for an empty method, which no verifier accepts;
    /// `invalid_url` when `url` is not an absolute http(s) URL.
    pub fn new(
        jwk: PublicJwk,
        method: &str,
        url: &str,
        iat: i64,
        jti_random: [u8; 16],
    ) -> Result<Self, ProtoError> {
        if method.is_empty() {
            return Err(ProtoError::InvalidClaim { name: "htm" });
        }
        Ok(Self::for_htu(
            jwk,
            method,
            normalize_htu(url)?,
            iat,
            jti_random,
        ))
    }

    /// Starts a proof as [`new`](Self::new) does, for an `htu` the caller has already
    /// made: `scheme://host[:port]/path` of an absolute http(s) URL, as a URL parser
    /// gives it, and a non-empty `method`. Nothing is checked or normalised here; a
    /// verifier normalises the `htu` it receives. The browser SDK builds its proofs
    /// this way from the browser's own URL parser, so it signs exactly the URL `fetch`
    /// sends and its WebAssembly carries no second URL parser.
    pub fn for_htu(
        jwk: PublicJwk,
        method: &str,
        htu: String,
        iat: i64,
        jti_random: [u8; 16],
    ) -> Self {
        Self {
            jwk,
            claims: ProofClaims {
                jti: b64::encode(jti_random),
                htm: method.to_owned(),
                htu,
                iat,
                ath: None,
                nonce: None,
            },
        }
    }

    /// Binds the proof to an access token (`ath`).
    pub fn access_token(self, access_token: &str) -> Self {
        self.ath(access_token_hash(access_token))
    }

    /// Binds the proof to an access token by its hash, computed by the caller
    /// ([`access_token_hash`]'s base64url SHA-256; the browser SDK has WebCrypto make
    /// it, so its WebAssembly carries no SHA-256).
    pub fn ath(mut self, ath: String) -> Self {
        self.claims.ath = Some(ath);
        self
    }

    /// Includes a server-provided nonce.
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.claims.nonce = Some(nonce.to_owned());
        self
    }

    /// The claims this builder will sign.
    pub fn claims(&self) -> &ProofClaims {
        &self.claims
    }

    /// The JWS signing input (`header.payload`) to be signed with the key's algorithm:
    /// Ed25519 for an `OKP` key (header `alg` `EdDSA`), ECDSA P-256 with SHA-256 for an
    /// `EC` key (`ES256`; WebCrypto's `{name: "ECDSA", hash: "SHA-256"}` signature is
    /// already the 64-byte `r || s` [`finish`](Self::finish) takes).
    ///
    /// The JSON is written directly, members in lexicographic order exactly as
    /// `serde_json` would write them, instead of going through `serde_json::Value`: this
    /// keeps the browser SDK's WebAssembly small. A property test checks both agree.
    ///
    /// Written without `format!`, so the SDK's WebAssembly links no formatting code.
    pub fn signing_input(&self) -> String {
        let mut header = String::with_capacity(200);
        header.push_str(r#"{"alg":""#);
        header.push_str(self.jwk.alg().name());
        header.push_str(r#"","jwk":"#);
        header.push_str(&self.jwk.header_json());
        header.push_str(r#","typ":""#);
        header.push_str(PROOF_TYP);
        header.push_str(r#""}"#);
        let c = &self.claims;
        let mut payload = String::with_capacity(160 + c.htu.len());
        payload.push('{');
        if let Some(ath) = &c.ath {
            push_json_member(&mut payload, "ath", ath);
            payload.push(',');
        }
        push_json_member(&mut payload, "htm", &c.htm);
        payload.push(',');
        push_json_member(&mut payload, "htu", &c.htu);
        payload.push_str(",\"iat\":");
        push_i64(&mut payload, c.iat);
        payload.push(',');
        push_json_member(&mut payload, "jti", &c.jti);
        if let Some(nonce) = &c.nonce {
            payload.push(',');
            push_json_member(&mut payload, "nonce", nonce);
        }
        payload.push('}');
        let mut input = b64::encode(header);
        input.push('.');
        input.push_str(&b64::encode(payload));
        input
    }

    /// Completes the proof with a signature over [`signing_input`](Self::signing_input).
    pub fn finish(&self, signature: &[u8; 64]) -> String {
        jws::finish(&self.signing_input(), signature)
    }

    /// Signs with a synchronous signer and returns the compact proof.
    pub fn sign(&self, signer: &impl Signer) -> Result<String, ProtoError> {
        let input = self.signing_input();
        let signature = signer.sign(input.as_bytes())?;
        Ok(jws::finish(&input, &signature))
    }
}

/// Appends `n` in decimal, as JSON writes integers.
fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// The signing input as `serde_json` writes it: the reference for the hand-written
    /// JSON in [`ProofBuilder::signing_input`]. Members are inserted in sorted order, so
    /// the reference is the same whether or not `serde_json/preserve_order` is on.
    fn reference_signing_input(b: &ProofBuilder) -> String {
        let header = json!({"alg": b.jwk.alg().name(), "jwk": b.jwk.to_json(), "typ": PROOF_TYP});
        let c = &b.claims;
        let mut map = serde_json::Map::new();
        if let Some(ath) = &c.ath {
            map.insert("ath".into(), Value::String(ath.clone()));
        }
        map.insert("htm".into(), Value::String(c.htm.clone()));
        map.insert("htu".into(), Value::String(c.htu.clone()));
        map.insert("iat".into(), Value::from(c.iat));
        map.insert("jti".into(), Value::String(c.jti.clone()));
        if let Some(nonce) = &c.nonce {
            map.insert("nonce".into(), Value::String(nonce.clone()));
        }
        jws::signing_input(&header, &Value::Object(map))
    }

    #[test]
    fn signing_input_matches_serde_json_on_escapes() {
        let jwk = PublicJwk::from_bytes([9u8; 32]);
        let b = ProofBuilder::new(jwk, "GET", "https://a.example/p", -5, [3u8; 16])
            .unwrap()
            .access_token("tok")
            .nonce("q\"\\\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}/é€😀");
        assert_eq!(b.signing_input(), reference_signing_input(&b));
    }

    /// Fuzzing finding (`dpop_roundtrip` target, input `"\nhttps://a.example/\n1\n"`):
    /// the builder made a proof with an empty `htm`, which the parser (and so every
    /// verifier) refuses.
    #[test]
    fn an_empty_method_is_refused_by_the_builder() {
        let jwk = PublicJwk::from_bytes([9u8; 32]);
        assert_eq!(
            ProofBuilder::new(jwk, "", "https://a.example/", 1, [0u8; 16]).unwrap_err(),
            ProtoError::InvalidClaim { name: "htm" }
        );
    }

    proptest! {
        #[test]
        fn signing_input_matches_serde_json(
            method in "[A-Z]{1,8}|\\PC{1,8}",
            path in "[a-z0-9/._~-]{0,20}",
            iat in any::<i64>(),
            jti in any::<[u8; 16]>(),
            token in proptest::option::of("\\PC{0,30}"),
            nonce in proptest::option::of("\\PC{0,30}"),
            x in any::<[u8; 32]>(),
            y in proptest::option::of(any::<[u8; 32]>()),
        ) {
            let url = format!("https://h.example/{path}");
            let jwk = match y {
                None => PublicJwk::from_bytes(x),
                Some(y) => PublicJwk::from_p256_coordinates(x, y),
            };
            let mut b = ProofBuilder::new(jwk, &method, &url, iat, jti).unwrap();
            if let Some(token) = &token {
                b = b.access_token(token);
            }
            if let Some(nonce) = &nonce {
                b = b.nonce(nonce);
            }
            prop_assert_eq!(b.signing_input(), reference_signing_input(&b));
        }
    }
}
