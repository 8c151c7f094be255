//! A real server on a loopback port, driven over HTTP by a real client (reqwest,
//! proofs signed with `keybound-proto`) through a whole session life: login → call →
//! token expiry → refresh → reuse of an old refresh token after the grace period revokes
//! the session → calls fail → log in again → logout. Time is a `ManualClock` shared by
//! the server and the client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::Device;
use keybound_server::axum::Running;
use keybound_server::proto::TokenResponse;
use keybound_server::{Clock, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A browser-like client: signs every request with its device key, keeps the latest
/// `DPoP-Nonce`, and retries once when challenged for a nonce.
struct Client {
    http: reqwest::Client,
    origin: String,
    device: Device,
    clock: ManualClock,
    nonce: std::sync::Mutex<Option<String>>,
    challenges: std::sync::atomic::AtomicUsize,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn assert_error(&self, status: u16, error: &str, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
        assert_eq!(self.body["error_code"], code, "{}", self.body);
        if status == 401 {
            let challenge = self.headers["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with(&format!("DPoP error=\"{error}\"")),
                "{challenge}"
            );
        }
    }

    fn tokens(&self) -> TokenResponse {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.headers["cache-control"], "no-store");
        serde_json::from_value(self.body.clone()).unwrap()
    }
}

impl Client {
    fn new(origin: &str, seed: u8, clock: &ManualClock) -> Self {
        Self {
            http: reqwest::Client::builder()
                .user_agent("keybound-http-test")
                .build()
                .unwrap(),
            origin: origin.to_owned(),
            device: Device::new(seed),
            clock: clock.clone(),
            nonce: std::sync::Mutex::new(None),
            challenges: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        at: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut retried = false;
        loop {
            let url = format!("{}{path}", self.origin);
            let nonce = self.nonce.lock().unwrap().clone();
            let proof = self.device.proof(
                method.as_str(),
                &url,
                self.clock.now_secs(),
                at,
                nonce.as_deref(),
            );
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("DPoP", proof);
            if let Some(at) = at {
                request = request.header("Authorization", format!("DPoP {at}"));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            if let Some(nonce) = headers.get("dpop-nonce") {
                *self.nonce.lock().unwrap() = Some(nonce.to_str().unwrap().to_owned());
            }
            let text = response.text().await.unwrap();
            let body = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            };
            let challenged =
                status == StatusCode::UNAUTHORIZED && body["error"] == "use_dpop_nonce";
            if challenged && !retried {
                self.challenges
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                retried = true;
                continue;
            }
            return Reply {
                status,
                headers,
                body,
            };
        }
    }

    async fn login(&self, user: &str, password: &str) -> Reply {
        let body = json!({"username": user, "password": password});
        self.send(Method::POST, "/api/login", None, Some(&body))
            .await
    }

    async fn me(&self, at: &str) -> Reply {
        self.send(Method::GET, "/api/me", Some(at), None).await
    }

    async fn refresh(&self, refresh_token: &str) -> Reply {
        let body = json!({"refresh_token": refresh_token});
        self.send(Method::POST, "/session/refresh", None, Some(&body))
            .await
    }
}

/// Serves the test application on `127.0.0.1:<free port>` with short lifetimes.
async fn serve(nonce: bool) -> (String, Running, ManualClock) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let settings = common::http::settings(&[
        ("KEYBOUND_PUBLIC_ORIGIN", &origin),
        ("KEYBOUND_ACCESS_TTL_SECS", "60"),
        ("KEYBOUND_REFRESH_GRACE_SECS", "5"),
        ("KEYBOUND_IDLE_TIMEOUT_SECS", "600"),
        ("KEYBOUND_ABSOLUTE_LIFETIME_SECS", "3600"),
        ("KEYBOUND_NONCE", if nonce { "on" } else { "off" }),
    ]);
    let (running, clock) = common::http::keybound(settings).await;
    let app = common::http::app(running.keybound.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (origin, running, clock)
}

async fn whole_life(nonce: bool) {
    let (origin, _running, clock) = serve(nonce).await;
    let alice = Client::new(&origin, 1, &clock);
    let advance = |secs| clock.advance(Duration::from_secs(secs));

    // Login, with wrong credentials first.
    let reply = alice.login("alice", "not-the-password").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"], "invalid_credentials");
    let t0 = alice.login("alice", "wonderland").await.tokens();
    assert_eq!(t0.expires_in, 60);
    assert_eq!(t0.server_time, clock.now_secs());

    // Call.
    let reply = alice.me(&t0.access_token).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"user": "alice", "session_id": t0.session_id})
    );

    // The access token runs out; refresh.
    advance(61);
    alice
        .me(&t0.access_token)
        .await
        .assert_error(401, "invalid_token", "token_expired");
    let t1 = alice.refresh(&t0.refresh_token).await.tokens();
    assert_eq!(t1.session_id, t0.session_id);
    assert_eq!(alice.me(&t1.access_token).await.status, StatusCode::OK);

    // The session list shows the device.
    let reply = alice
        .send(
            Method::GET,
            "/session/sessions",
            Some(&t1.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["sessions"][0]["device_label"],
        "keybound-http-test"
    );
    assert_eq!(reply.body["sessions"][0]["current"], true);

    // An old refresh token after the grace period: reuse, the session is revoked.
    advance(6);
    alice.refresh(&t0.refresh_token).await.assert_error(
        400,
        "invalid_grant",
        "refresh_token_reused",
    );

    // Every call of the session now fails, though the access token has not expired.
    alice
        .me(&t1.access_token)
        .await
        .assert_error(401, "invalid_token", "session_revoked");
    alice
        .refresh(&t1.refresh_token)
        .await
        .assert_error(400, "invalid_grant", "session_revoked");
    alice
        .send(
            Method::GET,
            "/session/sessions",
            Some(&t1.access_token),
            None,
        )
        .await
        .assert_error(401, "invalid_token", "session_revoked");

    // Log in again: a new session, the old one listed as revoked.
    let t2 = alice.login("alice", "wonderland").await.tokens();
    assert_ne!(t2.session_id, t0.session_id);
    assert_eq!(alice.me(&t2.access_token).await.status, StatusCode::OK);
    let reply = alice
        .send(
            Method::GET,
            "/session/sessions",
            Some(&t2.access_token),
            None,
        )
        .await;
    let sessions = reply.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let old = sessions
        .iter()
        .find(|s| s["id"] == t0.session_id.as_str())
        .unwrap();
    assert_eq!(old["state"], "revoked");
    assert_eq!(old["reason"], "refresh_reuse");

    // Logout ends it at once.
    let reply = alice
        .send(
            Method::POST,
            "/session/logout",
            Some(&t2.access_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    alice
        .me(&t2.access_token)
        .await
        .assert_error(401, "invalid_token", "session_closed");

    let challenges = alice.challenges.load(std::sync::atomic::Ordering::SeqCst);
    if nonce {
        // One challenge at the first request; the client kept up with the nonce after it.
        assert_eq!(challenges, 1);
    } else {
        assert_eq!(challenges, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_session_life_over_http() {
    whole_life(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_session_life_over_http_with_nonces() {
    whole_life(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_refreshing_at_once_share_one_rotation() {
    let (origin, _running, clock) = serve(false).await;
    let tab = Client::new(&origin, 3, &clock);
    let t0 = tab.login("bob", "builder").await.tokens();
    let (a, b) = tokio::join!(
        tab.refresh(&t0.refresh_token),
        tab.refresh(&t0.refresh_token)
    );
    let (a, b) = (a.tokens(), b.tokens());
    // One rotated, the other got the same generation again (grace): one live token.
    assert_eq!(a.refresh_token, b.refresh_token);
    let t2 = tab.refresh(&a.refresh_token).await.tokens();
    assert_eq!(tab.me(&t2.access_token).await.status, StatusCode::OK);
}
