//! The axum integration through `tower::ServiceExt::oneshot`: every endpoint's
//! success and errors (status, `error`, `error_code`, `WWW-Authenticate`), idempotent
//! repeats, nonces, body limits, CORS, nesting, the layer form and `FromRef` state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use common::http::{Device, T0_MS, app, keybound, settings};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use keybound_server::axum::{
    CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, Keybound, Running, Session, require_session, routes,
};
use keybound_server::proto::TokenResponse;
use keybound_server::{Clock, ManualClock};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::cors::CorsLayer;

const ORIGIN: &str = "https://api.example";

struct Harness {
    app: Router,
    kb: Keybound,
    clock: ManualClock,
    _running: Running,
    /// The latest `DPoP-Nonce` the server sent.
    nonce: Mutex<Option<String>>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn assert_status(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts a keybound error response: status, `error`, `error_code`, no-store, and
    /// for a 401 the DPoP challenge naming the same error.
    #[track_caller]
    fn assert_error(&self, status: u16, error: &str, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["error"], error, "body: {}", self.body);
        assert_eq!(self.body["error_code"], code, "body: {}", self.body);
        assert!(self.body["error_description"].is_string());
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("content-type"), Some("application/json"));
        let challenge = self.header("www-authenticate");
        if status == 401 {
            let challenge = challenge.expect("a 401 carries WWW-Authenticate");
            assert!(
                challenge.starts_with(&format!("DPoP error=\"{error}\", error_description=\"")),
                "{challenge}"
            );
            assert!(challenge.ends_with(", algs=\"EdDSA ES256\""), "{challenge}");
        } else {
            assert_eq!(challenge, None);
        }
    }
}

impl Harness {
    async fn new(vars: &[(&str, &str)]) -> Self {
        let (running, clock) = keybound(settings(vars)).await;
        let kb = running.keybound.clone();
        Self {
            app: app(kb.clone()).layer(DefaultBodyLimit::max(16 * 1024)),
            kb,
            clock,
            _running: running,
            nonce: Mutex::new(None),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    fn proof(&self, device: &Device, method: &str, path: &str, at: Option<&str>) -> String {
        let url = format!("{ORIGIN}{}", path.split('?').next().unwrap());
        let nonce = self.nonce.lock().unwrap().clone();
        device.proof(method, &url, self.now(), at, nonce.as_deref())
    }

    /// A request signed by `device` (with the access token `at`, if any).
    fn request(
        &self,
        device: &Device,
        method: &str,
        path: &str,
        at: Option<&str>,
    ) -> http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("dpop", self.proof(device, method, path, at));
        if let Some(at) = at {
            builder = builder.header("authorization", format!("DPoP {at}"));
        }
        builder
    }

    async fn send_to(&self, app: &Router, request: Request<Body>) -> Reply {
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        if let Some(nonce) = parts.headers.get("dpop-nonce") {
            *self.nonce.lock().unwrap() = Some(nonce.to_str().unwrap().to_owned());
        }
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        self.send_to(&self.app, request).await
    }

    /// A signed call with an optional JSON body.
    async fn call(
        &self,
        device: &Device,
        method: &str,
        path: &str,
        at: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let builder = self.request(device, method, path, at);
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    async fn try_login(&self, device: &Device, user: &str, password: &str) -> Reply {
        let body = json!({"username": user, "password": password});
        self.call(device, "POST", "/api/login", None, Some(body))
            .await
    }

    async fn login(&self, device: &Device, user: &str) -> TokenResponse {
        let password = match user {
            "alice" => "wonderland",
            "bob" => "builder",
            _ => "christmas",
        };
        let reply = self.try_login(device, user, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        serde_json::from_value(reply.body).unwrap()
    }

    async fn me(&self, device: &Device, at: &str) -> Reply {
        self.call(device, "GET", "/api/me", Some(at), None).await
    }

    async fn refresh(&self, device: &Device, refresh_token: &str) -> Reply {
        let body = json!({"refresh_token": refresh_token});
        self.call(device, "POST", "/session/refresh", None, Some(body))
            .await
    }
}

fn tokens(reply: &Reply) -> TokenResponse {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    serde_json::from_value(reply.body.clone()).unwrap()
}

/// `POST /api/login` with Alice's credentials and exactly the `DPoP` headers `proofs`,
/// for the proofs a well-behaved client would not send.
fn login_request(proofs: &[&str]) -> Request<Body> {
    let mut builder = Request::post("/api/login").header("content-type", "application/json");
    for proof in proofs {
        builder = builder.header("dpop", *proof);
    }
    builder
        .body(Body::from(
            r#"{"username":"alice","password":"wonderland"}"#,
        ))
        .unwrap()
}

/// `GET /api/me` with exactly the `Authorization` header `authorization` (if any) and
/// the `DPoP` headers `proofs`.
fn me_request(authorization: Option<&str>, proofs: &[&str]) -> Request<Body> {
    let mut builder = Request::get("/api/me");
    if let Some(authorization) = authorization {
        builder = builder.header("authorization", authorization);
    }
    for proof in proofs {
        builder = builder.header("dpop", *proof);
    }
    builder.body(Body::empty()).unwrap()
}

// ---------------------------------------------------------------- login

#[tokio::test]
async fn login_returns_the_token_response_uncached() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let reply = h.try_login(&device, "alice", "wonderland").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("dpop-nonce"), None, "nonces are off");
    let t = tokens(&reply);
    assert_eq!(t.token_type, "DPoP");
    assert_eq!(t.expires_in, 300);
    assert_eq!(t.server_time, T0_MS / 1000);
    assert_eq!(t.idle_expires_at, T0_MS / 1000 + 1800);
    assert_eq!(t.session_expires_at, T0_MS / 1000 + 43_200);
    // The access token is bound to the proof's key.
    let (_, claims) = keybound_server::proto::decode_unverified(&t.access_token).unwrap();
    assert_eq!(claims["cnf"]["jkt"], device.jkt());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], t.session_id.as_str());
    assert_eq!(claims["iss"], ORIGIN);
}

#[tokio::test]
async fn login_refuses_bad_proofs_before_looking_at_credentials() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let reply = h.send(login_request(&[])).await;
    reply.assert_error(401, "invalid_dpop_proof", "missing_proof");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            r#"DPoP error="invalid_dpop_proof", error_description="the request has no DPoP proof", algs="EdDSA ES256""#
        )
    );

    let proof = h.proof(&device, "POST", "/api/login", None);
    assert_eq!(
        h.send(login_request(&[&proof])).await.status,
        StatusCode::OK
    );
    h.send(login_request(&[&proof]))
        .await
        .assert_error(401, "invalid_dpop_proof", "replayed_jti");

    let stale = device.proof(
        "POST",
        &format!("{ORIGIN}/api/login"),
        h.now() - 61,
        None,
        None,
    );
    for (proof, code) in [
        (h.proof(&device, "POST", "/api/logon", None), "htu_mismatch"),
        (h.proof(&device, "GET", "/api/login", None), "htm_mismatch"),
        (stale, "iat_too_old"),
    ] {
        h.send(login_request(&[&proof]))
            .await
            .assert_error(401, "invalid_dpop_proof", code);
    }

    let reply = h.send(login_request(&["not.a.jws"])).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn login_with_wrong_credentials_or_bad_bodies() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let reply = h.try_login(&device, "alice", "looking-glass").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"], "invalid_credentials");

    let malformed = h
        .request(&device, "POST", "/api/login", None)
        .header("content-type", "application/json")
        .body(Body::from("{\"username\":"))
        .unwrap();
    h.send(malformed)
        .await
        .assert_error(400, "invalid_request", "invalid_json_body");

    let not_json = h
        .request(&device, "POST", "/api/login", None)
        .header("content-type", "text/plain")
        .body(Body::from("alice"))
        .unwrap();
    h.send(not_json)
        .await
        .assert_error(415, "invalid_request", "unsupported_media_type");

    let huge = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    let too_large = h
        .request(&device, "POST", "/api/login", None)
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    h.send(too_large)
        .await
        .assert_error(413, "invalid_request", "payload_too_large");
}

// ---------------------------------------------------------------- Session extractor

#[tokio::test]
async fn session_extractor_accepts_a_valid_request() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let t = h.login(&device, "alice").await;
    let reply = h.me(&device, &t.access_token).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"user": "alice", "session_id": t.session_id})
    );
    // The query string is not part of htu.
    let reply = h
        .call(
            &device,
            "GET",
            "/api/me?page=2",
            Some(&t.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn session_extractor_rejects_each_bad_credential() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let other = Device::new(2);
    let t = h.login(&device, "alice").await;
    let at = t.access_token.as_str();

    let dpop_at = format!("DPoP {at}");
    let proof = |bound_to: Option<&str>| h.proof(&device, "GET", "/api/me", bound_to);

    // No credentials at all.
    let reply = h.send(me_request(None, &[])).await;
    reply.assert_error(401, "invalid_token", "missing_token");

    // A token without a proof.
    h.send(me_request(Some(&dpop_at), &[])).await.assert_error(
        401,
        "invalid_dpop_proof",
        "missing_proof",
    );

    // Bearer is never accepted.
    let bearer = me_request(Some(&format!("Bearer {at}")), &[&proof(Some(at))]);
    let reply = h.send(bearer).await;
    reply.assert_error(401, "invalid_token", "invalid_auth_scheme");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            r#"DPoP error="invalid_token", error_description="the Authorization scheme must be DPoP", algs="EdDSA ES256""#
        )
    );

    // A proof without ath, or bound to another token.
    h.send(me_request(Some(&dpop_at), &[&proof(None)]))
        .await
        .assert_error(401, "invalid_dpop_proof", "ath_missing");
    h.send(me_request(Some(&dpop_at), &[&proof(Some("another-token"))]))
        .await
        .assert_error(401, "invalid_dpop_proof", "ath_mismatch");

    // The token stolen and used with another device's key.
    let reply = h.me(&other, at).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error_code"], "jkt_mismatch");

    // A tampered token.
    let mut tampered = at.to_owned();
    let mid = tampered.find('.').unwrap() + 5;
    let c = if &tampered[mid..=mid] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(mid..=mid, c);
    let reply = h.me(&device, &tampered).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"], "invalid_token");

    // The same proof twice.
    let once = proof(Some(at));
    let reply = h.send(me_request(Some(&dpop_at), &[&once])).await;
    assert_eq!(reply.status, StatusCode::OK);
    h.send(me_request(Some(&dpop_at), &[&once]))
        .await
        .assert_error(401, "invalid_dpop_proof", "replayed_jti");

    // Two DPoP headers.
    let two = me_request(Some(&dpop_at), &[&proof(Some(at)), &proof(Some(at))]);
    h.send(two)
        .await
        .assert_error(401, "invalid_dpop_proof", "multiple_dpop_headers");

    // Expired.
    h.advance(301);
    h.me(&device, at)
        .await
        .assert_error(401, "invalid_token", "token_expired");
}

/// Every challenge advertises the proof algorithms the service accepts
/// (`KEYBOUND_PROOF_ALGS`), whichever extractor or endpoint refused the request.
#[tokio::test]
async fn challenges_advertise_the_configured_proof_algs() {
    let es256 = Harness::new(&[("KEYBOUND_PROOF_ALGS", "ES256")]).await;
    // An Ed25519 proof at login: `ProofOfPossession` refuses it.
    let reply = es256
        .try_login(&Device::new(1), "alice", "wonderland")
        .await;
    reply.assert_status(401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            r#"DPoP error="invalid_dpop_proof", error_description="unsupported alg", algs="ES256""#
        )
    );
    // No credentials: the `Session` extractor, in an app route and a session endpoint.
    for path in ["/api/me", "/session/sessions"] {
        let reply = es256
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        reply.assert_status(401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some(
                r#"DPoP error="invalid_token", error_description="the request has no access token", algs="ES256""#
            ),
            "{path}"
        );
    }

    let eddsa = Harness::new(&[("KEYBOUND_PROOF_ALGS", "EdDSA")]).await;
    let device = Device::new(1);
    let t = eddsa.login(&device, "alice").await;
    let bearer = me_request(
        Some(&format!("Bearer {}", t.access_token)),
        &[&eddsa.proof(&device, "GET", "/api/me", Some(&t.access_token))],
    );
    let reply = eddsa.send(bearer).await;
    reply.assert_status(401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            r#"DPoP error="invalid_token", error_description="the Authorization scheme must be DPoP", algs="EdDSA""#
        )
    );
    // A refresh without a proof.
    let no_proof = Request::post("/session/refresh")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"refresh_token": t.refresh_token}).to_string(),
        ))
        .unwrap();
    let reply = eddsa.send(no_proof).await;
    reply.assert_status(401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            r#"DPoP error="invalid_dpop_proof", error_description="the request has no DPoP proof", algs="EdDSA""#
        )
    );
}

#[tokio::test]
async fn optional_session_serves_anonymous_callers_but_not_bad_credentials() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let anonymous = h
        .send(Request::get("/api/maybe").body(Body::empty()).unwrap())
        .await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.body, json!({"user": null}));

    let t = h.login(&device, "alice").await;
    let reply = h
        .call(&device, "GET", "/api/maybe", Some(&t.access_token), None)
        .await;
    assert_eq!(reply.body, json!({"user": "alice"}));

    // Presenting credentials means they must be valid.
    let stale = Request::get("/api/maybe")
        .header("authorization", format!("DPoP {}", t.access_token))
        .body(Body::empty())
        .unwrap();
    h.send(stale)
        .await
        .assert_error(401, "invalid_dpop_proof", "missing_proof");
}

// ---------------------------------------------------------------- refresh

#[tokio::test]
async fn refresh_rotates_and_repeats_within_grace() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let t0 = h.login(&device, "alice").await;
    h.advance(200);
    let reply = h.refresh(&device, &t0.refresh_token).await;
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let t1 = tokens(&reply);
    assert_eq!(t1.session_id, t0.session_id);
    assert_ne!(t1.refresh_token, t0.refresh_token);
    assert_ne!(t1.access_token, t0.access_token);
    assert_eq!(t1.server_time, h.now());
    assert_eq!(t1.idle_expires_at, h.now() + 1800);
    assert_eq!(h.me(&device, &t1.access_token).await.status, StatusCode::OK);

    // The response was lost: the previous token within the grace period gets the
    // current generation again.
    h.advance(5);
    let again = tokens(&h.refresh(&device, &t0.refresh_token).await);
    assert_eq!(again.refresh_token, t1.refresh_token);
    assert_eq!(again.session_id, t1.session_id);
    assert_eq!(
        h.me(&device, &again.access_token).await.status,
        StatusCode::OK
    );

    // The current token keeps working.
    let t2 = tokens(&h.refresh(&device, &t1.refresh_token).await);
    assert_ne!(t2.refresh_token, t1.refresh_token);
}

#[tokio::test]
async fn refresh_token_reuse_after_grace_revokes_the_session() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let t0 = h.login(&device, "alice").await;
    let t1 = tokens(&h.refresh(&device, &t0.refresh_token).await);
    h.advance(31);
    h.refresh(&device, &t0.refresh_token).await.assert_error(
        400,
        "invalid_grant",
        "refresh_token_reused",
    );
    // The still-unexpired access token is refused on the very next request.
    h.me(&device, &t1.access_token)
        .await
        .assert_error(401, "invalid_token", "session_revoked");
    h.refresh(&device, &t1.refresh_token).await.assert_error(
        400,
        "invalid_grant",
        "session_revoked",
    );
}

#[tokio::test]
async fn refresh_refuses_another_key_and_ended_sessions() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let thief = Device::new(9);
    let t = h.login(&device, "alice").await;
    h.refresh(&thief, &t.refresh_token).await.assert_error(
        400,
        "invalid_grant",
        "refresh_key_mismatch",
    );
    // The wrong key did not hurt the session.
    let t = tokens(&h.refresh(&device, &t.refresh_token).await);

    let reply = h
        .call(
            &device,
            "POST",
            "/session/logout",
            Some(&t.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    h.refresh(&device, &t.refresh_token)
        .await
        .assert_error(400, "invalid_grant", "session_closed");

    // Expiry by idle timeout.
    let t = h.login(&device, "alice").await;
    h.advance(1801);
    h.refresh(&device, &t.refresh_token).await.assert_error(
        400,
        "invalid_grant",
        "session_expired",
    );
}

#[tokio::test]
async fn refresh_rejects_bad_bodies_and_tokens() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let t = h.login(&device, "alice").await;

    let no_proof = Request::post("/session/refresh")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"refresh_token": t.refresh_token}).to_string(),
        ))
        .unwrap();
    h.send(no_proof)
        .await
        .assert_error(401, "invalid_dpop_proof", "missing_proof");

    let malformed = h
        .request(&device, "POST", "/session/refresh", None)
        .body(Body::from("refresh_token=abc"))
        .unwrap();
    h.send(malformed)
        .await
        .assert_error(400, "invalid_request", "invalid_json_body");

    h.call(&device, "POST", "/session/refresh", None, Some(json!({})))
        .await
        .assert_error(400, "invalid_request", "missing_refresh_token");
    h.call(
        &device,
        "POST",
        "/session/refresh",
        None,
        Some(json!({"refresh_token": 7})),
    )
    .await
    .assert_error(400, "invalid_request", "invalid_json_body");
    h.refresh(&device, "nonsense").await.assert_error(
        400,
        "invalid_grant",
        "refresh_token_malformed",
    );

    // Well-formed, but its authentication tag does not match.
    let mut forged = t.refresh_token.clone();
    let at = forged.rfind('.').unwrap() + 10;
    let c = if &forged[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, c);
    h.refresh(&device, &forged)
        .await
        .assert_error(400, "invalid_grant", "refresh_token_invalid");

    let huge = json!({"refresh_token": "x".repeat(5000)}).to_string();
    let too_large = h
        .request(&device, "POST", "/session/refresh", None)
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    let reply = h.send(too_large).await;
    reply.assert_error(413, "invalid_request", "payload_too_large");
    assert_eq!(
        reply.body["error_description"],
        "the request body is larger than 4096 bytes"
    );

    // None of this hurt the session.
    assert_eq!(
        h.refresh(&device, &t.refresh_token).await.status,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------- extend, logout

#[tokio::test]
async fn extend_restarts_the_idle_timeout() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let t = h.login(&device, "alice").await;
    h.advance(250);
    let reply = h
        .call(
            &device,
            "POST",
            "/session/extend",
            Some(&t.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["id"], t.session_id.as_str());
    assert_eq!(reply.body["current"], true);
    assert_eq!(reply.body["state"], "active");
    assert_eq!(reply.body["server_time"], h.now());
    assert_eq!(reply.body["idle_expires_at"], h.now() + 1800);

    h.send(
        Request::post("/session/extend")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .assert_error(401, "invalid_token", "missing_token");
}

#[tokio::test]
async fn logout_is_idempotent_and_ends_the_session_at_once() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let t = h.login(&device, "alice").await;
    let at = Some(t.access_token.as_str());
    let reply = h.call(&device, "POST", "/session/logout", at, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body, Value::Null);
    // Again, with a fresh proof: still a success.
    let reply = h.call(&device, "POST", "/session/logout", at, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    // The unexpired access token is dead.
    h.me(&device, &t.access_token)
        .await
        .assert_error(401, "invalid_token", "session_closed");
    h.call(&device, "POST", "/session/extend", at, None)
        .await
        .assert_error(401, "invalid_token", "session_closed");

    // Logging out still needs valid credentials.
    h.send(
        Request::post("/session/logout")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .assert_error(401, "invalid_token", "missing_token");
    h.call(&Device::new(2), "POST", "/session/logout", at, None)
        .await
        .assert_error(401, "invalid_token", "jkt_mismatch");
}

// ---------------------------------------------------------------- session list, revoke

#[tokio::test]
async fn sessions_lists_the_callers_sessions_only() {
    let h = Harness::new(&[]).await;
    let laptop = Device::new(1);
    let phone = Device::new(2);
    let bobs = Device::new(3);
    let a1 = h.login(&laptop, "alice").await;
    h.advance(10);
    let a2 = h.login(&phone, "alice").await;
    let _b = h.login(&bobs, "bob").await;

    let reply = h
        .call(
            &laptop,
            "GET",
            "/session/sessions",
            Some(&a1.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let sessions = reply.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    // Newest first.
    assert_eq!(sessions[0]["id"], a2.session_id.as_str());
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[1]["id"], a1.session_id.as_str());
    assert_eq!(sessions[1]["current"], true);
    assert_eq!(sessions[1]["state"], "active");
    assert_eq!(sessions[1]["device_label"], "test device");
    assert_eq!(sessions[1]["created_at"], T0_MS / 1000);
    for key in ["last_seen_at", "idle_expires_at", "expires_at"] {
        assert!(sessions[1][key].is_i64(), "{key}");
    }

    h.send(
        Request::get("/session/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .assert_error(401, "invalid_token", "missing_token");
}

#[tokio::test]
async fn revoking_one_session_is_immediate_and_idempotent() {
    let h = Harness::new(&[]).await;
    let laptop = Device::new(1);
    let phone = Device::new(2);
    let a1 = h.login(&laptop, "alice").await;
    let a2 = h.login(&phone, "alice").await;
    let path = format!("/session/sessions/{}", a2.session_id);

    let reply = h
        .call(&laptop, "DELETE", &path, Some(&a1.access_token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.body,
        json!({"id": a2.session_id, "state": "revoked", "reason": "user_revoked", "changed": true})
    );
    // The phone's unexpired access token is refused on its very next request.
    h.me(&phone, &a2.access_token)
        .await
        .assert_error(401, "invalid_token", "session_revoked");
    h.refresh(&phone, &a2.refresh_token).await.assert_error(
        400,
        "invalid_grant",
        "session_revoked",
    );

    // Again: a success that changes nothing.
    let reply = h
        .call(&laptop, "DELETE", &path, Some(&a1.access_token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["changed"], false);
    assert_eq!(reply.body["state"], "revoked");

    // The laptop is untouched.
    assert_eq!(h.me(&laptop, &a1.access_token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_another_users_session_is_refused() {
    let h = Harness::new(&[]).await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let a = h.login(&alice, "alice").await;
    let b = h.login(&bob, "bob").await;
    let reply = h
        .call(
            &alice,
            "DELETE",
            &format!("/session/sessions/{}", b.session_id),
            Some(&a.access_token),
            None,
        )
        .await;
    reply.assert_error(403, "access_denied", "session_not_owned");
    // Bob's session is alive.
    assert_eq!(h.me(&bob, &b.access_token).await.status, StatusCode::OK);

    for id in ["AAAAAAAAAAAAAAAAAAAAAA", "not-a-session", &"x".repeat(300)] {
        h.call(
            &alice,
            "DELETE",
            &format!("/session/sessions/{id}"),
            Some(&a.access_token),
            None,
        )
        .await
        .assert_error(404, "invalid_request", "session_not_found");
    }
    h.send(
        Request::delete(format!("/session/sessions/{}", b.session_id))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .assert_error(401, "invalid_token", "missing_token");
}

#[tokio::test]
async fn revoke_others_keeps_only_the_current_session() {
    let h = Harness::new(&[]).await;
    let devices: Vec<Device> = (1..=3).map(Device::new).collect();
    let mut logins = Vec::new();
    for device in &devices {
        logins.push(h.login(device, "alice").await);
    }
    let bob = Device::new(7);
    let b = h.login(&bob, "bob").await;
    let current = &logins[0];
    let reply = h
        .call(
            &devices[0],
            "POST",
            "/session/sessions/revoke-others",
            Some(&current.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body, json!({"revoked": 2}));
    for (device, login) in devices.iter().zip(&logins).skip(1) {
        h.me(device, &login.access_token).await.assert_error(
            401,
            "invalid_token",
            "session_revoked",
        );
    }
    assert_eq!(
        h.me(&devices[0], &current.access_token).await.status,
        StatusCode::OK
    );
    assert_eq!(h.me(&bob, &b.access_token).await.status, StatusCode::OK);
    // Idempotent.
    let reply = h
        .call(
            &devices[0],
            "POST",
            "/session/sessions/revoke-others",
            Some(&current.access_token),
            None,
        )
        .await;
    assert_eq!(reply.body, json!({"revoked": 0}));
    h.send(
        Request::post("/session/sessions/revoke-others")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .assert_error(401, "invalid_token", "missing_token");
}

// ---------------------------------------------------------------- JWKS

#[tokio::test]
async fn jwks_publishes_the_signing_key_with_a_validator() {
    let h = Harness::new(&[]).await;
    let t = h.login(&Device::new(1), "alice").await;
    let (header, _) = keybound_server::proto::decode_unverified(&t.access_token).unwrap();
    let reply = h
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let keys = reply.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], header["kid"]);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(keys[0].get("d").is_none(), "no private part");
    let etag = reply.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));

    let revalidate = Request::get("/.well-known/jwks.json")
        .header("if-none-match", &etag)
        .body(Body::empty())
        .unwrap();
    let reply = h.send(revalidate).await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    assert_eq!(reply.body, Value::Null);

    // A rotated key changes the document and its validator.
    h.kb.verifier()
        .key_ring()
        .write()
        .unwrap()
        .rotate(keybound_server::ServerKey::from_seed(&[8; 32]));
    let changed = Request::get("/.well-known/jwks.json")
        .header("if-none-match", &etag)
        .body(Body::empty())
        .unwrap();
    let reply = h.send(changed).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["keys"].as_array().unwrap().len(), 2);
    assert_ne!(reply.header("etag"), Some(etag.as_str()));
}

// ---------------------------------------------------------------- nonces

#[tokio::test]
async fn nonce_challenge_then_success() {
    let h = Harness::new(&[("KEYBOUND_NONCE", "on")]).await;
    let device = Device::new(1);

    // Login without a nonce: one challenge, carrying the nonce to use.
    let reply = h.try_login(&device, "alice", "wonderland").await;
    reply.assert_error(401, "use_dpop_nonce", "use_dpop_nonce");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with(r#"DPoP error="use_dpop_nonce""#)
    );
    let nonce = reply.header("dpop-nonce").unwrap().to_owned();
    assert_eq!(nonce.len(), 22);
    // The retry with a fresh proof carrying it succeeds, and the success carries the
    // current nonce too.
    let reply = h.try_login(&device, "alice", "wonderland").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("dpop-nonce"), Some(nonce.as_str()));
    let t = tokens(&reply);

    // Protected calls and every keybound endpoint carry the nonce.
    let reply = h.me(&device, &t.access_token).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = h
        .call(
            &device,
            "GET",
            "/session/sessions",
            Some(&t.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("dpop-nonce"), Some(nonce.as_str()));
    let reply = h.refresh(&device, &t.refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("dpop-nonce"), Some(nonce.as_str()));
    let t = tokens(&reply);

    // A protected call without a nonce is challenged.
    let without_nonce = device.proof(
        "GET",
        &format!("{ORIGIN}/api/me"),
        h.now(),
        Some(&t.access_token),
        None,
    );
    let no_nonce = me_request(Some(&format!("DPoP {}", t.access_token)), &[&without_nonce]);
    let reply = h.send(no_nonce).await;
    reply.assert_error(401, "use_dpop_nonce", "use_dpop_nonce");
    assert_eq!(reply.header("dpop-nonce"), Some(nonce.as_str()));

    // Two minutes later the nonce is stale: challenged with a new one, then fine.
    h.advance(120);
    let reply = h.refresh(&device, &t.refresh_token).await;
    reply.assert_error(401, "use_dpop_nonce", "invalid_nonce");
    assert_ne!(reply.header("dpop-nonce"), Some(nonce.as_str()));
    let t = tokens(&h.refresh(&device, &t.refresh_token).await);
    assert_eq!(h.me(&device, &t.access_token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_nonces_no_nonce_header_is_sent() {
    let h = Harness::new(&[]).await;
    let device = Device::new(1);
    let t = h.login(&device, "alice").await;
    for reply in [
        h.me(&device, &t.access_token).await,
        h.call(
            &device,
            "GET",
            "/session/sessions",
            Some(&t.access_token),
            None,
        )
        .await,
        h.refresh(&device, &t.refresh_token).await,
    ] {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("dpop-nonce"), None);
    }
}

// ---------------------------------------------------------------- CORS

#[tokio::test]
async fn cors_preflight_and_exposed_headers() {
    let h = Harness::new(&[]).await;
    let cors = CorsLayer::new()
        .allow_origin(HeaderValue::from_static("https://app.example"))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(CORS_ALLOW_HEADERS)
        .expose_headers(CORS_EXPOSE_HEADERS);
    let app = common::http::app(h.kb.clone()).layer(cors);

    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/api/me")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization, dpop")
        .body(Body::empty())
        .unwrap();
    let reply = h.send_to(&app, preflight).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let allowed = reply.header("access-control-allow-headers").unwrap();
    for name in ["authorization", "dpop", "content-type"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(
        reply
            .header("access-control-allow-methods")
            .unwrap()
            .contains("DELETE")
    );

    // A refused cross-origin call: the browser app can read the challenge.
    let call = Request::get("/api/me")
        .header("origin", "https://app.example")
        .body(Body::empty())
        .unwrap();
    let reply = h.send_to(&app, call).await;
    reply.assert_error(401, "invalid_token", "missing_token");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("dpop-nonce,www-authenticate,retry-after")
    );

    // And a successful one.
    let device = Device::new(1);
    let t = h.login(&device, "alice").await;
    let call = h
        .request(&device, "GET", "/api/me", Some(&t.access_token))
        .header("origin", "https://app.example")
        .body(Body::empty())
        .unwrap();
    let reply = h.send_to(&app, call).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("dpop-nonce,www-authenticate,retry-after")
    );
}

// ---------------------------------------------------------------- composition

#[tokio::test]
async fn nested_routers_check_htu_against_the_original_uri() {
    let h = Harness::new(&[]).await;
    let api = Router::new().route(
        "/me",
        get(|session: Session| async move { session.user_id }),
    );
    let app = Router::new()
        .nest("/v1", api)
        .nest("/auth", routes("/session"))
        .merge(Router::new().route("/api/login", axum::routing::post(login_alice)))
        .with_state(h.kb.clone());
    let device = Device::new(1);
    let login = h
        .request(&device, "POST", "/api/login", None)
        .body(Body::empty())
        .unwrap();
    let t = tokens(&h.send_to(&app, login).await);

    let ok = h
        .request(&device, "GET", "/v1/me", Some(&t.access_token))
        .body(Body::empty())
        .unwrap();
    let reply = h.send_to(&app, ok).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, Value::String("alice".into()));

    // A proof naming the path the nested router sees is refused.
    let stripped = Request::get("/v1/me")
        .header("authorization", format!("DPoP {}", t.access_token))
        .header(
            "dpop",
            h.proof(&device, "GET", "/me", Some(&t.access_token)),
        )
        .body(Body::empty())
        .unwrap();
    h.send_to(&app, stripped)
        .await
        .assert_error(401, "invalid_dpop_proof", "htu_mismatch");

    // The session routes under a nested prefix.
    let list = h
        .request(
            &device,
            "GET",
            "/auth/session/sessions",
            Some(&t.access_token),
        )
        .body(Body::empty())
        .unwrap();
    let reply = h.send_to(&app, list).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let refresh = h
        .request(&device, "POST", "/auth/session/refresh", None)
        .body(Body::from(
            json!({"refresh_token": t.refresh_token}).to_string(),
        ))
        .unwrap();
    assert_eq!(h.send_to(&app, refresh).await.status, StatusCode::OK);
}

async fn login_alice(
    axum::extract::State(kb): axum::extract::State<Keybound>,
    proof: keybound_server::axum::ProofOfPossession,
) -> Result<keybound_server::axum::TokenReply, keybound_server::axum::ApiError> {
    kb.open_session(&proof, "alice", Default::default()).await
}

#[tokio::test]
async fn require_session_layer_protects_a_whole_router() {
    let h = Harness::new(&[("KEYBOUND_NONCE", "on")]).await;
    let protected = Router::new()
        .route(
            "/api/orders",
            get(|session: Session| async move { Json(json!({"user": session.user_id})) }),
        )
        .route(
            "/api/profile",
            get(|Extension(session): Extension<Session>| async move { session.session_id }),
        )
        .route_layer(middleware::from_fn_with_state(
            h.kb.clone(),
            require_session,
        ));
    let app = Router::new()
        .merge(protected)
        .route("/api/login", axum::routing::post(login_alice))
        .route("/api/health", get(|| async { "ok" }))
        .with_state(h.kb.clone());

    // Unprotected routes stay open; unknown paths stay 404.
    let reply = h
        .send_to(
            &app,
            Request::get("/api/health").body(Body::empty()).unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = h
        .send_to(
            &app,
            Request::get("/api/nothing").body(Body::empty()).unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = h
        .send_to(
            &app,
            Request::get("/api/orders").body(Body::empty()).unwrap(),
        )
        .await;
    reply.assert_error(401, "invalid_token", "missing_token");

    let device = Device::new(1);
    let login = |h: &Harness| {
        h.request(&device, "POST", "/api/login", None)
            .body(Body::empty())
            .unwrap()
    };
    let challenge = h.send_to(&app, login(&h)).await;
    challenge.assert_error(401, "use_dpop_nonce", "use_dpop_nonce");
    let t = tokens(&h.send_to(&app, login(&h)).await);

    // The handler's own `Session` argument reuses the layer's verification (a second
    // verification would see the proof as a replay).
    let orders = h
        .request(&device, "GET", "/api/orders", Some(&t.access_token))
        .body(Body::empty())
        .unwrap();
    let reply = h.send_to(&app, orders).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({"user": "alice"}));
    assert!(
        reply.header("dpop-nonce").is_some(),
        "the layer sends the nonce"
    );

    let profile = h
        .request(&device, "GET", "/api/profile", Some(&t.access_token))
        .body(Body::empty())
        .unwrap();
    let reply = h.send_to(&app, profile).await;
    assert_eq!(reply.body, Value::String(t.session_id.clone()));

    // Revoked: refused by the layer on the next request.
    h.kb.service()
        .revoke(
            &t.session_id,
            keybound_server::lifecycle::Reason::ADMIN_REVOKED,
            keybound_server::lifecycle::Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    let orders = h
        .request(&device, "GET", "/api/orders", Some(&t.access_token))
        .body(Body::empty())
        .unwrap();
    h.send_to(&app, orders)
        .await
        .assert_error(401, "invalid_token", "session_revoked");
}

/// An application state holding keybound among other things.
#[derive(Clone)]
struct AppState {
    keybound: Keybound,
    greeting: &'static str,
}

impl FromRef<AppState> for Keybound {
    fn from_ref(state: &AppState) -> Self {
        state.keybound.clone()
    }
}

#[tokio::test]
async fn state_is_reached_through_from_ref() {
    let h = Harness::new(&[]).await;
    let state = AppState {
        keybound: h.kb.clone(),
        greeting: "hello",
    };
    let app =
        Router::new()
            .route(
                "/api/hello",
                get(
                    |axum::extract::State(state): axum::extract::State<AppState>,
                     session: Session| async move {
                        format!("{} {}", state.greeting, session.user_id)
                    },
                ),
            )
            .route(
                "/api/maybe",
                get(|session: Option<Session>| async move {
                    session.map_or("anonymous".to_owned(), |s| s.user_id)
                }),
            )
            .route("/api/login", axum::routing::post(login_alice))
            .merge(routes("/session"))
            .with_state(state);
    let device = Device::new(1);
    let login = h
        .request(&device, "POST", "/api/login", None)
        .body(Body::empty())
        .unwrap();
    let t = tokens(&h.send_to(&app, login).await);
    let hello = h
        .request(&device, "GET", "/api/hello", Some(&t.access_token))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        h.send_to(&app, hello).await.body,
        Value::String("hello alice".into())
    );
    let maybe = Request::get("/api/maybe").body(Body::empty()).unwrap();
    assert_eq!(
        h.send_to(&app, maybe).await.body,
        Value::String("anonymous".into())
    );
    let refresh = h
        .request(&device, "POST", "/session/refresh", None)
        .body(Body::from(
            json!({"refresh_token": t.refresh_token}).to_string(),
        ))
        .unwrap();
    assert_eq!(h.send_to(&app, refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn routes_mount_under_any_prefix() {
    let h = Harness::new(&[]).await;
    for prefix in ["/auth/v2", "auth/v2/", "/"] {
        let app = Router::new()
            .merge(routes(prefix))
            .route("/api/login", axum::routing::post(login_alice))
            .with_state(h.kb.clone());
        let device = Device::new(1);
        let login = h
            .request(&device, "POST", "/api/login", None)
            .body(Body::empty())
            .unwrap();
        let t = tokens(&h.send_to(&app, login).await);
        let path = if prefix == "/" {
            "/sessions".to_owned()
        } else {
            "/auth/v2/sessions".to_owned()
        };
        let list = h
            .request(&device, "GET", &path, Some(&t.access_token))
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            h.send_to(&app, list).await.status,
            StatusCode::OK,
            "{prefix}"
        );
    }
}

// ---------------------------------------------------------------- no panics

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[A-Za-z0-9._~ -]{0,200}".prop_map(String::into_bytes),
        "DPoP [A-Za-z0-9._-]{0,400}".prop_map(String::into_bytes),
        "ey[A-Za-z0-9_-]{0,60}\\.ey[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,90}"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever arrives, every route answers with a client error or a success, in
    /// keybound's JSON shape, and never panics. `credentials` picks random headers, a
    /// valid proof, or a valid proof and access token, so that bodies and path
    /// parameters are reached too.
    #[test]
    fn no_input_makes_a_route_panic(
        route in 0usize..9,
        credentials in 0u8..3,
        id in "[^/?#]{1,40}",
        auth in proptest::option::of(header_bytes()),
        dpop in proptest::option::of(header_bytes()),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            "\\{\"(refresh_token|username|password)\": ?(\"[ -~]{0,120}\"|[0-9]{1,5}|null|\\[\\])\\}"
                .prop_map(String::into_bytes),
        ],
        json_body in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let h = Harness::new(&[]).await;
            let device = Device::new(1);
            let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
            let (method, path) = match route {
                0 => ("POST", "/api/login".to_owned()),
                1 => ("GET", "/api/me".to_owned()),
                2 => ("POST", "/session/refresh".to_owned()),
                3 => ("POST", "/session/logout".to_owned()),
                4 => ("GET", "/session/sessions".to_owned()),
                5 => ("DELETE", format!("/session/sessions/{encoded}")),
                6 => ("POST", "/session/sessions/revoke-others".to_owned()),
                7 => ("POST", "/session/extend".to_owned()),
                _ => ("GET", "/api/maybe".to_owned()),
            };
            let mut builder = Request::builder().method(method).uri(&path);
            match credentials {
                0 => {
                    if let Some(auth) = auth.and_then(|a| HeaderValue::from_bytes(&a).ok()) {
                        builder = builder.header("authorization", auth);
                    }
                    if let Some(dpop) = dpop.and_then(|d| HeaderValue::from_bytes(&d).ok()) {
                        builder = builder.header("dpop", dpop);
                    }
                }
                1 => builder = builder.header("dpop", h.proof(&device, method, &path, None)),
                _ => {
                    let t = h.login(&device, "alice").await;
                    builder = h.request(&device, method, &path, Some(&t.access_token));
                }
            }
            if json_body {
                builder = builder.header("content-type", "application/json");
            }
            let reply = h.send(builder.body(Body::from(body)).unwrap()).await;
            let status = reply.status.as_u16();
            prop_assert!(
                status < 500,
                "{} {} → {} {}", method, path, reply.status, reply.body
            );
            if status >= 400 {
                prop_assert!(reply.body["error"].is_string(), "{} {}", status, reply.body);
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------- stores that fail

/// A memory store that can be switched to failing: `1` unavailable, `2` a backend
/// error whose text must never reach a client.
struct FlakyStore {
    inner: keybound_server::store::MemoryStore,
    mode: std::sync::atomic::AtomicU8,
}

mod flaky {
    use std::sync::atomic::Ordering;

    use keybound_server::BoxFuture;
    use keybound_server::lifecycle::SessionId;
    use keybound_server::store::*;

    use super::FlakyStore;

    impl FlakyStore {
        fn fail<'a, T: Send + 'static>(
            &'a self,
            ok: BoxFuture<'a, Result<T, StoreError>>,
        ) -> BoxFuture<'a, Result<T, StoreError>> {
            match self.mode.load(Ordering::SeqCst) {
                0 => ok,
                1 => Box::pin(async {
                    Err(StoreError::Unavailable {
                        reason: "connection refused".into(),
                    })
                }),
                _ => Box::pin(async {
                    Err(StoreError::Backend {
                        reason: "/var/lib/keybound/secret.db: disk I/O error".into(),
                    })
                }),
            }
        }
    }

    impl SessionStore for FlakyStore {
        fn create(&self, r: CreateRequest) -> BoxFuture<'_, Result<CreateOutcome, StoreError>> {
            self.fail(self.inner.create(r))
        }
        fn user_fence<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
            self.fail(self.inner.user_fence(user))
        }
        fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
            self.fail(self.inner.load(id))
        }
        fn rotate(&self, r: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
            self.fail(self.inner.rotate(r))
        }
        fn replace_tokens(
            &self,
            r: ReplaceTokensRequest,
        ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
            self.fail(self.inner.replace_tokens(r))
        }
        fn touch(&self, r: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
            self.fail(self.inner.touch(r))
        }
        fn bind_dbsc(&self, r: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
            self.fail(self.inner.bind_dbsc(r))
        }
        fn end(&self, r: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>> {
            self.fail(self.inner.end(r))
        }
        fn end_user_sessions(
            &self,
            r: EndUserRequest,
        ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>> {
            self.fail(self.inner.end_user_sessions(r))
        }
        fn list_user<'a>(
            &'a self,
            user_id: &'a str,
        ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
            self.fail(self.inner.list_user(user_id))
        }
        fn sweep(&self, r: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>> {
            self.fail(self.inner.sweep(r))
        }
        fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
            self.fail(self.inner.count_active())
        }
    }
}

#[tokio::test]
async fn failing_stores_answer_503_or_a_generic_500() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use keybound_server::lifecycle::SessionService;
    use keybound_server::{KeyRing, MemoryReplayStore, ServerKey, Verifier};

    // Wired by hand, as an application that does not use `Keybound::setup` would.
    let clock = ManualClock::new(T0_MS);
    let store = Arc::new(FlakyStore {
        inner: keybound_server::store::MemoryStore::new(),
        mode: std::sync::atomic::AtomicU8::new(0),
    });
    let keys = KeyRing::new(ServerKey::from_seed(&[3; 32])).into_shared();
    let service = SessionService::builder(store.clone(), keys.clone())
        .issuer(ORIGIN)
        .clock(clock.clone())
        .without_session_cache()
        .build()
        .unwrap();
    let verifier = Verifier::builder()
        .public_origin(ORIGIN)
        .key_ring(keys)
        .clock(Arc::new(clock.clone()))
        .replay_store(Arc::new(MemoryReplayStore::with_capacity(
            Arc::new(clock.clone()),
            4,
        )))
        .session_check(Arc::new(service.clone()))
        .build()
        .unwrap();
    let kb = Keybound::new(verifier, service);
    let (running, _) = keybound(settings(&[])).await;
    let h = Harness {
        app: app(kb.clone()),
        kb,
        clock,
        _running: running,
        nonce: Mutex::new(None),
    };
    let device = Device::new(1);
    let t = h.login(&device, "alice").await; // replay entry 1

    store.mode.store(1, Ordering::SeqCst);
    // The session check cannot answer: fail closed, no challenge, retry later.
    let reply = h.me(&device, &t.access_token).await; // 2
    reply.assert_error(503, "temporarily_unavailable", "session_store_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // A refresh proof is recorded only once its token's binding is checked: these two
    // record nothing.
    let reply = h.refresh(&device, &t.refresh_token).await;
    reply.assert_error(503, "temporarily_unavailable", "store_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.body["error_description"],
        "the service is temporarily unavailable; retry later"
    );

    store.mode.store(2, Ordering::SeqCst);
    let reply = h.refresh(&device, &t.refresh_token).await;
    reply.assert_error(500, "server_error", "store_error");
    assert_eq!(reply.body["error_description"], "internal server error");
    assert!(!reply.body.to_string().contains("/var/lib"));

    // The replay store is full (4 live entries, none expired): fail closed too.
    store.mode.store(0, Ordering::SeqCst);
    assert_eq!(h.me(&device, &t.access_token).await.status, StatusCode::OK); // 3
    assert_eq!(h.me(&device, &t.access_token).await.status, StatusCode::OK); // 4
    let reply = h.me(&device, &t.access_token).await;
    reply.assert_error(503, "temporarily_unavailable", "replay_store_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // Once the entries expire, requests pass again.
    h.advance(62);
    assert_eq!(h.me(&device, &t.access_token).await.status, StatusCode::OK);
}
