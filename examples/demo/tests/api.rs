//! The demo's API through its router: login, protected routes, the password change, the
//! audit stream, operator routes and the web files, each refusal with its exact code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use futures_util::StreamExt;
use http::{Request, StatusCode, header};
use keybound_demo::Demo;
use keybound_server::Clock;
use keybound_server::axum::Keybound;
use keybound_server::lifecycle::{Actor, BroadcastSink, Reason};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofBuilder, PublicJwk, TokenResponse};
use keybound_server::settings::Settings;
use serde_json::{Value, json};
use tower::ServiceExt;
use zeroize::Zeroizing;

const ORIGIN: &str = "http://demo.test";

struct Demoed {
    kb: Keybound,
    app: Router,
    _web: tempfile::TempDir,
}

async fn demo_with(admin_token: Option<&str>, peer: &str, web_built: bool) -> Demoed {
    let settings = Settings::from_lookup(|name| match name {
        "KEYBOUND_PUBLIC_ORIGIN" => Some(ORIGIN.to_owned()),
        _ => None,
    })
    .unwrap();
    let audit = BroadcastSink::new(256);
    let sink = audit.clone();
    let running = Keybound::setup(settings)
        .configure_service(move |service| service.audit_sink(sink))
        .build()
        .await
        .unwrap();
    let web = tempfile::tempdir().unwrap();
    if web_built {
        std::fs::write(
            web.path().join("index.html"),
            "<!doctype html><title>app</title>",
        )
        .unwrap();
    }
    let kb = running.keybound.clone();
    let app = Demo::new(running.keybound, audit)
        .web_dir(web.path())
        .admin_token(admin_token.map(|t| Zeroizing::new(t.to_owned())))
        .router()
        .layer(MockConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    Demoed { kb, app, _web: web }
}

async fn demo() -> Demoed {
    demo_with(None, "127.0.0.1:40000", true).await
}

/// A browser's device key.
struct Device {
    key: SigningKey,
}

static JTI: AtomicU64 = AtomicU64::new(1);

impl Device {
    fn new(seed: u8) -> Self {
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    fn proof(&self, method: &str, path: &str, access_token: Option<&str>) -> String {
        let jwk = PublicJwk::from_verifying_key(&self.key.verifying_key());
        let mut jti = [0u8; 16];
        jti[..8].copy_from_slice(&JTI.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let now = keybound_server::SystemClock.now_secs();
        let mut builder =
            ProofBuilder::new(jwk, method, &format!("{ORIGIN}{path}"), now, jti).unwrap();
        if let Some(token) = access_token {
            builder = builder.access_token(token);
        }
        builder.sign(&self.key).unwrap()
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Request<Body> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("dpop", self.proof(method, path, token));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("DPoP {token}"));
        }
        match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        }
    }
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

async fn login(app: &Router, device: &Device, user: &str, password: &str) -> TokenResponse {
    let body = json!({"username": user, "password": password});
    let (status, body) = send(app, device.request("POST", "/api/login", None, Some(body))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

fn code(body: &Value) -> &str {
    body["error_code"].as_str().unwrap_or_default()
}

/// Sends `request` and asserts its refusal: the status and the `error_code`.
async fn assert_refused(
    app: &Router,
    request: Request<Body>,
    status: StatusCode,
    error_code: &str,
) {
    let (got, body) = send(app, request).await;
    assert_eq!((got, code(&body)), (status, error_code), "{body}");
}

#[tokio::test]
async fn login_needs_a_proof_then_the_right_password() {
    let d = demo().await;
    let device = Device::new(1);
    let creds = json!({"username": "alice", "password": "wonderland"}).to_string();
    let no_proof = Request::post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(creds))
        .unwrap();
    let (status, body) = send(&d.app, no_proof).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"))
    );

    for (user, password) in [("alice", "builder"), ("carol", "wonderland"), ("alice", "")] {
        let body = json!({"username": user, "password": password});
        let (status, body) = send(
            &d.app,
            device.request("POST", "/api/login", None, Some(body)),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
        assert_eq!(body["error"], "invalid_credentials");
    }
    assert_refused(
        &d.app,
        device.request("POST", "/api/login", None, Some(json!({"user": "alice"}))),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    let tokens = login(&d.app, &device, "alice", "wonderland").await;
    assert_eq!(tokens.token_type, "DPoP");
    let sessions = d.kb.service().list_sessions("alice", None).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].device_label.as_deref(), Some("Unknown device"));
}

#[tokio::test]
async fn protected_routes_need_the_session_key() {
    let d = demo().await;
    let device = Device::new(2);
    let tokens = login(&d.app, &device, "bob", "builder").await;
    let at = Some(tokens.access_token.as_str());

    let (status, body) = send(&d.app, device.request("GET", "/api/me", at, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["user"].as_str(), body["name"].as_str()),
        (Some("bob"), Some("Bob the Builder"))
    );
    assert_eq!(body["session_id"], tokens.session_id.as_str());
    let (status, body) = send(&d.app, device.request("GET", "/api/orders", at, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["orders"].as_array().unwrap().len(), 3);

    // Another key with the same token: the token is bound to bob's device key.
    let thief = Device::new(3);
    assert_refused(
        &d.app,
        thief.request("GET", "/api/orders", at, None),
        StatusCode::UNAUTHORIZED,
        "jkt_mismatch",
    )
    .await;
    // No credentials at all.
    let (status, _) = send(&d.app, Request::get("/api/me").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Notes: saved with a signed request, refused when empty.
    let note = json!({"text": "  buy nails  "});
    let (status, body) = send(&d.app, device.request("POST", "/api/notes", at, Some(note))).await;
    assert_eq!(
        (status, body["text"].as_str()),
        (StatusCode::CREATED, Some("buy nails"))
    );
    assert_refused(
        &d.app,
        device.request("POST", "/api/notes", at, Some(json!({"text": " "}))),
        StatusCode::BAD_REQUEST,
        "invalid_note",
    )
    .await;
    let (_, body) = send(&d.app, device.request("GET", "/api/notes", at, None)).await;
    assert_eq!(body["notes"][0]["text"], "buy nails");

    assert_refused(
        &d.app,
        device.request("GET", "/api/nothing-here", at, None),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_password_change_rotates_this_session_and_revokes_the_others() {
    let d = demo().await;
    let laptop = Device::new(4);
    let phone = Device::new(5);
    let mine = login(&d.app, &laptop, "alice", "wonderland").await;
    let other = login(&d.app, &phone, "alice", "wonderland").await;
    let at = Some(mine.access_token.as_str());
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    assert_refused(
        &d.app,
        laptop.request(
            "POST",
            "/api/change-password",
            at,
            Some(change("wrong", "looking-glass")),
        ),
        StatusCode::FORBIDDEN,
        "wrong_password",
    )
    .await;
    for weak in ["short", "wonderland"] {
        let (status, body) = send(
            &d.app,
            laptop.request(
                "POST",
                "/api/change-password",
                at,
                Some(change("wonderland", weak)),
            ),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "weak_password")
        );
    }
    let (status, body) = send(
        &d.app,
        phone.request(
            "POST",
            "/api/change-password",
            at,
            Some(change("wonderland", "x-y-z-w")),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another key cannot use this session: {body}"
    );

    let (status, body) = send(
        &d.app,
        laptop.request(
            "POST",
            "/api/change-password",
            at,
            Some(change("wonderland", "looking-glass")),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated: TokenResponse = serde_json::from_value(body).unwrap();
    assert_eq!(rotated.session_id, mine.session_id);
    assert_ne!(rotated.refresh_token, mine.refresh_token);

    // The other session is revoked at once.
    assert_refused(
        &d.app,
        phone.request("GET", "/api/me", Some(&other.access_token), None),
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    // This one goes on with its new tokens, and refreshes with the new refresh token.
    let (status, _) = send(
        &d.app,
        laptop.request("GET", "/api/me", Some(&rotated.access_token), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let refresh = json!({"refresh_token": rotated.refresh_token});
    let (status, body) = send(
        &d.app,
        laptop.request("POST", "/session/refresh", None, Some(refresh)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The new password is the one that works.
    let old = json!({"username": "alice", "password": "wonderland"});
    assert_refused(
        &d.app,
        phone.request("POST", "/api/login", None, Some(old)),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    login(&d.app, &phone, "alice", "looking-glass").await;
}

#[tokio::test]
async fn the_event_stream_carries_the_users_events_and_ends_with_the_session() {
    let d = demo().await;
    let device = Device::new(6);
    let tokens = login(&d.app, &device, "alice", "wonderland").await;
    let bob = login(&d.app, &Device::new(7), "bob", "builder").await;

    let (status, _) = send(
        &d.app,
        Request::get("/api/events").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let response = d
        .app
        .clone()
        .oneshot(device.request("GET", "/api/events", Some(&tokens.access_token), None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let mut read_until = async |needle: &str, text: &mut String| {
        while !text.contains(needle) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"));
            match chunk {
                Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => return false,
            }
        }
        true
    };
    assert!(read_until("event: hello", &mut text).await);

    // Bob's events are not alice's business; alice's own are.
    let service = d.kb.service();
    service
        .revoke(
            &bob.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("test".into()),
        )
        .await
        .unwrap();
    service
        .revoke(
            &tokens.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("test".into()),
        )
        .await
        .unwrap();
    assert!(read_until("session.revoked", &mut text).await);
    // The stream ends after the event that ended its session.
    assert!(!read_until("never sent", &mut text).await);
    assert!(!text.contains(&bob.session_id), "{text}");
    assert!(text.contains(&tokens.session_id));
    assert!(!text.contains(&tokens.access_token) && !text.contains(&tokens.refresh_token));
}

#[tokio::test]
async fn operator_routes_without_a_token_answer_local_same_site_callers() {
    let d = demo().await;
    login(&d.app, &Device::new(8), "alice", "wonderland").await;
    login(&d.app, &Device::new(9), "alice", "wonderland").await;
    let revoke = |origin: Option<&str>| {
        let mut request = Request::post("/api/admin/users/alice/revoke");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::empty()).unwrap()
    };
    assert_refused(
        &d.app,
        revoke(Some("https://evil.example")),
        StatusCode::FORBIDDEN,
        "admin_cross_site",
    )
    .await;
    let (status, body) = send(&d.app, revoke(Some(ORIGIN))).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"user": "alice", "revoked": 2}))
    );
    let (status, body) = send(&d.app, revoke(None)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"user": "alice", "revoked": 0}))
    );
    assert_refused(
        &d.app,
        Request::post("/api/admin/users/mallory/revoke")
            .body(Body::empty())
            .unwrap(),
        StatusCode::NOT_FOUND,
        "unknown_user",
    )
    .await;
    // DNS rebinding: a page on the attacker's name, now resolving to 127.0.0.1, asks
    // for /metrics as a same-origin request.
    assert_refused(
        &d.app,
        Request::get("/metrics")
            .header(header::HOST, "rebind.evil.example:8080")
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap(),
        StatusCode::FORBIDDEN,
        "admin_foreign_host",
    )
    .await;
    // No recorder in this process: the route says so.
    assert_refused(
        &d.app,
        Request::get("/metrics").body(Body::empty()).unwrap(),
        StatusCode::NOT_FOUND,
        "metrics_disabled",
    )
    .await;

    let remote = demo_with(None, "203.0.113.7:5000", true).await;
    assert_refused(
        &remote.app,
        revoke(None),
        StatusCode::FORBIDDEN,
        "admin_local_only",
    )
    .await;
}

#[tokio::test]
async fn operator_routes_with_a_token_need_it_from_everyone() {
    let d = demo_with(Some("op-secret"), "203.0.113.7:5000", true).await;
    let revoke = |auth: Option<&str>| {
        let mut request = Request::post("/api/admin/users/bob/revoke");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        request.body(Body::empty()).unwrap()
    };
    for auth in [
        None,
        Some("Bearer op-secre"),
        Some("Bearer op-secretx"),
        Some("op-secret"),
    ] {
        let (status, body) = send(&d.app, revoke(auth)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "admin_unauthorized"),
            "{auth:?}"
        );
    }
    let (status, _) = send(&d.app, revoke(Some("Bearer op-secret"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_web_app_is_served_with_security_headers() {
    let d = demo().await;
    let response = d
        .app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'")
            && csp.contains("frame-ancestors 'none'")
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");

    let (status, body) = send(
        &d.app,
        Request::get("/api/config").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["public_origin"], ORIGIN);
    assert_eq!(body["demo_users"], json!(["alice", "bob"]));

    let unbuilt = demo_with(None, "127.0.0.1:1", false).await;
    let response = unbuilt
        .app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = to_bytes(response.into_body(), 1 << 16).await.unwrap();
    assert!(String::from_utf8_lossy(&page).contains("scripts/demo.sh"));
}

#[tokio::test]
async fn password_guessing_is_limited_per_username() {
    let d = demo().await;
    let device = Device::new(9);
    let guess = |password: &str| {
        let body = json!({"username": "alice", "password": password});
        device.request("POST", "/api/login", None, Some(body))
    };
    // The default budget: ten attempts per username and minute.
    for _ in 0..10 {
        let (status, body) = send(&d.app, guess("guess")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "invalid_credentials");
    }
    let response = d.app.clone().oneshot(guess("wonderland")).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&retry), "Retry-After: {retry}");
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code(&body), "rate_limited");
    // Other users are not locked out by it.
    login(&d.app, &device, "bob", "builder").await;
}
