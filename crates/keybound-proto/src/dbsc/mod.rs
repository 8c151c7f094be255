//! Device Bound Session Credentials (DBSC, W3C webappsec-dbsc): the browser keeps a
//! session key (in a TPM where it can), and refreshes a short-lived bound cookie by
//! signing the server's challenges with it.
//!
//! The wire forms, as the spec writes them and as Chromium 156 sends them (recorded in
//! `tests/vectors/dbsc/`):
//!
//! * [`Registration`] builds `Secure-Session-Registration` (sent with a sign-in);
//!   [`challenge_header`] builds `Secure-Session-Challenge` (sent with a `403` to a
//!   refresh without a fresh proof).
//! * [`read_session_response`] and [`read_session_id`] read `Secure-Session-Response`
//!   and `Sec-Secure-Session-Id`, quoted or bare.
//! * [`DbscProof`] parses the `dbsc+jwt` and checks it for a registration or a refresh;
//!   the signature check is the caller's [`SignatureVerifier`].
//! * [`Challenges`] issues and checks stateless HMAC challenges.
//! * [`SessionConfig`], [`BoundCookie`] and [`termination`] are the JSON answers and
//!   the cookie.
//!
//! Every refusal is a [`DbscError`] with a stable code.

#[allow(unused_imports)]
use crate::prelude::*;
mod alg;
mod challenge;
mod config;
mod error;
mod headers;
mod key;
mod proof;
mod sf;

pub use alg::DbscAlg;
pub use challenge::{CHALLENGE_RANDOM_BYTES, ChallengePurpose, Challenges};
pub use config::{
    BoundCookie, CookieCredential, CredentialKind, SameSite, Scope, ScopeRule, ScopeRuleKind,
    SessionConfig, termination,
};
pub use error::DbscError;
pub use headers::{
    CHALLENGE_HEADER, MAX_HEADER_LEN, MAX_SESSION_ID_LEN, REGISTRATION_HEADER, RESPONSE_HEADER,
    Registration, SESSION_ID_HEADER, challenge_header, read_session_id, read_session_response,
};
pub use key::{DbscKey, MAX_RSA_BITS, MIN_RSA_BITS};
pub use proof::{DBSC_TYP, DbscProof, RefreshCheck, RegistrationCheck, SignatureVerifier};
