//! DBSC in the axum integration: the options, the sign-in helper, the registration
//! and refresh endpoints, and the bound cookie a [`Session`](super::Session) may be
//! authenticated by. The wire forms are [`keybound_proto::dbsc`]'s; the session is the
//! lifecycle's (`SessionService::open_dbsc_session`, `bind_dbsc`, `refresh_dbsc`).

use std::time::Duration;

use ::axum::Json;
use ::axum::extract::State;
use ::axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use keybound_proto::dbsc::{
    BoundCookie, CHALLENGE_HEADER, CHALLENGE_RANDOM_BYTES, ChallengePurpose, Challenges, DbscAlg,
    DbscError, DbscKey, DbscProof, REGISTRATION_HEADER, RESPONSE_HEADER, RefreshCheck,
    Registration, RegistrationCheck, SESSION_ID_HEADER, SameSite, SessionConfig, challenge_header,
    read_session_id, read_session_response, termination,
};
use keybound_proto::wire::{code, oauth};
use keybound_proto::{AccessToken, Credential, ErrorBody};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ApiError, Keybound};
use crate::lifecycle::{LifecycleError, OpenRequest, metrics};
use crate::store::{SessionBinding, SessionRecord};
use crate::{DbscSignatures, Rejection, SessionCheck};

/// The default name of the bound cookie. `__Host-`: the browser keeps it only when it
/// is `Secure`, `Path=/` and has no `Domain`.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-kb_dbsc";

/// How a service runs DBSC ([`Keybound::with_dbsc`]).
#[derive(Clone, Debug)]
pub struct DbscOptions {
    /// How long a signed-in browser has to register its key (default 60 s). The
    /// session expires when it has not.
    pub registration_window: Duration,
    /// The signature algorithms offered, in order of preference (default ES256, RS256).
    pub algs: Vec<DbscAlg>,
    /// The bound cookie's name (default [`DEFAULT_COOKIE_NAME`]).
    pub cookie_name: String,
    /// The bound cookie's `SameSite` (default `Lax`).
    pub same_site: SameSite,
    /// The registration-pending policy: `None` (the default) refuses every request of
    /// a session until its browser registered; `Some(d)` lets the browser use an
    /// unbound cookie for at most `d` (and no longer than the registration window),
    /// which a stolen copy of can be used too. Both are audited (`session.created`
    /// with `dbsc_registration_pending` or `dbsc_unbound_cookie`).
    pub unbound_cookie: Option<Duration>,
}

impl Default for DbscOptions {
    fn default() -> Self {
        Self {
            registration_window: Duration::from_secs(60),
            algs: DbscAlg::ALL.to_vec(),
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            same_site: SameSite::Lax,
            unbound_cookie: None,
        }
    }
}

/// DBSC as a [`Keybound`] runs it: options, challenges, the cookie description.
pub(crate) struct Dbsc {
    options: DbscOptions,
    challenges: Challenges,
    cookie: BoundCookie,
    register_path: String,
    refresh_path: String,
}

impl Dbsc {
    pub(crate) fn new(options: DbscOptions, secret: &[u8; 32], prefix: &str) -> Self {
        let prefix = normalize_prefix(prefix);
        Self {
            cookie: BoundCookie::new(options.cookie_name.clone(), "/").same_site(options.same_site),
            challenges: Challenges::from_secret(secret, Challenges::DEFAULT_LIFETIME),
            register_path: format!("{prefix}/dbsc/register"),
            refresh_path: format!("{prefix}/dbsc/refresh"),
            options,
        }
    }
}

/// `/session` → `/session`, `/` → ``.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    let prefix = format!("/{}", prefix.trim_matches('/'));
    if prefix == "/" { String::new() } else { prefix }
}

/// A DBSC refusal: status, code and, for refreshes, a fresh challenge to sign.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    description: String,
    challenge: Option<(String, String)>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            challenge: None,
        }
    }

    fn from_dbsc(status: StatusCode, error: &DbscError) -> Self {
        Self::new(status, error.code(), error.to_string())
    }

    fn from_lifecycle(error: &LifecycleError) -> Self {
        let status = match error {
            LifecycleError::Store(_) | LifecycleError::Signing(_) | LifecycleError::Randomness => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.code(), error.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let error = match self.status {
            StatusCode::UNAUTHORIZED => oauth::INVALID_TOKEN,
            StatusCode::FORBIDDEN => oauth::ACCESS_DENIED,
            StatusCode::SERVICE_UNAVAILABLE => oauth::TEMPORARILY_UNAVAILABLE,
            _ => oauth::INVALID_REQUEST,
        };
        let description = if self.status.is_server_error() {
            "the service is temporarily unavailable; retry later".to_owned()
        } else {
            self.description
        };
        let body = ErrorBody {
            error: error.to_owned(),
            error_description: description,
            error_code: self.code.to_owned(),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some((challenge, id)) = self.challenge {
            if let Ok(value) = challenge_header(&challenge, &id)
                .map_err(|_| ())
                .and_then(|v| HeaderValue::from_str(&v).map_err(|_| ()))
            {
                headers.insert(CHALLENGE_HEADER, value);
            }
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn header_value(text: &str) -> Result<HeaderValue, Refusal> {
    HeaderValue::from_str(text).map_err(|_| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::UNENCODABLE_VALUE,
            "a DBSC header value is not sendable",
        )
    })
}

fn random() -> Result<[u8; CHALLENGE_RANDOM_BYTES], Refusal> {
    let mut bytes = [0u8; CHALLENGE_RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::RANDOMNESS_UNAVAILABLE,
            "no randomness",
        )
    })?;
    Ok(bytes)
}

/// The replay-store key of a signed challenge (each is accepted once).
fn challenge_key(challenge: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"keybound-dbsc-challenge-used-v1");
    hash.update(challenge.as_bytes());
    hash.finalize().into()
}

/// The response to a DBSC sign-in: `{"session_id","binding":"dbsc","registration":
/// "pending","registration_deadline"}` with `Secure-Session-Registration` (and the
/// unbound cookie when the policy allows one).
#[derive(Debug)]
pub struct DbscSignIn {
    response: Response,
    session_id: String,
}

impl DbscSignIn {
    /// The new session's id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

impl IntoResponse for DbscSignIn {
    fn into_response(self) -> Response {
        self.response
    }
}

impl Keybound {
    fn dbsc(&self) -> Result<&Dbsc, Refusal> {
        self.inner.dbsc.as_ref().ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                code::DBSC_DISABLED,
                "DBSC is not enabled on this server",
            )
        })
    }

    /// Whether DBSC is on.
    pub fn dbsc_enabled(&self) -> bool {
        self.inner.dbsc.is_some()
    }

    /// Starts a DBSC session for `user_id`, whom your sign-in handler has just
    /// authenticated: the answer carries `Secure-Session-Registration`, and a browser
    /// with DBSC registers its key at once (`POST {prefix}/dbsc/register`) and gets the
    /// bound cookie. A browser without DBSC ignores the header; the session then stays
    /// as the registration-pending policy says ([`DbscOptions::unbound_cookie`]).
    ///
    /// Errors: `dbsc_disabled` (404) and those of
    /// [`open_session`](Keybound::open_session).
    pub async fn start_dbsc_session(
        &self,
        user_id: &str,
        request: OpenRequest,
        headers: &HeaderMap,
    ) -> Result<DbscSignIn, ApiError> {
        let dbsc = self.dbsc().map_err(ApiError::from)?;
        let mut request = request;
        if let Some(ua) = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            request.signals = request
                .signals
                .clone()
                .with_user_agent(ua.chars().take(256).collect::<String>());
        }
        let window = match dbsc.options.unbound_cookie {
            Some(unbound) => dbsc
                .options
                .registration_window
                .min(unbound.max(Duration::from_secs(1))),
            None => dbsc.options.registration_window,
        };
        let pending = self
            .service()
            .open_dbsc_session(
                user_id,
                request,
                window,
                dbsc.options.unbound_cookie.is_some(),
            )
            .await?;
        let now_ms = self.verifier().clock().now_ms();
        let challenge = dbsc.challenges.issue(
            ChallengePurpose::Registration,
            &pending.session_id,
            now_ms,
            random().map_err(ApiError::from)?,
        );
        let registration = Registration::new(dbsc.register_path.clone(), challenge)
            .algs(&dbsc.options.algs)
            .authorization(pending.session_id.clone())
            .header_value()
            .map_err(|e| {
                ApiError::from(Refusal::from_dbsc(StatusCode::INTERNAL_SERVER_ERROR, &e))
            })?;
        let mut response = Json(json!({
            "session_id": pending.session_id,
            "binding": "dbsc",
            "registration": "pending",
            "registration_deadline": pending.registration_deadline,
        }))
        .into_response();
        let headers = response.headers_mut();
        headers.insert(
            REGISTRATION_HEADER,
            header_value(&registration).map_err(ApiError::from)?,
        );
        if dbsc.options.unbound_cookie.is_some() {
            if let Some(record) = self.service().load_session(&pending.session_id).await? {
                let cookie = self.service().bound_cookie(&record)?;
                let line = dbsc
                    .cookie
                    .set_cookie(&cookie.value, cookie.max_age)
                    .map_err(|e| {
                        ApiError::from(Refusal::from_dbsc(StatusCode::INTERNAL_SERVER_ERROR, &e))
                    })?;
                headers.insert(
                    header::SET_COOKIE,
                    header_value(&line).map_err(ApiError::from)?,
                );
            }
        }
        Ok(DbscSignIn {
            response: no_store(response),
            session_id: pending.session_id,
        })
    }

    /// The `Set-Cookie` line that removes the bound cookie (after a logout), when DBSC
    /// is on.
    pub fn clear_bound_cookie(&self) -> Option<HeaderValue> {
        let dbsc = self.inner.dbsc.as_ref()?;
        dbsc.cookie
            .clear()
            .ok()
            .and_then(|line| HeaderValue::from_str(&line).ok())
    }

    /// The bound cookie's value in `headers`, when DBSC is on and there is one.
    pub(crate) fn bound_cookie_in<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let dbsc = self.inner.dbsc.as_ref()?;
        cookie_value(headers, dbsc.cookie.name())
    }

    /// Authenticates a request by its bound cookie: signature by a server key, typ
    /// `kb-dbsc+jwt`, issuer, expiry, then the session's state and key (so a revoked
    /// session's cookie is refused at once, on every node), then the CSRF check for
    /// unsafe methods.
    pub(crate) async fn verify_bound_cookie(
        &self,
        method: &Method,
        headers: &HeaderMap,
        value: &str,
    ) -> Result<super::Session, ApiError> {
        let invalid = |error: keybound_proto::ProtoError| {
            self.refusal(Rejection::Proto {
                credential: Credential::AccessToken,
                error,
            })
        };
        let token = AccessToken::parse_bound_cookie(value).map_err(invalid)?;
        {
            let ring = self
                .verifier()
                .key_ring()
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = ring
                .verifying_key(token.kid())
                .ok_or(keybound_proto::ProtoError::UnknownKid)
                .map_err(invalid)?;
            token.verify_signature(key).map_err(invalid)?;
        }
        let now = self.verifier().clock().now_secs();
        token.check_time(now, 5).map_err(invalid)?;
        let claims = token.claims();
        if claims.iss != self.service().issuer() {
            return Err(invalid(keybound_proto::ProtoError::InvalidClaim {
                name: "iss",
            }));
        }
        self.service()
            .check(&claims.sid, &claims.sub, &claims.jkt)
            .await
            .map_err(|denied| self.refusal(Rejection::Session(denied)))?;
        check_csrf(method, headers, self.verifier().public_origin())?;
        Ok(super::Session {
            user_id: claims.sub.clone(),
            session_id: claims.sid.clone(),
            jkt: claims.jkt.clone(),
            token_expires_at: claims.exp,
            binding: super::Binding::Dbsc,
        })
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// CSRF protection of cookie-bound requests (besides `SameSite`): a request with an
/// unsafe method must come from the service's own origin: `Sec-Fetch-Site:
/// same-origin` when the browser sends that header, else an `Origin` equal to the
/// public origin. A request with neither header is not from a browser that could be
/// forged into sending it, and passes.
pub(crate) fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    origin: &str,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refused = |why: &'static str| {
        ApiError::from(Refusal::new(
            StatusCode::FORBIDDEN,
            code::CSRF_CHECK_FAILED,
            why,
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" => Ok(()),
            _ => Err(refused(
                "a cookie-bound request from another site or origin",
            )),
        };
    }
    match headers.get(header::ORIGIN) {
        Some(value) if value.as_bytes() == origin.trim_end_matches('/').as_bytes() => Ok(()),
        Some(_) => Err(refused("a cookie-bound request from another origin")),
        None => Ok(()),
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::Dbsc {
            status: refusal.status,
            code: refusal.code,
            description: refusal.description,
        }
    }
}

/// A DBSC request must come from the page's own origin (Chromium sends
/// `Sec-Fetch-Site: same-origin`).
fn same_origin_fetch(headers: &HeaderMap) -> Result<(), Refusal> {
    match headers.get("sec-fetch-site") {
        None => Ok(()),
        Some(site) if site.as_bytes() == b"same-origin" => Ok(()),
        Some(_) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            code::CSRF_CHECK_FAILED,
            "DBSC requests must come from the same origin",
        )),
    }
}

fn proof_header(headers: &HeaderMap) -> Result<Option<DbscProof>, DbscError> {
    let Some(value) = headers.get(RESPONSE_HEADER) else {
        return Ok(None);
    };
    let text = read_session_response(value.as_bytes())?;
    DbscProof::parse(&text).map(Some)
}

/// `POST {prefix}/dbsc/register`.
pub(crate) async fn register(State(kb): State<Keybound>, headers: HeaderMap) -> Response {
    let result = register_inner(&kb, &headers).await;
    let label = match &result {
        Ok(_) => "ok",
        Err(refusal) => refusal.code,
    };
    metrics::dbsc("register", label);
    no_store(result.unwrap_or_else(IntoResponse::into_response))
}

async fn register_inner(kb: &Keybound, headers: &HeaderMap) -> Result<Response, Refusal> {
    let dbsc = kb.dbsc()?;
    same_origin_fetch(headers)?;
    let proof = proof_header(headers)
        .map_err(|e| Refusal::from_dbsc(StatusCode::BAD_REQUEST, &e))?
        .ok_or_else(|| {
            Refusal::from_dbsc(
                StatusCode::BAD_REQUEST,
                &DbscError::MissingHeader {
                    name: RESPONSE_HEADER,
                },
            )
        })?;
    // The registration header's `authorization` is the session id.
    let session_id = proof.authorization().unwrap_or_default().to_owned();
    let record = kb
        .service()
        .load_session(&session_id)
        .await
        .map_err(|e| Refusal::from_lifecycle(&e))?;
    let now_ms = kb.verifier().clock().now_ms();
    let Some(record) = record else {
        // No such session: the challenge cannot have been issued for it.
        return Err(Refusal::from_dbsc(
            StatusCode::BAD_REQUEST,
            &DbscError::InvalidChallenge,
        ));
    };
    let now = now_ms.div_euclid(1000);
    let state = record.effective_state(now);
    if state.is_terminal() {
        return Err(Refusal::from_lifecycle(&LifecycleError::SessionEnded {
            state,
        }));
    }
    if record.binding != SessionBinding::DbscPending {
        return Err(Refusal::from_lifecycle(
            &LifecycleError::DbscAlreadyRegistered,
        ));
    }
    let key = proof
        .verify_registration(
            &RegistrationCheck {
                challenges: &dbsc.challenges,
                session_id: &session_id,
                algs: &dbsc.options.algs,
                authorization: Some(&session_id),
                now_ms,
                max_skew: Duration::from_secs(60),
            },
            &DbscSignatures,
        )
        .map_err(|e| Refusal::from_dbsc(StatusCode::BAD_REQUEST, &e))?;
    consume_challenge(kb, &dbsc.challenges, proof.jti(), now_ms).await?;
    let record = kb
        .service()
        .bind_dbsc(&session_id, &key)
        .await
        .map_err(|e| Refusal::from_lifecycle(&e))?;
    let config = SessionConfig::new(
        record.id.to_string(),
        dbsc.refresh_path.clone(),
        &dbsc.cookie,
    );
    with_cookie(kb, dbsc, &record, Json(config).into_response())
}

/// Records a signed challenge in the replay store: each is accepted once.
async fn consume_challenge(
    kb: &Keybound,
    challenges: &Challenges,
    challenge: &str,
    now_ms: i64,
) -> Result<(), Refusal> {
    let lifetime = i64::try_from(challenges.lifetime().as_millis()).unwrap_or(i64::MAX);
    let expires = now_ms
        .saturating_add(lifetime)
        .saturating_add(i64::try_from(Challenges::CLOCK_TOLERANCE.as_millis()).unwrap_or(0));
    match kb
        .verifier()
        .replay_store()
        .insert_once(&challenge_key(challenge), expires)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            code::REPLAYED_CHALLENGE,
            "the challenge was already used",
        )),
        Err(_) => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::REPLAY_STORE_UNAVAILABLE,
            "the replay store is unavailable",
        )),
    }
}

fn with_cookie(
    kb: &Keybound,
    dbsc: &Dbsc,
    record: &SessionRecord,
    mut response: Response,
) -> Result<Response, Refusal> {
    let cookie = kb
        .service()
        .bound_cookie(record)
        .map_err(|e| Refusal::from_lifecycle(&e))?;
    let line = dbsc
        .cookie
        .set_cookie(&cookie.value, cookie.max_age)
        .map_err(|e| Refusal::from_dbsc(StatusCode::INTERNAL_SERVER_ERROR, &e))?;
    response
        .headers_mut()
        .insert(header::SET_COOKIE, header_value(&line)?);
    Ok(response)
}

/// `POST {prefix}/dbsc/refresh`.
pub(crate) async fn refresh(State(kb): State<Keybound>, headers: HeaderMap) -> Response {
    let result = refresh_inner(&kb, &headers).await;
    let label = match &result {
        Ok((_, label)) => label,
        Err(refusal) if refusal.challenge.is_some() && refusal.code == code::MISSING_HEADER => {
            "challenged"
        }
        Err(refusal) => refusal.code,
    };
    metrics::dbsc("refresh", label);
    no_store(match result {
        Ok((response, _)) => response,
        Err(refusal) => refusal.into_response(),
    })
}

async fn refresh_inner(
    kb: &Keybound,
    headers: &HeaderMap,
) -> Result<(Response, &'static str), Refusal> {
    let dbsc = kb.dbsc()?;
    same_origin_fetch(headers)?;
    let session_id = headers
        .get(SESSION_ID_HEADER)
        .ok_or(DbscError::MissingHeader {
            name: SESSION_ID_HEADER,
        })
        .and_then(|v| read_session_id(v.as_bytes()))
        .map_err(|e| Refusal::from_dbsc(StatusCode::BAD_REQUEST, &e))?;
    let record = kb
        .service()
        .load_session(&session_id)
        .await
        .map_err(|e| Refusal::from_lifecycle(&e))?;
    let now_ms = kb.verifier().clock().now_ms();
    let now = now_ms.div_euclid(1000);
    let key = match &record {
        Some(record) if !record.effective_state(now).is_terminal() => match &record.binding {
            SessionBinding::Dbsc { key } => serde_json::from_str(key)
                .ok()
                .and_then(|value| DbscKey::from_json(&value).ok()),
            SessionBinding::Dpop | SessionBinding::DbscPending => None,
        },
        _ => None,
    };
    let Some(key) = key else {
        return Ok((terminate(kb, &session_id), "terminated"));
    };
    let challenge = |refusal: Refusal| -> Refusal {
        let issued = random().map(|bytes| {
            dbsc.challenges
                .issue(ChallengePurpose::Refresh, &session_id, now_ms, bytes)
        });
        match issued {
            Ok(challenge) => Refusal {
                challenge: Some((challenge, session_id.clone())),
                ..refusal
            },
            Err(error) => error,
        }
    };
    let proof = match proof_header(headers) {
        Ok(Some(proof)) => proof,
        Ok(None) => {
            return Err(challenge(Refusal::from_dbsc(
                StatusCode::FORBIDDEN,
                &DbscError::MissingHeader {
                    name: RESPONSE_HEADER,
                },
            )));
        }
        Err(e) => return Err(Refusal::from_dbsc(StatusCode::BAD_REQUEST, &e)),
    };
    let checked = proof.verify_refresh(
        &RefreshCheck {
            challenges: &dbsc.challenges,
            session_id: &session_id,
            key: &key,
            now_ms,
            max_skew: Duration::from_secs(60),
        },
        &DbscSignatures,
    );
    match checked {
        Ok(()) => {}
        // A challenge that is stale, foreign or from another session: ask again; the
        // browser that holds the key signs the new one at once.
        Err(e @ (DbscError::ChallengeExpired | DbscError::InvalidChallenge)) => {
            return Err(challenge(Refusal::from_dbsc(StatusCode::FORBIDDEN, &e)));
        }
        // Signed by another key, or not a valid signature: refused outright.
        Err(e) => return Err(Refusal::from_dbsc(StatusCode::UNAUTHORIZED, &e)),
    }
    if let Err(refusal) = consume_challenge(kb, &dbsc.challenges, proof.jti(), now_ms).await {
        return Err(if refusal.code == code::REPLAYED_CHALLENGE {
            challenge(refusal)
        } else {
            refusal
        });
    }
    let jkt = crate::lifecycle::dbsc_thumbprint(&key).map_err(|e| Refusal::from_lifecycle(&e))?;
    match kb.service().refresh_dbsc(&session_id, &jkt).await {
        Ok(record) => {
            let response = with_cookie(kb, dbsc, &record, StatusCode::OK.into_response())?;
            Ok((response, "ok"))
        }
        Err(LifecycleError::SessionEnded { .. } | LifecycleError::SessionNotFound) => {
            Ok((terminate(kb, &session_id), "terminated"))
        }
        Err(e) => Err(Refusal::from_lifecycle(&e)),
    }
}

/// `{"session_identifier": id, "continue": false}` and the cookie cleared: the browser
/// ends its DBSC session.
fn terminate(kb: &Keybound, session_id: &str) -> Response {
    let mut response = Json(termination(session_id)).into_response();
    if let Some(clear) = kb.clear_bound_cookie() {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}

/// Whether a request carries DPoP credentials (then the bound cookie is not looked at).
pub(crate) fn has_dpop_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION) || headers.contains_key("dpop")
}
