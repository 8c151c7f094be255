//! keybound's HTTP endpoints (DESIGN §3).

use ::axum::body::to_bytes;
use ::axum::extract::{DefaultBodyLimit, FromRef, Path, Request, State};
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::{delete, get, post};
use ::axum::{Json, Router};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::extract::{signals, signed_uri};
use super::{ApiError, Keybound, Session, TokenReply};
use crate::lifecycle::{EndResult, SessionInfo};
use crate::{Rejection, SessionDenied};

/// The largest request body keybound's endpoints accept (16 KiB).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// The refresh body is one short token; anything larger is refused early.
const REFRESH_BODY_LIMIT: usize = 4 * 1024;

/// keybound's endpoints, mounted under `prefix` (for example `/session`), plus
/// `GET /.well-known/jwks.json`. Merge them into your router
/// (`Router::merge`); the state must provide a [`Keybound`].
///
/// | method, path | does | success |
/// |---|---|---|
/// | `POST {prefix}/refresh` | body `{"refresh_token"}` + proof → rotated tokens | `200` token response |
/// | `POST {prefix}/extend` | "stay signed in": restarts the idle timeout | `200` session |
/// | `POST {prefix}/logout` | closes the calling session (idempotent) | `204` |
/// | `GET {prefix}/sessions` | the caller's sessions, `current` marked | `200 {"sessions":[…]}` |
/// | `DELETE {prefix}/sessions/{id}` | revokes one of the caller's sessions (idempotent) | `200` |
/// | `POST {prefix}/sessions/revoke-others` | revokes every other session of the caller | `200 {"revoked":n}` |
/// | `GET /.well-known/jwks.json` | access-token verification keys | `200` JWKS |
pub fn routes<S>(prefix: &str) -> Router<S>
where
    Keybound: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let prefix = format!("/{}", prefix.trim_matches('/'));
    let prefix = if prefix == "/" { String::new() } else { prefix };
    Router::new()
        .route(&format!("{prefix}/refresh"), post(refresh))
        .route(&format!("{prefix}/extend"), post(extend))
        .route(&format!("{prefix}/logout"), post(logout))
        .route(&format!("{prefix}/sessions"), get(list))
        .route(&format!("{prefix}/sessions/{{id}}"), delete(revoke_one))
        .route(
            &format!("{prefix}/sessions/revoke-others"),
            post(revoke_others),
        )
        .route("/.well-known/jwks.json", get(jwks))
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<Zeroizing<String>>,
}

async fn refresh(State(kb): State<Keybound>, request: Request) -> Result<TokenReply, ApiError> {
    let (parts, body) = request.into_parts();
    let proof = kb
        .verifier()
        .verify_proof_headers(&parts.method, signed_uri(&parts), &parts.headers)
        .await?;
    let bytes =
        to_bytes(body, REFRESH_BODY_LIMIT)
            .await
            .map_err(|_| ApiError::PayloadTooLarge {
                limit: REFRESH_BODY_LIMIT,
            })?;
    let body: RefreshBody = serde_json::from_slice(&bytes).map_err(|_| ApiError::BadRequest {
        code: "invalid_json",
        description: "the body must be a JSON object {\"refresh_token\": \"…\"}",
    })?;
    let token = body.refresh_token.ok_or(ApiError::BadRequest {
        code: "missing_refresh_token",
        description: "the body has no refresh_token",
    })?;
    let tokens = kb
        .service()
        .refresh(&token, &proof.jkt, &signals(&parts))
        .await?;
    Ok(TokenReply(tokens))
}

/// A session as the endpoints show it.
#[derive(Serialize)]
struct SessionJson {
    id: String,
    device_label: Option<String>,
    created_at: i64,
    last_seen_at: i64,
    idle_expires_at: i64,
    expires_at: i64,
    state: &'static str,
    reason: Option<String>,
    ended_at: Option<i64>,
    current: bool,
}

impl From<SessionInfo> for SessionJson {
    fn from(info: SessionInfo) -> Self {
        Self {
            id: info.session_id,
            device_label: info.device_label,
            created_at: info.created_at,
            last_seen_at: info.last_seen_at,
            idle_expires_at: info.idle_expires_at,
            expires_at: info.expires_at,
            state: info.state.as_str(),
            reason: info.reason.map(|r| r.as_str().to_owned()),
            ended_at: info.ended_at,
            current: info.current,
        }
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn extend(State(kb): State<Keybound>, session: Session) -> Result<Response, ApiError> {
    let mut info = kb.service().extend(&session.session_id).await?;
    info.current = true;
    let server_time = kb.verifier().clock().now_secs();
    let mut body = serde_json::to_value(SessionJson::from(info)).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("server_time".into(), json!(server_time));
    }
    Ok(no_store(Json(body).into_response()))
}

async fn logout(State(kb): State<Keybound>, request: Request) -> Result<Response, ApiError> {
    let (parts, _body) = request.into_parts();
    let verified = kb
        .verifier()
        .verify_headers(&parts.method, signed_uri(&parts), &parts.headers)
        .await;
    match verified {
        Ok(caller) => {
            kb.service().close(&caller.sid).await?;
        }
        // The caller proved possession of the key and token, but the session had already
        // ended: logging out again is a success that changes nothing.
        Err(Rejection::Session(
            SessionDenied::Closed | SessionDenied::Revoked | SessionDenied::Expired,
        )) => {}
        Err(rejection) => return Err(rejection.into()),
    }
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

async fn list(State(kb): State<Keybound>, session: Session) -> Result<Response, ApiError> {
    let sessions = kb
        .service()
        .list_sessions(&session.user_id, Some(&session.session_id))
        .await?;
    let sessions: Vec<SessionJson> = sessions.into_iter().map(SessionJson::from).collect();
    Ok(no_store(
        Json(json!({ "sessions": sessions })).into_response(),
    ))
}

fn end_result(result: EndResult) -> Response {
    no_store(
        Json(json!({
            "id": result.session_id,
            "state": result.state.as_str(),
            "reason": result.reason.map(|r| r.as_str().to_owned()),
            "changed": result.changed,
        }))
        .into_response(),
    )
}

async fn revoke_one(
    State(kb): State<Keybound>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let result = kb.service().revoke_for_user(&session.user_id, &id).await?;
    Ok(end_result(result))
}

async fn revoke_others(State(kb): State<Keybound>, session: Session) -> Result<Response, ApiError> {
    let revoked = kb
        .service()
        .revoke_others(&session.user_id, &session.session_id)
        .await?;
    Ok(no_store(
        Json(json!({ "revoked": revoked })).into_response(),
    ))
}

async fn jwks(State(kb): State<Keybound>) -> Response {
    let jwks = match kb.verifier().key_ring().read() {
        Ok(ring) => ring.jwks(),
        Err(poisoned) => poisoned.into_inner().jwks(),
    };
    let mut response = Json(jwks).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
