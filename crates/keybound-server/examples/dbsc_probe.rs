//! A small HTTPS service that runs DBSC (Device Bound Session Credentials) in a real
//! browser with keybound's DBSC building blocks ([`keybound_server::proto::dbsc`] and
//! [`DbscSignatures`]), on an in-memory table of sessions. It is the browser tests'
//! proof that registration, challenged refresh and `continue: false` work end to end
//! in Chromium (`tests/browser/dbsc.test.mjs`); keybound's session lifecycle takes the
//! same steps for its DBSC binding.
//!
//! ```sh
//! cargo run -p keybound-server --example dbsc_probe -- 127.0.0.1:8443 cert.pem key.pem 300
//! ```
//!
//! Arguments: listen address, PEM certificate and key, bound-cookie lifetime in
//! seconds. Routes (all under `/probe`):
//!
//! | route | does |
//! |---|---|
//! | `GET /probe/page` | an empty HTML page, to have a document on the origin |
//! | `POST /probe/sign-in[?alg=RS256]` | a new session: `{"session_id"}` and `Secure-Session-Registration` |
//! | `POST /probe/register` | checks the registration proof, binds the key, sets the bound cookie |
//! | `POST /probe/refresh` | `403` + challenge without a proof; a new cookie for a good one; `continue: false` once revoked |
//! | `GET /probe/me` | `{"session_id"}` for a valid bound cookie, else `401` |
//! | `POST /probe/revoke/{id}` | revokes a session (another device's action) |

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use http::{HeaderMap, StatusCode, header};
use keybound_server::proto::b64;
use keybound_server::proto::dbsc::{
    BoundCookie, CHALLENGE_HEADER, ChallengePurpose, Challenges, DbscAlg, DbscError, DbscKey,
    DbscProof, REGISTRATION_HEADER, RESPONSE_HEADER, RefreshCheck, Registration, RegistrationCheck,
    SESSION_ID_HEADER, SessionConfig, challenge_header, read_session_id, read_session_response,
    termination,
};
use keybound_server::{Clock, DbscSignatures, SystemClock};
use serde::Deserialize;
use serde_json::json;

type Error = Box<dyn std::error::Error>;

const REFRESH_PATH: &str = "/probe/refresh";
const MAX_SKEW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Entry {
    key: Option<DbscKey>,
    cookie: Option<(String, i64)>,
    revoked: bool,
}

struct Probe {
    challenges: Challenges,
    cookie: BoundCookie,
    cookie_ttl: Duration,
    clock: SystemClock,
    sessions: Mutex<HashMap<String, Entry>>,
    used_challenges: Mutex<HashSet<String>>,
}

type Shared = Arc<Probe>;

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The operating system's generator does not fail on the platforms keybound runs on;
    // if it did, the all-zero bytes would only make this test service predictable.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

fn refused(status: StatusCode, err: &DbscError) -> Response {
    let body = json!({"error_code": err.code(), "error_description": err.to_string()});
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    alg: Option<String>,
}

async fn sign_in(State(probe): State<Shared>, Query(q): Query<SignIn>) -> Response {
    let id = b64::encode(random::<16>());
    let algs = match q.alg.as_deref().map(DbscAlg::parse) {
        None => DbscAlg::ALL.to_vec(),
        Some(Ok(alg)) => vec![alg],
        Some(Err(err)) => return refused(StatusCode::BAD_REQUEST, &err),
    };
    let challenge = probe.challenges.issue(
        ChallengePurpose::Registration,
        &id,
        probe.clock.now_ms(),
        random(),
    );
    let header = Registration::new("/probe/register", challenge)
        .algs(&algs)
        .authorization(id.clone())
        .header_value();
    let header = match header {
        Ok(header) => header,
        Err(err) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &err),
    };
    lock(&probe.sessions).insert(id.clone(), Entry::default());
    (
        [(REGISTRATION_HEADER, header)],
        Json(json!({"session_id": id})),
    )
        .into_response()
}

fn proof_header(headers: &HeaderMap) -> Result<Option<DbscProof>, DbscError> {
    let Some(value) = headers.get(RESPONSE_HEADER) else {
        return Ok(None);
    };
    DbscProof::parse(&read_session_response(value.as_bytes())?).map(Some)
}

/// Marks a verified challenge used; `false` when it was used before.
fn first_use(probe: &Probe, challenge: &str) -> bool {
    lock(&probe.used_challenges).insert(challenge.to_owned())
}

fn issue_cookie(probe: &Probe, id: &str, entry: &mut Entry) -> Result<Response, DbscError> {
    let value = b64::encode(random::<24>());
    let ttl = probe.cookie_ttl.as_secs();
    let set_cookie = probe.cookie.set_cookie(&value, ttl)?;
    let expires = probe.clock.now_ms() + i64::try_from(ttl * 1000).unwrap_or(i64::MAX);
    entry.cookie = Some((value, expires));
    let config = SessionConfig::new(id, REFRESH_PATH, &probe.cookie);
    Ok(([(header::SET_COOKIE, set_cookie)], Json(config)).into_response())
}

async fn register(State(probe): State<Shared>, headers: HeaderMap) -> Response {
    let proof = match proof_header(&headers) {
        Ok(Some(proof)) => proof,
        Ok(None) => {
            let err = DbscError::MissingHeader {
                name: RESPONSE_HEADER,
            };
            return refused(StatusCode::BAD_REQUEST, &err);
        }
        Err(err) => return refused(StatusCode::BAD_REQUEST, &err),
    };
    let Some(id) = proof.authorization().map(str::to_owned) else {
        return refused(StatusCode::BAD_REQUEST, &DbscError::AuthorizationMismatch);
    };
    let mut sessions = lock(&probe.sessions);
    let Some(entry) = sessions.get_mut(&id).filter(|e| e.key.is_none()) else {
        return refused(StatusCode::BAD_REQUEST, &DbscError::InvalidChallenge);
    };
    let check = RegistrationCheck {
        challenges: &probe.challenges,
        session_id: &id,
        authorization: Some(&id),
        algs: &DbscAlg::ALL,
        now_ms: probe.clock.now_ms(),
        max_skew: MAX_SKEW,
    };
    let key = match proof.verify_registration(&check, &DbscSignatures) {
        Ok(key) => key,
        Err(err) => return refused(StatusCode::BAD_REQUEST, &err),
    };
    if !first_use(&probe, proof.jti()) {
        return refused(StatusCode::BAD_REQUEST, &DbscError::InvalidChallenge);
    }
    entry.key = Some(key);
    issue_cookie(&probe, &id, entry)
        .unwrap_or_else(|err| refused(StatusCode::INTERNAL_SERVER_ERROR, &err))
}

/// `403` with a fresh refresh challenge: Chromium signs it and asks again.
fn challenge(probe: &Probe, id: &str) -> Response {
    let fresh = probe.challenges.issue(
        ChallengePurpose::Refresh,
        id,
        probe.clock.now_ms(),
        random(),
    );
    match challenge_header(&fresh, id) {
        Ok(value) => (StatusCode::FORBIDDEN, [(CHALLENGE_HEADER, value)]).into_response(),
        Err(err) => refused(StatusCode::INTERNAL_SERVER_ERROR, &err),
    }
}

async fn refresh(State(probe): State<Shared>, headers: HeaderMap) -> Response {
    let id = match headers
        .get(SESSION_ID_HEADER)
        .map(|v| read_session_id(v.as_bytes()))
    {
        Some(Ok(id)) => id,
        Some(Err(err)) => return refused(StatusCode::BAD_REQUEST, &err),
        None => {
            let err = DbscError::MissingHeader {
                name: SESSION_ID_HEADER,
            };
            return refused(StatusCode::BAD_REQUEST, &err);
        }
    };
    let mut sessions = lock(&probe.sessions);
    let Some(entry) = sessions.get_mut(&id) else {
        return refused(StatusCode::UNAUTHORIZED, &DbscError::SessionMismatch);
    };
    if entry.revoked {
        let clear = probe.cookie.clear().unwrap_or_default();
        return ([(header::SET_COOKIE, clear)], Json(termination(&id))).into_response();
    }
    let Some(key) = entry.key.clone() else {
        return refused(StatusCode::UNAUTHORIZED, &DbscError::MissingKey);
    };
    let proof = match proof_header(&headers) {
        Ok(Some(proof)) => proof,
        Ok(None) => return challenge(&probe, &id),
        Err(err) => return refused(StatusCode::UNAUTHORIZED, &err),
    };
    let check = RefreshCheck {
        challenges: &probe.challenges,
        session_id: &id,
        key: &key,
        now_ms: probe.clock.now_ms(),
        max_skew: MAX_SKEW,
    };
    match proof.verify_refresh(&check, &DbscSignatures) {
        Ok(()) if first_use(&probe, proof.jti()) => issue_cookie(&probe, &id, entry)
            .unwrap_or_else(|err| refused(StatusCode::INTERNAL_SERVER_ERROR, &err)),
        // A used, stale or foreign challenge costs one more round: a fresh challenge.
        Ok(()) | Err(DbscError::ChallengeExpired | DbscError::InvalidChallenge) => {
            challenge(&probe, &id)
        }
        Err(err) => refused(StatusCode::UNAUTHORIZED, &err),
    }
}

async fn me(State(probe): State<Shared>, headers: HeaderMap) -> Response {
    let name = probe.cookie.name();
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        });
    let now = probe.clock.now_ms();
    let sessions = lock(&probe.sessions);
    let found = value.and_then(|value| {
        sessions.iter().find_map(|(id, e)| {
            let valid = !e.revoked
                && e.cookie
                    .as_ref()
                    .is_some_and(|(v, expires)| *v == value && *expires > now);
            valid.then(|| id.clone())
        })
    });
    match found {
        Some(id) => Json(json!({"session_id": id})).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "no_session"})),
        )
            .into_response(),
    }
}

async fn revoke(State(probe): State<Shared>, Path(id): Path<String>) -> StatusCode {
    match lock(&probe.sessions).get_mut(&id) {
        Some(entry) => {
            entry.revoked = true;
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn page() -> Html<&'static str> {
    Html("<!doctype html><title>keybound DBSC probe</title><p>probe</p>")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, cert, key, ttl] = args.as_slice() else {
        return Err("usage: dbsc_probe LISTEN CERT.pem KEY.pem COOKIE_TTL_SECS".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let probe = Arc::new(Probe {
        challenges: Challenges::from_secret(&random(), Challenges::DEFAULT_LIFETIME),
        cookie: BoundCookie::new("kb_dbsc", "/"),
        cookie_ttl: Duration::from_secs(ttl.parse()?),
        clock: SystemClock,
        sessions: Mutex::new(HashMap::new()),
        used_challenges: Mutex::new(HashSet::new()),
    });
    let app = Router::new()
        .route("/probe/page", get(page))
        .route("/probe/sign-in", post(sign_in))
        .route("/probe/register", post(register))
        .route(REFRESH_PATH, post(refresh))
        .route("/probe/me", get(me))
        .route("/probe/revoke/{id}", post(revoke))
        .with_state(probe);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = RustlsConfig::from_pem_file(cert, key).await?;
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    println!("dbsc probe listening on https://{}", listener.local_addr()?);
    axum_server::from_tcp_rustls(listener, config)?
        .serve(app.into_make_service())
        .await?;
    Ok(())
}
