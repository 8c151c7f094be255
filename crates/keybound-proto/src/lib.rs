//! keybound's protocol core: the wire formats of device-bound sessions and the pure
//! checks on them.
//!
//! * DPoP proofs (RFC 9449) signed with Ed25519 (`alg: EdDSA`, RFC 8037):
//!   [`ProofBuilder`] makes them, [`DpopProof`] parses and checks them.
//! * Access tokens (`at+jwt`, RFC 9068) bound to the proof key by `cnf.jkt`:
//!   [`sign_access_token`], [`AccessToken`].
//! * Public keys and RFC 7638 thumbprints: [`PublicJwk`].
//! * `htu` normalisation: [`normalize_htu`].
//! * DBSC, the browser's own device binding: the [`dbsc`] module.
//!
//! The crate does no I/O, reads no clock and has no randomness of its own: callers
//! pass `now` and random bytes. It compiles for `wasm32-unknown-unknown` (the browser
//! SDK) and natively (the server), so both sides run the same code.
//!
//! Parsing is strict: only `EdDSA` (or its RFC 9864 name `Ed25519`), exact `typ`, no
//! `crit`, canonical unpadded base64url, no duplicate JSON members, no private members
//! in `jwk`, canonical signatures (S < L), no small-order keys. Every failure is a
//! [`ProtoError`] with a stable [`code`](ProtoError::code).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod b64;
mod check;
pub mod dbsc;
mod dpop;
mod error;
mod htu;
mod json;
mod jwk;
mod jws;
mod token;
pub mod wire;

pub use check::{
    CheckError, CheckHooks, CheckedRequest, Credential, RequestContext, check_request,
};
pub use dpop::{DpopProof, MAX_JWS_LEN, PROOF_TYP, ProofBuilder, ProofClaims, access_token_hash};
pub use error::ProtoError;
pub use htu::normalize_htu;
pub use jwk::{DecodeEveryTime, KeyDecoder, PublicJwk};
pub use jws::Signer;
pub use token::{
    ACCESS_TOKEN_TYP, AccessToken, AccessTokenClaims, BOUND_COOKIE_TYP, sign_access_token,
    sign_bound_cookie,
};
pub use wire::{
    ErrorBody, SessionEnd, SessionState, SessionSummary, TokenResponse, decode_unverified,
};

/// Re-exported so users of [`Signer`] need no direct dependency.
pub use ed25519_dalek;
