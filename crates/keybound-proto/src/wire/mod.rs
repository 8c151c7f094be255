//! keybound's wire vocabulary, shared by the server and the browser SDK: the JSON
//! bodies ([`TokenResponse`], [`ErrorBody`], [`SessionSummary`]), the session states
//! ([`SessionState`], [`SessionEnd`]), every stable code ([`code`], [`oauth`]) and the
//! reasons a session ends for ([`reason`]).
//!
//! A word that crosses the wire is spelled here and nowhere else; the server's error
//! types, its endpoints and the SDK name these items.

#[allow(unused_imports)]
use crate::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ProtoError, b64, json};

/// One stable code and what it means (an entry of [`code::ALL`] or [`oauth::ALL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// The code, snake_case ASCII.
    pub code: &'static str,
    /// What it means, one sentence.
    pub meaning: &'static str,
}

/// Defines each code as a constant documented by its meaning, and `ALL` listing them
/// in order.
macro_rules! codes {
    ($( $name:ident = $code:literal : $meaning:literal; )*) => {
        $(
            #[doc = $meaning]
            #[doc = ""]
            #[doc = concat!("`", $code, "`")]
            pub const $name: &str = $code;
        )*

        /// Every code of this module, with its meaning, in order.
        pub const ALL: &[Code] = &[$( Code { code: $code, meaning: $meaning } ),*];
    };
}
pub mod code;
pub mod oauth;
pub mod reason;
mod session;

pub use session::{ExtendResponse, SessionEnd, SessionList, SessionState, SessionSummary};

/// The token response of login, refresh and sensitive-action rotation (OAuth-shaped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The DPoP-bound access token (`at+jwt`).
    pub access_token: String,
    /// Always `DPoP`.
    pub token_type: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    /// The opaque refresh token (bound to the same key).
    pub refresh_token: String,
    /// The session's id.
    pub session_id: String,
    /// When the session ends at the latest (absolute lifetime), seconds since the epoch.
    pub session_expires_at: i64,
    /// When the session ends if it is not used, seconds since the epoch.
    pub idle_expires_at: i64,
    /// The server's clock when the response was made, seconds since the epoch.
    pub server_time: i64,
}

/// The JSON error body every keybound endpoint uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The OAuth / RFC 9449 error ([`oauth`]: `invalid_token`, `invalid_dpop_proof`,
    /// `use_dpop_nonce`, `invalid_grant`, …).
    pub error: String,
    /// A human-readable description; never contains token text.
    pub error_description: String,
    /// keybound's precise, stable code for the failed check ([`code`]: `iat_too_old`,
    /// …).
    pub error_code: String,
}

/// Decodes a compact JWT's header and claims without verifying anything, for tools
/// such as `keybound inspect`. Duplicate members are still rejected.
pub fn decode_unverified(text: &str) -> Result<(Value, Value), ProtoError> {
    let mut parts = text.trim().split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProtoError::MalformedJws);
    };
    let header = json::parse_object(&b64::decode(h, "header")?, "header")?;
    let payload = json::parse_object(&b64::decode(p, "payload")?, "payload")?;
    Ok((Value::Object(header), Value::Object(payload)))
}
