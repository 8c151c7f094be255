//! Extractors: [`Session`] (a verified caller), `Option<Session>` (anonymous callers
//! too) and [`ProofOfPossession`] (a login request's verified proof).

use std::net::SocketAddr;

use ::axum::extract::{
    ConnectInfo, FromRef, FromRequestParts, OptionalFromRequestParts, OriginalUri,
};
use http::request::Parts;
use http::{HeaderMap, header};

use super::{ApiError, Keybound};
use crate::RequestHead;
use crate::lifecycle::RequestSignals;

/// A verified caller: every check of the DPoP protocol passed and the session is active.
///
/// Use it as a handler argument; the state must provide a [`Keybound`] through
/// [`FromRef`]. A failed check is answered with the exact DPoP error response (`401`
/// with `WWW-Authenticate`, or `503` when a store is down).
///
/// ```no_run
/// use axum::{Json, Router, routing::get};
/// use keybound_server::axum::{Keybound, Session};
///
/// async fn me(session: Session) -> Json<serde_json::Value> {
///     Json(serde_json::json!({ "user": session.user_id, "session_id": session.session_id }))
/// }
///
/// fn app(kb: Keybound) -> Router {
///     Router::new().route("/api/me", get(me)).with_state(kb)
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The user (`sub`).
    pub user_id: String,
    /// The session (`sid`).
    pub session_id: String,
    /// Thumbprint of the device key that signed the request.
    pub jkt: String,
    /// When the access token (or the bound cookie) expires, seconds since the epoch.
    pub token_expires_at: i64,
    /// How the request was bound: `Dpop` (access token + proof) or `Dbsc` (the bound
    /// cookie). `jkt` is the thumbprint of that binding's key.
    pub binding: Binding,
}

/// How a request was bound to its session's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    /// A DPoP access token and proof (the SDK, or any DPoP client).
    Dpop,
    /// The browser's DBSC bound cookie.
    Dbsc,
}

impl Binding {
    /// `dpop` or `dbsc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dpop => "dpop",
            Self::Dbsc => "dbsc",
        }
    }
}

impl Session {
    pub(crate) fn from_verified(v: crate::VerifiedRequest) -> Self {
        Self {
            user_id: v.sub,
            session_id: v.sid,
            jkt: v.jkt,
            token_expires_at: v.token_expires_at,
            binding: Binding::Dpop,
        }
    }
}

/// Authenticates a request: by its DPoP credentials when it has any (the bound cookie
/// is then not looked at), else by the DBSC bound cookie when DBSC is on.
pub(crate) async fn authenticate(kb: &Keybound, parts: &Parts) -> Result<Session, ApiError> {
    if !super::dbsc::has_dpop_credentials(&parts.headers) {
        if let Some(cookie) = kb.bound_cookie_in(&parts.headers) {
            return kb
                .verify_bound_cookie(&parts.method, &parts.headers, cookie)
                .await;
        }
    }
    let verified = kb
        .verifier()
        .verify(RequestHead {
            method: &parts.method,
            uri: signed_uri(parts),
            headers: &parts.headers,
        })
        .await
        .map_err(|rejection| kb.refusal(rejection))?;
    Ok(Session::from_verified(verified))
}

/// The URI the client signed: the one before any `Router::nest` stripped a prefix.
pub(crate) fn signed_uri(parts: &Parts) -> &http::Uri {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0)
}

impl<S> FromRequestParts<S> for Session
where
    Keybound: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A `require_session` layer in front already verified this request (and
        // consumed its proof's jti): reuse its result instead of verifying twice.
        if let Some(session) = parts.extensions.get::<Session>() {
            return Ok(session.clone());
        }
        let kb = Keybound::from_ref(state);
        let session = authenticate(&kb, parts).await?;
        parts.extensions.insert(session.clone());
        Ok(session)
    }
}

/// `Option<Session>`, for routes that serve anonymous callers too: `None` for a request
/// with neither an `Authorization` nor a `DPoP` header. A request that presents either
/// must present valid credentials, or it is refused like a `Session` argument would be
/// (a stale or stolen token is not silently downgraded to anonymous).
impl<S> OptionalFromRequestParts<S> for Session
where
    Keybound: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let kb = Keybound::from_ref(state);
        let anonymous = !super::dbsc::has_dpop_credentials(&parts.headers)
            && kb.bound_cookie_in(&parts.headers).is_none();
        if anonymous && parts.extensions.get::<Session>().is_none() {
            return Ok(None);
        }
        <Session as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// The verified DPoP proof of a request without an access token: what a login
/// handler needs to open a session bound to the device key.
///
/// Verifying it checks the proof (signature, `htm`/`htu`, `iat`) and the nonce when
/// nonces are on; an `Authorization` header is ignored. Declare it before the body
/// extractor so that a bad proof is refused before any credential is looked at. See
/// [`Keybound::open_session`].
///
/// Its `jti` is recorded (replay protection) by [`Keybound::open_session`], once your
/// handler has checked the credentials: a flood of proofs from self-made keys without
/// valid credentials never reaches the replay store. A handler that acts on the proof
/// without opening a session records it with [`Keybound::consume_proof`] first.
#[derive(Clone, Debug)]
pub struct ProofOfPossession {
    /// Thumbprint of the device key.
    pub jkt: String,
    /// Request signals for the risk policy (IP from the connection if the server was
    /// started with `into_make_service_with_connect_info`, user agent).
    pub signals: RequestSignals,
    pub(crate) verified: crate::VerifiedProof,
}

impl ProofOfPossession {
    /// The request's `User-Agent`, a sensible default device label.
    pub fn user_agent(&self) -> Option<&str> {
        self.signals.user_agent.as_deref()
    }
}

pub(crate) fn signals(parts: &Parts) -> RequestSignals {
    let mut signals = RequestSignals::new();
    if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        signals = signals.with_ip(addr.ip());
    }
    if let Some(ua) = user_agent(&parts.headers) {
        signals = signals.with_user_agent(ua);
    }
    signals
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(header::USER_AGENT)?.to_str().ok()?;
    Some(ua.chars().take(256).collect())
}

impl<S> FromRequestParts<S> for ProofOfPossession
where
    Keybound: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let kb = Keybound::from_ref(state);
        let proof = kb
            .verifier()
            .verify_proof(RequestHead {
                method: &parts.method,
                uri: signed_uri(parts),
                headers: &parts.headers,
            })
            .await
            .map_err(|rejection| kb.refusal(rejection))?;
        Ok(Self {
            jkt: proof.jkt.clone(),
            signals: signals(parts),
            verified: proof,
        })
    }
}
