//! DBSC over HTTP, in process: sign-in, registration, the bound cookie on protected
//! routes, challenged refreshes, termination, the CSRF check and the
//! registration-pending policy, each refusal with its exact status and code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::dbsc_key::BrowserKey;
use http::{HeaderMap, Method, StatusCode};
use keybound_server::ManualClock;
use keybound_server::axum::{ApiError, DbscOptions, Keybound, Running, Session, routes};
use keybound_server::lifecycle::{Actor, OpenRequest, Reason};
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "https://api.example";

async fn sign_in(
    State(kb): State<Keybound>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let user = body["username"].as_str().unwrap_or("alice").to_owned();
    let started = kb
        .start_dbsc_session(&user, OpenRequest::new().device_label("test"), &headers)
        .await?;
    Ok(started.into_response())
}

async fn me(session: Session) -> Json<Value> {
    Json(json!({"user": session.user_id, "binding": session.binding.as_str()}))
}

struct Harness {
    app: Router,
    kb: Keybound,
    clock: ManualClock,
    _running: Running,
}

async fn harness(options: DbscOptions) -> Harness {
    let (running, clock) = common::http::keybound(common::http::settings(&[])).await;
    let kb = running.keybound.clone().with_dbsc(options, "/session");
    let app = Router::new()
        .route("/api/sign-in", post(sign_in))
        .route("/api/me", get(me))
        .route("/api/change", post(me))
        .merge(routes("/session"))
        .with_state(kb.clone());
    Harness {
        app,
        kb,
        clock,
        _running: running,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn code(&self) -> &str {
        self.body["error_code"].as_str().unwrap_or("")
    }

    /// The cookie value set by this answer (`None` when none or cleared).
    fn cookie(&self) -> Option<String> {
        let line = self.header("set-cookie")?;
        let (pair, _) = line.split_once(';').unwrap();
        let (_, value) = pair.split_once('=').unwrap();
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// The challenge of a `Secure-Session-Challenge` header and its id.
    fn challenge(&self) -> (String, String) {
        let value = self.header("secure-session-challenge").unwrap();
        let (challenge, id) = value.split_once(";id=").unwrap();
        (
            challenge.trim_matches('"').to_owned(),
            id.trim_matches('"').to_owned(),
        )
    }
}

impl Harness {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Signs in: the session id and the registration challenge.
    async fn sign_in(&self) -> (String, String, Answer) {
        let answer = self
            .send(
                Method::POST,
                "/api/sign-in",
                &[],
                Some(json!({"username": "alice"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let header = answer
            .header("secure-session-registration")
            .unwrap()
            .to_owned();
        assert!(header.starts_with("(ES256 RS256);path=\"/session/dbsc/register\";challenge=\""));
        let challenge = header
            .split("challenge=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let id = answer.body["session_id"].as_str().unwrap().to_owned();
        assert!(header.ends_with(&format!(";authorization=\"{id}\"")));
        assert_eq!(answer.body["registration"], "pending");
        (id, challenge, answer)
    }

    async fn register(&self, proof: &str) -> Answer {
        self.send(
            Method::POST,
            "/session/dbsc/register",
            &[
                ("secure-session-response", proof),
                ("sec-fetch-site", "same-origin"),
                ("origin", ORIGIN),
            ],
            None,
        )
        .await
    }

    async fn refresh(&self, id: &str, proof: Option<&str>) -> Answer {
        let mut headers = vec![
            ("sec-secure-session-id", id),
            ("sec-fetch-site", "same-origin"),
        ];
        if let Some(proof) = proof {
            headers.push(("secure-session-response", proof));
        }
        self.send(Method::POST, "/session/dbsc/refresh", &headers, None)
            .await
    }

    async fn me(&self, cookie: &str) -> Answer {
        let cookie = format!("__Host-kb_dbsc={cookie}");
        self.send(Method::GET, "/api/me", &[("cookie", &cookie)], None)
            .await
    }

    /// Signs in and registers `key`: the session id and the bound cookie.
    async fn registered(&self, key: &BrowserKey) -> (String, String) {
        let (id, challenge, _) = self.sign_in().await;
        let answer = self.register(&key.proof(&challenge, Some(&id))).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        (id, answer.cookie().unwrap())
    }
}

#[tokio::test]
async fn registration_binds_the_session_and_the_cookie_serves_it() {
    let h = harness(DbscOptions::default()).await;
    let key = BrowserKey::new();
    let (id, challenge, _) = h.sign_in().await;
    let answer = h.register(&key.proof(&challenge, Some(&id))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(
        answer.body,
        json!({"session_identifier": id, "refresh_url": "/session/dbsc/refresh",
               "scope": {"include_site": false},
               "credentials": [{"type": "cookie", "name": "__Host-kb_dbsc",
                                "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax"}]})
    );
    let line = answer.header("set-cookie").unwrap();
    assert!(
        line.ends_with("; Max-Age=300; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{line}"
    );
    let cookie = answer.cookie().unwrap();
    let me = h.me(&cookie).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body, json!({"user": "alice", "binding": "dbsc"}));
    let cookie_header = format!("__Host-kb_dbsc={cookie}");
    let list = h
        .send(
            Method::GET,
            "/session/sessions",
            &[("cookie", &cookie_header)],
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["sessions"][0]["binding"], "dbsc");
    assert_eq!(list.body["sessions"][0]["current"], true);
    // A second registration of the same session is refused.
    let (_, other_challenge, _) = h.sign_in().await;
    let again = h.register(&key.proof(&other_challenge, Some(&id))).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::BAD_REQUEST, "dbsc_already_registered")
    );
}

#[tokio::test]
async fn a_refresh_is_challenged_then_served_and_each_challenge_is_used_once() {
    let h = harness(DbscOptions::default()).await;
    let key = BrowserKey::new();
    let (id, _) = h.registered(&key).await;
    let first = h.refresh(&id, None).await;
    assert_eq!(first.status, StatusCode::FORBIDDEN);
    assert_eq!(first.code(), "missing_header");
    let (challenge, challenge_id) = first.challenge();
    assert_eq!(challenge_id, id);
    let proof = key.proof(&challenge, None);
    let second = h.refresh(&id, Some(&proof)).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let cookie = second.cookie().unwrap();
    assert_eq!(h.me(&cookie).await.status, StatusCode::OK);
    let sessions = h.kb.service().list_sessions("alice", None).await.unwrap();
    assert_eq!(sessions[0].binding, "dbsc");
    // The same signed challenge again: refused, with a fresh challenge to sign.
    let replayed = h.refresh(&id, Some(&proof)).await;
    assert_eq!(
        (replayed.status, replayed.code()),
        (StatusCode::FORBIDDEN, "replayed_challenge")
    );
    let (fresh, _) = replayed.challenge();
    assert_ne!(fresh, challenge);
    let third = h.refresh(&id, Some(&key.proof(&fresh, None))).await;
    assert_eq!(third.status, StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_signed_by_another_key_is_refused() {
    let h = harness(DbscOptions::default()).await;
    let (key, thief) = (BrowserKey::new(), BrowserKey::new());
    let (id, _) = h.registered(&key).await;
    let (challenge, _) = h.refresh(&id, None).await.challenge();
    let answer = h.refresh(&id, Some(&thief.proof(&challenge, None))).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNAUTHORIZED, "invalid_signature")
    );
    assert!(answer.header("set-cookie").is_none());
}

#[tokio::test]
async fn a_stale_or_foreign_challenge_is_answered_with_a_fresh_one() {
    let h = harness(DbscOptions::default()).await;
    let key = BrowserKey::new();
    let (id, _) = h.registered(&key).await;
    let (challenge, _) = h.refresh(&id, None).await.challenge();
    h.clock.advance(Duration::from_secs(61));
    let stale = h.refresh(&id, Some(&key.proof(&challenge, None))).await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::FORBIDDEN, "challenge_expired")
    );
    let (fresh, _) = stale.challenge();
    let made_up = h.refresh(&id, Some(&key.proof("kb-refresh-2", None))).await;
    assert_eq!(
        (made_up.status, made_up.code()),
        (StatusCode::FORBIDDEN, "invalid_challenge")
    );
    assert_eq!(
        h.refresh(&id, Some(&key.proof(&fresh, None))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn registrations_for_unknown_challenges_or_sessions_are_refused() {
    let h = harness(DbscOptions::default()).await;
    let key = BrowserKey::new();
    let (id, challenge, _) = h.sign_in().await;
    let made_up = h.register(&key.proof("kb-reg-es256", Some(&id))).await;
    assert_eq!(
        (made_up.status, made_up.code()),
        (StatusCode::BAD_REQUEST, "invalid_challenge")
    );
    let unknown = h
        .register(&key.proof(&challenge, Some("AAAAAAAAAAAAAAAAAAAAAA")))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::BAD_REQUEST, "invalid_challenge")
    );
    let missing = h
        .send(
            Method::POST,
            "/session/dbsc/register",
            &[("sec-fetch-site", "same-origin")],
            None,
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::BAD_REQUEST, "missing_header")
    );
    let cross_site = h
        .send(
            Method::POST,
            "/session/dbsc/register",
            &[
                ("sec-fetch-site", "cross-site"),
                ("secure-session-response", &key.proof(&challenge, Some(&id))),
            ],
            None,
        )
        .await;
    assert_eq!(
        (cross_site.status, cross_site.code()),
        (StatusCode::FORBIDDEN, "csrf_check_failed")
    );
    // The registration window (60 s) passed: the session expired unregistered.
    h.clock.advance(Duration::from_secs(61));
    let late = h.register(&key.proof(&challenge, Some(&id))).await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::BAD_REQUEST, "session_expired")
    );
}

#[tokio::test]
async fn revocation_ends_the_session_at_its_next_request_and_refresh_terminates() {
    let h = harness(DbscOptions::default()).await;
    let key = BrowserKey::new();
    let (id, cookie) = h.registered(&key).await;
    assert_eq!(h.me(&cookie).await.status, StatusCode::OK);
    h.kb.service()
        .revoke(&id, Reason::USER_REVOKED, Actor::User("alice".into()))
        .await
        .unwrap();
    let me = h.me(&cookie).await;
    assert_eq!(
        (me.status, me.code()),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    let refresh = h.refresh(&id, None).await;
    assert_eq!(refresh.status, StatusCode::OK);
    assert_eq!(
        refresh.body,
        json!({"session_identifier": id, "continue": false})
    );
    let cleared = refresh.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("__Host-kb_dbsc=; Max-Age=0;"),
        "{cleared}"
    );
    // An unknown session terminates the same way.
    let unknown = h.refresh("no-such-session", None).await;
    assert_eq!(unknown.body["continue"], false);
}

#[tokio::test]
async fn cookie_bound_unsafe_requests_must_come_from_the_origin() {
    let h = harness(DbscOptions::default()).await;
    let key = BrowserKey::new();
    let (_, cookie) = h.registered(&key).await;
    let cookie = format!("__Host-kb_dbsc={cookie}");
    for headers in [
        vec![
            ("cookie", cookie.as_str()),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("cookie", cookie.as_str()), ("sec-fetch-site", "same-site")],
        vec![
            ("cookie", cookie.as_str()),
            ("origin", "https://evil.example"),
        ],
    ] {
        let answer = h.send(Method::POST, "/api/change", &headers, None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::FORBIDDEN, "csrf_check_failed"),
            "{headers:?}"
        );
    }
    // A cross-site GET (a link) is served: SameSite=Lax sends the cookie with it.
    let get = h
        .send(
            Method::GET,
            "/api/me",
            &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
            None,
        )
        .await;
    assert_eq!(get.status, StatusCode::OK);
    let ok = h
        .send(
            Method::POST,
            "/api/change",
            &[("cookie", &cookie), ("origin", ORIGIN)],
            None,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let logout = h
        .send(
            Method::POST,
            "/session/logout",
            &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
            None,
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(
        logout
            .header("set-cookie")
            .unwrap()
            .starts_with("__Host-kb_dbsc=; Max-Age=0;")
    );
    let after = h
        .send(Method::GET, "/api/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(
        (after.status, after.code()),
        (StatusCode::UNAUTHORIZED, "session_closed")
    );
}

#[tokio::test]
async fn a_pending_session_is_refused_unless_the_policy_allows_an_unbound_cookie() {
    let refusing = harness(DbscOptions::default()).await;
    let (_, _, answer) = refusing.sign_in().await;
    assert!(answer.header("set-cookie").is_none());
    let sessions = refusing
        .kb
        .service()
        .list_sessions("alice", None)
        .await
        .unwrap();
    assert_eq!(sessions[0].binding, "dbsc_pending");

    let allowing = harness(DbscOptions {
        unbound_cookie: Some(Duration::from_secs(30)),
        ..DbscOptions::default()
    })
    .await;
    let key = BrowserKey::new();
    let (id, challenge, answer) = allowing.sign_in().await;
    let unbound = answer.cookie().unwrap();
    assert!(answer.header("set-cookie").unwrap().contains("Max-Age=30;"));
    assert_eq!(allowing.me(&unbound).await.status, StatusCode::OK);
    let registered = allowing.register(&key.proof(&challenge, Some(&id))).await;
    assert_eq!(registered.status, StatusCode::OK);
    // Once bound, the unbound cookie is worthless.
    let old = allowing.me(&unbound).await;
    assert_eq!(
        (old.status, old.code()),
        (StatusCode::UNAUTHORIZED, "session_key_mismatch")
    );
    assert_eq!(
        allowing.me(&registered.cookie().unwrap()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn dbsc_routes_answer_404_when_dbsc_is_off() {
    let (running, _clock) = common::http::keybound(common::http::settings(&[])).await;
    let app = routes("/session").with_state(running.keybound.clone());
    let request = Request::builder()
        .method(Method::POST)
        .uri("/session/dbsc/refresh")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error_code"], "dbsc_disabled");
}
