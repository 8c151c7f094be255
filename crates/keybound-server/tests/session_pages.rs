//! `GET /session/sessions?limit=N&cursor=C`: pages in a stable order (newest first,
//! ties by id) that list every session exactly once, whatever is refreshed or opened
//! between pages, and exact `400` codes for a bad `limit` or `cursor`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use common::http::{Device, app, keybound, settings};
use http::{Request, StatusCode};
use keybound_server::axum::Running;
use keybound_server::proto::TokenResponse;
use keybound_server::{Clock, ManualClock};
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "https://api.example";

struct Harness {
    app: Router,
    clock: ManualClock,
    _running: Running,
}

impl Harness {
    async fn new() -> Self {
        let (running, clock) = keybound(settings(&[])).await;
        Self {
            app: app(running.keybound.clone()),
            clock,
            _running: running,
        }
    }

    async fn call(
        &self,
        device: &Device,
        method: &str,
        path: &str,
        at: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{ORIGIN}{}", path.split('?').next().unwrap());
        let mut builder = Request::builder().method(method).uri(path).header(
            "dpop",
            device.proof(method, &url, self.clock.now_secs(), at, None),
        );
        if let Some(at) = at {
            builder = builder.header("authorization", format!("DPoP {at}"));
        }
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        let response = self.app.clone().oneshot(request.unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    async fn login(&self, device: &Device) -> TokenResponse {
        let body = json!({"username": "alice", "password": "wonderland"});
        let (status, body) = self
            .call(device, "POST", "/api/login", None, Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// One page: its session ids and its `next_cursor`.
    async fn page(&self, device: &Device, at: &str, query: &str) -> (Vec<String>, Option<String>) {
        let (status, body) = self
            .call(
                device,
                "GET",
                &format!("/session/sessions{query}"),
                Some(at),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids = body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        let next = match &body["next_cursor"] {
            Value::Null => None,
            Value::String(c) => Some(c.clone()),
            other => panic!("next_cursor is {other}"),
        };
        (ids, next)
    }

    /// Follows the cursors from the first page with `limit`.
    async fn all_pages(&self, device: &Device, at: &str, limit: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut cursor = None::<String>;
        loop {
            let query = match &cursor {
                Some(c) => format!("?limit={limit}&cursor={c}"),
                None => format!("?limit={limit}"),
            };
            let (ids, next) = self.page(device, at, &query).await;
            assert!(ids.len() <= limit);
            pages.push(ids);
            match next {
                Some(next) => cursor = Some(next),
                None => return pages,
            }
        }
    }

    async fn error(&self, device: &Device, at: &str, query: &str) -> (StatusCode, Value) {
        self.call(
            device,
            "GET",
            &format!("/session/sessions{query}"),
            Some(at),
            None,
        )
        .await
    }
}

#[tokio::test]
async fn pages_list_every_session_once_newest_first() {
    let h = Harness::new().await;
    let device = Device::new(1);
    // Seven sessions: three opened in the same second (ties go by id), then one a
    // second for four seconds.
    let mut opened = Vec::new();
    for i in 0..7 {
        if i >= 3 {
            h.clock.advance(Duration::from_secs(1));
        }
        opened.push(h.login(&device).await);
    }
    let at = opened[0].access_token.clone();

    let pages = h.all_pages(&device, &at, 3).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "{pages:?}"
    );
    let listed: Vec<String> = pages.concat();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), 7, "every session exactly once: {listed:?}");
    // Newest first: the four later ones by time, then the first three by id.
    let newest: Vec<String> = opened[3..]
        .iter()
        .rev()
        .map(|t| t.session_id.clone())
        .collect();
    assert_eq!(listed[..4], newest[..]);
    let mut tied: Vec<String> = opened[..3].iter().map(|t| t.session_id.clone()).collect();
    tied.sort();
    assert_eq!(listed[4..], tied[..]);

    // Without a limit: one page of them all (the default is 50).
    let (ids, next) = h.page(&device, &at, "").await;
    assert_eq!(ids, listed);
    assert_eq!(next, None);
    // An exact fit ends with a null cursor, not an empty page.
    let pages = h.all_pages(&device, &at, 7).await;
    assert_eq!(pages, std::slice::from_ref(&listed));
    let pages = h.all_pages(&device, &at, 200).await;
    assert_eq!(pages, [listed]);
}

#[tokio::test]
async fn refreshes_and_logins_between_pages_skip_or_repeat_nothing() {
    let h = Harness::new().await;
    let device = Device::new(1);
    let mut opened = Vec::new();
    for _ in 0..5 {
        opened.push(h.login(&device).await);
        h.clock.advance(Duration::from_secs(1));
    }
    let at = opened[4].access_token.clone();
    let (first, cursor) = h.page(&device, &at, "?limit=2").await;
    let cursor = cursor.unwrap();

    // The oldest session is used (most recently seen now) and a new one opens.
    let body = json!({"refresh_token": opened[0].refresh_token});
    let (status, _) = h
        .call(&device, "POST", "/session/refresh", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    let newer = h.login(&device).await;

    let (second, cursor) = h
        .page(&device, &at, &format!("?limit=2&cursor={cursor}"))
        .await;
    let (third, cursor) = h
        .page(
            &device,
            &at,
            &format!("?limit=2&cursor={}", cursor.unwrap()),
        )
        .await;
    assert_eq!(cursor, None);
    let listed = [first, second, third].concat();
    let expected: Vec<String> = opened.iter().rev().map(|t| t.session_id.clone()).collect();
    assert_eq!(listed, expected, "each of the five once, in creation order");
    // The one opened meanwhile is on a new first page.
    let (first_again, _) = h.page(&device, &at, "?limit=2").await;
    assert_eq!(first_again[0], newer.session_id);
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_an_exact_400() {
    let h = Harness::new().await;
    let device = Device::new(1);
    let t = h.login(&device).await;
    h.login(&device).await;
    let at = t.access_token.as_str();
    let (_, cursor) = h.page(&device, at, "?limit=1").await;
    let cursor = cursor.unwrap();

    for query in [
        "?limit=0",
        "?limit=201",
        "?limit=-1",
        "?limit=abc",
        "?limit=",
        "?limit=1.5",
        "?limit=0001",
        "?limit=+5",
        "?limit=05",
        "?limit=99999999999999999999999",
        "?limit=1&limit=2",
    ] {
        let (status, body) = h.error(&device, at, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"], "invalid_request", "{query}");
        assert_eq!(body["error_code"], "invalid_page_limit", "{query}");
    }
    let truncated = &cursor[..cursor.len() - 2];
    let mut tampered = cursor.clone();
    tampered.push('A');
    for query in [
        "?cursor=".to_owned(),
        "?cursor=not-a-cursor".to_owned(),
        "?cursor=%00%01".to_owned(),
        format!("?cursor={truncated}"),
        format!("?cursor={tampered}"),
        format!("?cursor={cursor}&cursor={cursor}"),
    ] {
        let (status, body) = h.error(&device, at, &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"], "invalid_request", "{query}");
        assert_eq!(body["error_code"], "invalid_cursor", "{query}");
    }
    // Unknown parameters are ignored; a good cursor with a good limit still works.
    let (ids, next) = h
        .page(&device, at, &format!("?limit=1&cursor={cursor}&x=1"))
        .await;
    assert_eq!(ids.len(), 1);
    assert_eq!(next, None);
}
