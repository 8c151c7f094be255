//! The demo's own API: login, protected data, the password change, operator routes.

use axum::Json;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keybound_server::axum::{ApiError, ProofOfPossession, Session};
use keybound_server::lifecycle::{Actor, OpenRequest, Reason};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::users::{DEMO_USERS, PasswordChangeError, Users};
use crate::{AppState, device_label};

/// A JSON error in keybound's shape: `{"error","error_description","error_code"}`.
pub(crate) fn error(status: StatusCode, code: &'static str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": code, "error_description": description, "error_code": code})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /api/config`: what the app needs to know before signing in.
pub(crate) async fn config(State(app): State<AppState>) -> Json<Value> {
    let policy = app.kb.service().policy();
    Json(json!({
        "access_token_lifetime_secs": policy.access_token_lifetime().as_secs(),
        "idle_timeout_secs": policy.idle_timeout().as_secs(),
        "absolute_lifetime_secs": policy.absolute_lifetime().as_secs(),
        "demo_users": DEMO_USERS.iter().map(|(user, _, _)| *user).collect::<Vec<_>>(),
        "store": app.store_label.as_str(),
        "public_origin": app.kb.verifier().public_origin(),
        "dbsc": app.kb.dbsc_enabled(),
    }))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: Zeroizing<String>,
}

/// `POST /api/login`: checks the attempt budgets of the client address and the username
/// (`429 rate_limited`), then the demo credentials, then opens a session bound to the
/// key of the request's DPoP proof. With DBSC on, a request without a `DPoP` header is
/// a browser signing in with its own key: the answer starts a DBSC session (the browser
/// registers its key and gets the bound cookie).
pub(crate) async fn login(State(app): State<AppState>, mut parts: Parts, body: Bytes) -> Response {
    let dbsc = app.kb.dbsc_enabled() && !parts.headers.contains_key("dpop");
    let proof = if dbsc {
        None
    } else {
        match ProofOfPossession::from_request_parts(&mut parts, &app.kb).await {
            Ok(proof) => Some(proof),
            Err(err) => return err.into_response(),
        }
    };
    let Ok(creds) = serde_json::from_slice::<Credentials>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be JSON {\"username\": \"…\", \"password\": \"…\"}",
        );
    };
    let ip = match &proof {
        Some(proof) => proof.signals.ip,
        None => parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
    };
    if let Err(limited) = app.login_limiter.check(ip, &creds.username) {
        return limited.into_response();
    }
    // The user's fence before the password check: if the user changes the password
    // (signing out everywhere) while this login checks the old one, keybound refuses
    // to open the session (`login_superseded`). A malformed username has no fence and
    // fails the password check.
    let fence = match app.kb.service().login_fence(&creds.username).await {
        Ok(fence) => Some(fence),
        Err(err) if err.code() == "invalid_input" => None,
        Err(err) => return ApiError::from(err).into_response(),
    };
    if !app.users.check(&creds.username, &creds.password) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "unknown user or wrong password",
        );
    }
    let user_agent = match &proof {
        Some(proof) => proof.user_agent(),
        None => parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    let mut request = OpenRequest::new().device_label(device_label(user_agent));
    if let Some(fence) = fence {
        request = request.fence(fence);
    }
    let Some(proof) = proof else {
        return match app
            .kb
            .start_dbsc_session(&creds.username, request, &parts.headers)
            .await
        {
            Ok(started) => started.into_response(),
            Err(err) => err.into_response(),
        };
    };
    match app.kb.open_session(&proof, &creds.username, request).await {
        Ok(reply) => reply.into_response(),
        Err(err) => err.into_response(),
    }
}

/// `GET /api/me`: who is calling, and the server's view of this session.
pub(crate) async fn me(
    State(app): State<AppState>,
    session: Session,
) -> Result<Response, ApiError> {
    let info = app.kb.service().session(&session.session_id).await?;
    Ok(no_store(
        Json(json!({
            "user": session.user_id,
            "name": Users::display_name(&session.user_id),
            "session_id": session.session_id,
            "jkt": session.jkt,
            "binding": session.binding.as_str(),
            "token_expires_at": session.token_expires_at,
            "device_label": info.device_label,
            "created_at": info.created_at,
            "idle_expires_at": info.idle_expires_at,
            "expires_at": info.expires_at,
            "server_time": app.kb.verifier().clock().now_secs(),
        }))
        .into_response(),
    ))
}

/// `GET /api/orders`: some data only the signed-in user may see.
pub(crate) async fn orders(session: Session) -> Response {
    let items: &[(&str, &str, u32, &str)] = match session.user_id.as_str() {
        "alice" => &[
            ("A-1041", "Porcelain tea set for six", 4_900, "delivered"),
            ("A-1042", "Pocket watch (runs late)", 12_500, "shipped"),
            ("A-1043", "\"Drink me\" bottle, 3 pack", 1_200, "processing"),
        ],
        "bob" => &[
            ("B-2201", "Claw hammer, 16 oz", 2_350, "delivered"),
            ("B-2202", "Spirit level, 600 mm", 1_875, "shipped"),
            ("B-2203", "Safety helmet, yellow", 2_990, "processing"),
        ],
        _ => &[],
    };
    let orders: Vec<Value> = items
        .iter()
        .map(|(id, item, cents, status)| {
            json!({"id": id, "item": item, "total_cents": cents, "status": status})
        })
        .collect();
    no_store(Json(json!({"user": session.user_id, "orders": orders})).into_response())
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: Zeroizing<String>,
    new_password: Zeroizing<String>,
}

/// `POST /api/change-password`: a sensitive action. Checks the current password, sets
/// the new one, replaces this session's tokens (`rotate_on_sensitive_action`), revokes
/// every other session of the user, and answers with the new token response, which the
/// SDK takes up (`kb.rotate`); a DBSC session gets its new bound cookie instead.
pub(crate) async fn change_password(
    State(app): State<AppState>,
    session: Session,
    body: Bytes,
) -> Response {
    let Ok(change) = serde_json::from_slice::<PasswordChange>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be JSON {\"current_password\": \"…\", \"new_password\": \"…\"}",
        );
    };
    let user = &session.user_id;
    // A wrong current password is a password guess like a failed login.
    if let Err(limited) = app.login_limiter.check(None, user) {
        return limited.into_response();
    }
    match app
        .users
        .check_change(user, &change.current_password, &change.new_password)
    {
        Ok(()) => {}
        Err(PasswordChangeError::WrongPassword) => {
            return error(
                StatusCode::FORBIDDEN,
                "wrong_password",
                "the current password is wrong",
            );
        }
        Err(PasswordChangeError::WeakPassword) => {
            return error(
                StatusCode::BAD_REQUEST,
                "weak_password",
                "the new password must have 6 to 128 characters and differ from the current one",
            );
        }
    }
    // The new password first, then the revocation: a login that checked the old
    // password before this point either stored its session before the rotation below
    // (which revokes it) or is refused when it tries afterwards, since it read the
    // user's fence before its password check (`login`); a login after it needs the
    // new password.
    app.users.set_password(user, &change.new_password);
    match app.kb.rotate_on_sensitive_action(&session, true).await {
        Ok(rotated) => rotated.into_response(),
        Err(err) => err.into_response(),
    }
}

/// `POST /api/admin/users/{user}/revoke`: an operator revokes every session of a user.
pub(crate) async fn admin_revoke_user(
    State(app): State<AppState>,
    Path(user): Path<String>,
    parts: Parts,
) -> Response {
    if let Err(denied) = app.admin.check(&parts) {
        return denied.into_response();
    }
    if !DEMO_USERS.iter().any(|(id, _, _)| *id == user) {
        return error(StatusCode::NOT_FOUND, "unknown_user", "no such demo user");
    }
    let revoked = app
        .kb
        .service()
        .revoke_user(
            &user,
            None,
            Reason::ADMIN_REVOKED,
            Actor::Admin("demo-admin".to_owned()),
        )
        .await;
    match revoked {
        Ok(revoked) => no_store(Json(json!({"user": user, "revoked": revoked})).into_response()),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(app): State<AppState>, parts: Parts) -> Response {
    if let Err(denied) = app.admin.check(&parts) {
        return denied.into_response();
    }
    let Some(handle) = &app.metrics else {
        return error(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "this server has no metrics recorder",
        );
    };
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    no_store(response)
}

/// Any other `/api/…` path.
pub(crate) async fn api_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// Longest note.
const MAX_NOTE_CHARS: usize = 500;
/// Notes kept per user (the oldest go first).
const MAX_NOTES: usize = 50;

/// Per-user notes, in memory: something a user types and saves with a signed request.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    by_user: std::sync::Mutex<std::collections::HashMap<String, Vec<Value>>>,
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

/// `GET /api/notes`: the user's notes, newest first.
pub(crate) async fn notes(State(app): State<AppState>, session: Session) -> Response {
    let by_user = app
        .notes
        .by_user
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let notes: Vec<Value> = by_user
        .get(&session.user_id)
        .map(|notes| notes.iter().rev().cloned().collect())
        .unwrap_or_default();
    no_store(Json(json!({ "notes": notes })).into_response())
}

/// `POST /api/notes`: `{"text"}` (1 to 500 characters) → `201` with the note.
pub(crate) async fn add_note(
    State(app): State<AppState>,
    session: Session,
    body: Bytes,
) -> Response {
    let Ok(note) = serde_json::from_slice::<NewNote>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be JSON {\"text\": \"…\"}",
        );
    };
    let text = note.text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_note",
            "a note has 1 to 500 characters",
        );
    }
    let now = app.kb.verifier().clock().now_secs();
    let mut by_user = app
        .notes
        .by_user
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let notes = by_user.entry(session.user_id.clone()).or_default();
    let id = notes
        .last()
        .and_then(|n| n["id"].as_u64())
        .map_or(1, |id| id + 1);
    let note = json!({"id": id, "text": text, "created_at": now, "session_id": session.session_id});
    notes.push(note.clone());
    if notes.len() > MAX_NOTES {
        notes.remove(0);
    }
    no_store((StatusCode::CREATED, Json(note)).into_response())
}
