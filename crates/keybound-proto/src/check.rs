//! The pure checks of one DPoP-protected request, in keybound's fixed order (cheap
//! first; signatures before anything is written). Stateful checks (replay, nonce,
//! session state) come after this and live in the server.

#[allow(unused_imports)]
use crate::prelude::*;
use sha2::{Digest, Sha256};

use crate::jwk::{DecodeEveryTime, KeyDecoder};
use crate::{AccessToken, DpopProof, ProofAlgs, ProtoError};

/// What the checked request looked like to the service.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The request URL as the service is reached publicly (configured origin plus path);
    /// query and fragment are ignored.
    pub url: &'a str,
    /// The current time, seconds since the epoch.
    pub now: i64,
    /// Allowed distance between the proof's `iat` and `now`, in seconds.
    pub max_skew_secs: u64,
    /// Size limit for the proof and the access token, in bytes.
    pub max_jws_len: usize,
}

/// Which credential a check failed on; decides `invalid_dpop_proof` vs `invalid_token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The `DPoP` proof.
    Proof,
    /// The access token.
    AccessToken,
}

/// A failed check and the credential it concerns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct CheckError {
    /// The credential that failed.
    pub credential: Credential,
    /// The precise failure.
    pub error: ProtoError,
}

impl CheckError {
    fn proof(error: ProtoError) -> Self {
        Self {
            credential: Credential::Proof,
            error,
        }
    }

    fn token(error: ProtoError) -> Self {
        Self {
            credential: Credential::AccessToken,
            error,
        }
    }
}

/// A request whose proof (and access token, if any) passed every pure check.
#[derive(Clone, Debug)]
pub struct CheckedRequest {
    /// The verified proof.
    pub proof: DpopProof,
    /// The verified access token, when one was sent.
    pub token: Option<AccessToken>,
    /// Thumbprint of the proof key.
    pub jkt: String,
}

/// What the caller plugs into [`check_request`]: the access-token signature check
/// (required) and optional shortcuts that leave the checks and their outcome unchanged.
///
/// A closure `|token: &AccessToken| -> Result<(), ProtoError>` is the hooks of a
/// caller that only verifies token signatures (no shortcuts).
pub trait CheckHooks {
    /// Verifies the token's signature (resolving its `kid`); must return
    /// [`ProtoError::UnknownKid`] for a key it does not know. Called for every access
    /// token that reaches that step, remembered or not.
    fn verify_token(&mut self, token: &AccessToken) -> Result<(), ProtoError>;

    /// A token this caller parsed before from exactly `text` (whose SHA-256 is
    /// `sha256`), to use instead of parsing `text` again. Parsing is a pure function
    /// of the text, so a remembered token must be one that
    /// [`AccessToken::parse_with_limit`] returned for this same text. Default: none.
    fn remembered_token(&mut self, text: &str, sha256: &[u8; 32]) -> Option<AccessToken> {
        let _ = (text, sha256);
        None
    }

    /// Decodes the proof's `jwk` (default: [`DecodeEveryTime`]).
    fn decoder(&self) -> &dyn KeyDecoder {
        &DecodeEveryTime
    }

    /// The proof algorithms accepted (default: [`ProofAlgs::ALL`]); a proof of any
    /// other `alg` is refused with [`ProtoError::UnsupportedAlg`].
    fn proof_algs(&self) -> ProofAlgs {
        ProofAlgs::ALL
    }

    /// Whether [`RequestContext::url`] is already the result of
    /// [`normalize_htu`](crate::normalize_htu), so it need not be normalised again
    /// (default: false).
    fn url_is_normalized(&self) -> bool {
        false
    }
}

impl<F: FnMut(&AccessToken) -> Result<(), ProtoError>> CheckHooks for F {
    fn verify_token(&mut self, token: &AccessToken) -> Result<(), ProtoError> {
        self(token)
    }
}

/// Runs the pure checks of one request in keybound's fixed order: JOSE parsing of proof
/// and token → `htm`/`htu` → `iat` window → `ath` → `cnf.jkt` equals the proof key's
/// thumbprint → access-token signature (through [`CheckHooks::verify_token`], which
/// resolves `kid`) and expiry → proof signature (`verify_strict`).
///
/// Without an access token (login, refresh) only the proof is checked. The stateful
/// checks (replay, nonce, session state) are the caller's, after this.
///
/// ```
/// use keybound_proto::{AccessToken, ProofBuilder, ProtoError, RequestContext, Signer, check_request};
/// let device = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
/// let now = 1_700_000_000;
/// let proof = ProofBuilder::new(device.public_jwk(), "POST", "https://api.example/session/refresh", now, [3u8; 16])
///     .unwrap()
///     .sign(&device)
///     .unwrap();
/// let ctx = RequestContext {
///     method: "POST",
///     url: "https://api.example/session/refresh",
///     now,
///     max_skew_secs: 60,
///     max_jws_len: 8192,
/// };
/// // No access token here, so the token hook is never called.
/// let checked = check_request(&ctx, &proof, None, &mut |_: &AccessToken| Err(ProtoError::UnknownKid)).unwrap();
/// assert_eq!(checked.jkt, device.public_jwk().thumbprint());
/// ```
pub fn check_request(
    ctx: &RequestContext<'_>,
    proof: &str,
    access_token: Option<&str>,
    hooks: &mut impl CheckHooks,
) -> Result<CheckedRequest, CheckError> {
    let proof = DpopProof::parse_with(proof, ctx.max_jws_len, hooks.proof_algs(), hooks.decoder())
        .map_err(CheckError::proof)?;
    // One SHA-256 of the token serves both `ath` and the caller's lookup.
    let token_hash: Option<[u8; 32]> = access_token.map(|t| Sha256::digest(t.as_bytes()).into());
    let token = match (access_token, &token_hash) {
        (Some(text), Some(hash)) => Some(
            match hooks.remembered_token(text, hash) {
                Some(token) if text.len() <= ctx.max_jws_len && token.as_str() == text => Ok(token),
                _ => AccessToken::parse_with_limit(text, ctx.max_jws_len),
            }
            .map_err(CheckError::token)?,
        ),
        _ => None,
    };
    if hooks.url_is_normalized() {
        proof.check_htm_htu_normalized(ctx.method, ctx.url)
    } else {
        proof.check_htm_htu(ctx.method, ctx.url)
    }
    .map_err(CheckError::proof)?;
    proof
        .check_iat(ctx.now, ctx.max_skew_secs)
        .map_err(CheckError::proof)?;
    proof
        .check_ath_hash(token_hash.as_ref())
        .map_err(CheckError::proof)?;
    let jkt = proof.thumbprint();
    if let Some(token) = &token {
        if token.claims().jkt != jkt {
            return Err(CheckError::token(ProtoError::JktMismatch));
        }
        hooks.verify_token(token).map_err(CheckError::token)?;
        token
            .check_time(ctx.now, ctx.max_skew_secs)
            .map_err(CheckError::token)?;
    }
    proof.verify_signature().map_err(CheckError::proof)?;
    Ok(CheckedRequest { proof, token, jkt })
}
