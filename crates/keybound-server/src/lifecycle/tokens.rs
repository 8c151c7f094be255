//! Refresh tokens: format, authentication tag, successor derivation and hashing.
//!
//! A refresh token is `<session id>.<generation>.<base64url(secret ‖ tag)>`:
//!
//! * `secret` — 32 bytes. Generation 0 (login) and sensitive-action rotations take
//!   fresh OS randomness; a refresh derives the successor as
//!   `HMAC-SHA256(server secret, "keybound refresh next" ‖ sid ‖ g+1 ‖ secret_g)`, so
//!   the holder of the previous token can be handed the same successor again inside
//!   the grace period without the server storing it.
//! * `tag` — the first 16 bytes of `HMAC-SHA256(server secret, "keybound refresh tag" ‖
//!   sid ‖ g ‖ secret)`. It proves the token was issued by this server for this
//!   session and generation, so reuse detection fires only for tokens that were really
//!   issued: someone who merely knows a session id cannot revoke it with junk.
//!
//! Stores keep only `SHA-256(secret)`.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use keybound_proto::b64;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::LifecycleError;
use crate::session::{SessionId, TokenHash};

const TAG_LEN: usize = 16;
const BODY_LEN: usize = 32 + TAG_LEN;
/// Longest well-formed token: 22 + 1 + 20 + 1 + 64 characters.
const MAX_TOKEN_LEN: usize = 108;

/// The server secret that authenticates refresh tokens and derives their successors.
///
/// Keep it as stable as the access-token signing key: with the SQLite (or any
/// persistent) store, give the service the same secret after a restart, or every
/// outstanding refresh token becomes invalid (refused, not treated as reuse). The
/// bytes are zeroized on drop and never printed.
///
/// ```
/// use keybound_server::lifecycle::RefreshSecret;
/// let secret = RefreshSecret::generate().unwrap();
/// let saved = secret.to_base64url();
/// let again = RefreshSecret::from_base64url(&saved).unwrap();
/// assert_eq!(format!("{again:?}"), "RefreshSecret(..)");
/// ```
#[derive(Clone)]
pub struct RefreshSecret(Zeroizing<[u8; 32]>);

impl fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSecret(..)")
    }
}

impl RefreshSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self, LifecycleError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| LifecycleError::Randomness)?;
        Ok(Self(bytes))
    }

    /// The secret with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Reads 32 bytes of base64url (as written by [`to_base64url`](Self::to_base64url)).
    pub fn from_base64url(text: &str) -> Result<Self, LifecycleError> {
        b64::decode_array::<32>(text.trim(), "refresh_secret")
            .map(Self::from_bytes)
            .map_err(|_| LifecycleError::InvalidInput {
                field: "refresh_secret",
                reason: "not 32 bytes of base64url",
            })
    }

    /// The secret as base64url, for storing it in configuration; handle with care.
    pub fn to_base64url(&self) -> Zeroizing<String> {
        Zeroizing::new(b64::encode(self.0.as_ref()))
    }

    /// A secret for another purpose, derived from this one (HMAC with `label`): every
    /// node sharing the refresh secret derives the same one.
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"keybound derived secret\0");
        mac.update(label);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    fn mac(
        &self,
        label: &[u8],
        sid: &SessionId,
        generation: u64,
        secret: &[u8; 32],
    ) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(label);
        mac.update(sid.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.update(secret);
        mac
    }

    fn tag(&self, sid: &SessionId, generation: u64, secret: &[u8; 32]) -> [u8; TAG_LEN] {
        let full = self
            .mac(b"keybound refresh tag\0", sid, generation, secret)
            .finalize()
            .into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Whether the token's tag was made by this secret (constant time).
    pub(crate) fn authenticates(&self, token: &RefreshToken) -> bool {
        self.mac(
            b"keybound refresh tag\0",
            &token.session_id,
            token.generation,
            &token.secret,
        )
        .verify_truncated_left(&token.tag)
        .is_ok()
    }

    /// The secret of generation `generation + 1` following `secret`.
    pub(crate) fn successor(
        &self,
        sid: &SessionId,
        generation: u64,
        secret: &[u8; 32],
    ) -> Zeroizing<[u8; 32]> {
        let full = self
            .mac(b"keybound refresh next\0", sid, generation + 1, secret)
            .finalize()
            .into_bytes();
        let mut next = Zeroizing::new([0u8; 32]);
        next.copy_from_slice(&full);
        next
    }

    /// The token text for a session, generation and secret.
    pub(crate) fn issue(&self, sid: &SessionId, generation: u64, secret: &[u8; 32]) -> String {
        let mut body = Zeroizing::new([0u8; BODY_LEN]);
        body[..32].copy_from_slice(secret);
        body[32..].copy_from_slice(&self.tag(sid, generation, secret));
        format!("{sid}.{generation}.{}", b64::encode(body.as_ref()))
    }
}

/// HMAC accepts keys of any length, so construction cannot fail; this keeps the
/// no-panic rule without an `expect`.
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

/// A fresh random 32-byte token secret.
pub(crate) fn random_secret() -> Result<Zeroizing<[u8; 32]>, LifecycleError> {
    let mut secret = Zeroizing::new([0u8; 32]);
    getrandom::fill(secret.as_mut()).map_err(|_| LifecycleError::Randomness)?;
    Ok(secret)
}

/// The stored form of a token secret.
pub(crate) fn hash_secret(secret: &[u8; 32]) -> TokenHash {
    let digest = Sha256::digest(secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    TokenHash::from_bytes(out)
}

/// A parsed refresh token (not yet authenticated).
pub(crate) struct RefreshToken {
    pub(crate) session_id: SessionId,
    pub(crate) generation: u64,
    pub(crate) secret: Zeroizing<[u8; 32]>,
    pub(crate) tag: [u8; TAG_LEN],
}

impl RefreshToken {
    /// Parses `<sid>.<generation>.<body>`; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut parts = text.split('.');
        let (Some(sid), Some(generation), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let session_id = SessionId::parse(sid)?;
        let canonical_number = !generation.is_empty()
            && generation.bytes().all(|b| b.is_ascii_digit())
            && (generation == "0" || !generation.starts_with('0'));
        if !canonical_number {
            return None;
        }
        let generation: u64 = generation.parse().ok()?;
        let body = Zeroizing::new(b64::decode_array::<BODY_LEN>(body, "refresh_token").ok()?);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&body[..32]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&body[32..]);
        Some(Self {
            session_id,
            generation,
            secret,
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_parse_and_authenticate() {
        let key = RefreshSecret::from_bytes([1; 32]);
        let sid = SessionId::from_bytes([2; 16]);
        let text = key.issue(&sid, 7, &[3; 32]);
        assert!(text.len() <= MAX_TOKEN_LEN);
        let token = RefreshToken::parse(&text).unwrap();
        assert_eq!(token.session_id, sid);
        assert_eq!(token.generation, 7);
        assert!(key.authenticates(&token));
        let other = RefreshSecret::from_bytes([9; 32]);
        assert!(!other.authenticates(&token));
    }

    #[test]
    fn a_changed_generation_or_secret_fails_the_tag() {
        let key = RefreshSecret::from_bytes([1; 32]);
        let sid = SessionId::from_bytes([2; 16]);
        let text = key.issue(&sid, 7, &[3; 32]);
        let forged = text.replacen(".7.", ".6.", 1);
        assert!(!key.authenticates(&RefreshToken::parse(&forged).unwrap()));
        let other_secret = key.issue(&sid, 7, &[4; 32]);
        let (head, _) = text.rsplit_once('.').unwrap();
        let (_, other_body) = other_secret.rsplit_once('.').unwrap();
        let mixed = format!("{head}.{}", &other_body);
        let mut token = RefreshToken::parse(&mixed).unwrap();
        assert!(key.authenticates(&token));
        token.tag[0] ^= 1;
        assert!(!key.authenticates(&token));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = RefreshSecret::from_bytes([1; 32]);
        let sid = SessionId::from_bytes([2; 16]);
        let good = key.issue(&sid, 12, &[3; 32]);
        for bad in [
            String::new(),
            "a.b.c".into(),
            good.replacen(".12.", ".012.", 1),
            good.replacen(".12.", ".-1.", 1),
            good.replacen(".12.", "..", 1),
            good.replacen(".12.", ".99999999999999999999.", 1),
            format!("{good}."),
            format!("{good}="),
            format!("x{good}"),
            good[..good.len() - 1].to_string(),
            good.replace('.', ""),
            "A".repeat(4096),
        ] {
            assert!(RefreshToken::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn successors_are_deterministic_and_distinct() {
        let key = RefreshSecret::from_bytes([1; 32]);
        let sid = SessionId::from_bytes([2; 16]);
        let a = key.successor(&sid, 0, &[3; 32]);
        assert_eq!(*a, *key.successor(&sid, 0, &[3; 32]));
        assert_ne!(*a, *key.successor(&sid, 1, &[3; 32]));
        assert_ne!(
            *a,
            *key.successor(&SessionId::from_bytes([5; 16]), 0, &[3; 32])
        );
        assert_ne!(*a, [3; 32]);
    }
}
