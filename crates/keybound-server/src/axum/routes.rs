//! keybound's HTTP endpoints (DESIGN §3); their responses are documented in the
//! module docs of [`crate::axum`].

use ::axum::body::Bytes;
use ::axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use ::axum::extract::{DefaultBodyLimit, FromRef, Path, Query, State};
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::{delete, get, post};
use ::axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use keybound_proto::b64;
use keybound_proto::wire::{ExtendResponse, SessionList, SessionSummary, code};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{ApiError, Keybound, ProofOfPossession, Session};
use crate::lifecycle::{EndResult, PageCursor, SessionInfo};
use crate::{Rejection, SessionDenied};

/// The largest request body keybound's endpoints accept (16 KiB); a good limit for a
/// login route too (`DefaultBodyLimit::max(DEFAULT_BODY_LIMIT)`).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// The largest body `POST {prefix}/refresh` accepts (4 KiB): one short token.
pub const REFRESH_BODY_LIMIT: usize = 4 * 1024;

/// How long clients may cache the JWKS. Short, because a rotated key signs at once.
const JWKS_CACHE_CONTROL: &str = "public, max-age=60";

/// keybound's endpoints, mounted under `prefix` (for example `/session`), plus
/// `GET /.well-known/jwks.json`. Merge them into your router (`Router::merge`, or
/// `Router::nest`: proofs are checked against the original request path); the state
/// must provide a [`Keybound`] through [`FromRef`]. Do not put them behind
/// [`require_session`](super::require_session): refresh carries no access token, and
/// logout accepts ended sessions.
///
/// | method, path | does | success |
/// |---|---|---|
/// | `POST {prefix}/refresh` | body `{"refresh_token"}` + proof → rotated tokens | `200` token response |
/// | `POST {prefix}/extend` | "stay signed in": restarts the idle timeout | `200` session |
/// | `POST {prefix}/logout` | closes the calling session (idempotent) | `204` |
/// | `GET {prefix}/sessions?limit=N&cursor=C` | a page of the caller's sessions, newest first, `current` marked | `200 {"sessions":[…],"next_cursor":…}` |
/// | `DELETE {prefix}/sessions/{id}` | revokes one of the caller's sessions (idempotent) | `200` |
/// | `POST {prefix}/sessions/revoke-others` | revokes every other session of the caller | `200 {"revoked":n}` |
/// | `GET /.well-known/jwks.json` | access-token verification keys | `200` JWKS |
///
/// Errors of each endpoint: see the [module docs](crate::axum#endpoints).
///
/// # Panics
///
/// When `prefix` is not a valid axum path (it contains `{`, `}` or `*`), or when the
/// router these routes are merged into already has one of them: both are mistakes in
/// the program, found at start-up.
pub fn routes<S>(prefix: &str) -> Router<S>
where
    Keybound: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let prefix = super::dbsc::normalize_prefix(prefix);
    Router::new()
        .route(
            &format!("{prefix}/dbsc/register"),
            post(super::dbsc::register),
        )
        .route(
            &format!("{prefix}/dbsc/refresh"),
            post(super::dbsc::refresh),
        )
        .route(
            &format!("{prefix}/refresh"),
            post(refresh).layer(DefaultBodyLimit::max(REFRESH_BODY_LIMIT)),
        )
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

/// The response of an endpoint: success or error, with `Cache-Control: no-store` and,
/// when nonces are on, the current `DPoP-Nonce`.
fn respond(kb: &Keybound, result: Result<Response, ApiError>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    crate::response::no_store(response.headers_mut());
    kb.with_nonce(response)
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<Zeroizing<String>>,
}

async fn refresh(
    State(kb): State<Keybound>,
    proof: Result<ProofOfPossession, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let proof = proof?;
        let body = body.map_err(|rejection| match ApiError::from(rejection) {
            ApiError::PayloadTooLarge { .. } => ApiError::PayloadTooLarge {
                limit: Some(REFRESH_BODY_LIMIT),
            },
            other => other,
        })?;
        let body: RefreshBody =
            serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest {
                code: code::INVALID_JSON_BODY,
                description: "the body must be a JSON object {\"refresh_token\": \"…\"}",
            })?;
        let token = body.refresh_token.ok_or(ApiError::BadRequest {
            code: code::MISSING_REFRESH_TOKEN,
            description: "the body has no refresh_token",
        })?;
        // The proof's jti is recorded only for a refresh token this server issued,
        // presented with its session's key: proofs from self-made keys never reach
        // the replay store, whatever their number. A token presented with another key
        // changes nothing when replayed (refused, or its session revoked for reuse).
        if kb
            .service()
            .check_refresh_binding(&token, &proof.jkt)
            .await?
        {
            kb.consume_proof(&proof).await?;
        }
        let tokens = kb
            .service()
            .refresh(&token, &proof.jkt, &proof.signals)
            .await?;
        Ok(kb.token_reply(tokens).into_response())
    }
    .await;
    respond(&kb, result)
}

/// A session as the endpoints show it.
pub(crate) fn summary(info: SessionInfo) -> SessionSummary {
    SessionSummary {
        id: info.session_id,
        device_label: info.device_label,
        created_at: info.created_at,
        last_seen_at: info.last_seen_at,
        idle_expires_at: info.idle_expires_at,
        expires_at: info.expires_at,
        state: info.state,
        reason: info.reason.map(|r| r.as_str().to_owned()),
        ended_at: info.ended_at,
        current: info.current,
        binding: info.binding.to_owned(),
    }
}

async fn extend(State(kb): State<Keybound>, session: Result<Session, ApiError>) -> Response {
    let result = async {
        let session = session?;
        let mut info = kb.service().extend(&session.session_id).await?;
        info.current = true;
        Ok(Json(ExtendResponse {
            session: summary(info),
            server_time: kb.verifier().clock().now_secs(),
        })
        .into_response())
    }
    .await;
    respond(&kb, result)
}

async fn logout(State(kb): State<Keybound>, session: Result<Session, ApiError>) -> Response {
    let result = async {
        match session {
            Ok(caller) => {
                kb.service().close(&caller.session_id).await?;
            }
            // The caller proved possession of the key and the token, but the session had
            // already ended: logging out again is a success that changes nothing.
            Err(ApiError::Verification {
                rejection:
                    Rejection::Session(
                        SessionDenied::Closed | SessionDenied::Revoked | SessionDenied::Expired,
                    ),
                ..
            }) => {}
            Err(err) => return Err(err),
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        // A browser's DBSC cookie goes with the session (the browser then ends its DBSC
        // session at the next refresh, which answers `continue: false`).
        if let Some(clear) = kb.clear_bound_cookie() {
            response.headers_mut().insert(header::SET_COOKIE, clear);
        }
        Ok(response)
    }
    .await;
    respond(&kb, result)
}

/// `limit` and `cursor` of `GET {prefix}/sessions`, checked: `limit` a whole number
/// from 1 to [`SessionList::MAX_LIMIT`], `cursor` a `next_cursor` this server gave.
/// Other parameters are ignored; a parameter given twice is refused.
fn page_query(pairs: &[(String, String)]) -> Result<(usize, Option<PageCursor>), ApiError> {
    let bad_limit = || ApiError::BadRequest {
        code: code::INVALID_PAGE_LIMIT,
        description: "limit must be a whole number from 1 to 200, given once",
    };
    let bad_cursor = || ApiError::BadRequest {
        code: code::INVALID_CURSOR,
        description: "cursor must be a next_cursor of an earlier page, given once",
    };
    let mut limit = None;
    let mut cursor = None;
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => {
                // Plain digits without a leading zero: one spelling per number.
                let digits = !value.starts_with('0')
                    && value.len() <= 3
                    && value.bytes().all(|b| b.is_ascii_digit());
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| digits && (1..=SessionList::MAX_LIMIT).contains(n));
                if limit.replace(n.ok_or_else(bad_limit)?).is_some() {
                    return Err(bad_limit());
                }
            }
            "cursor" => {
                let c = PageCursor::parse(value).ok_or_else(bad_cursor)?;
                if cursor.replace(c).is_some() {
                    return Err(bad_cursor());
                }
            }
            _ => {}
        }
    }
    Ok((limit.unwrap_or(SessionList::DEFAULT_LIMIT), cursor))
}

async fn list(
    State(kb): State<Keybound>,
    session: Result<Session, ApiError>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let result = async {
        let session = session?;
        let Query(pairs) = query.map_err(|_| ApiError::BadRequest {
            code: code::INVALID_CURSOR,
            description: "the query string is not URL-encoded pairs",
        })?;
        let (limit, cursor) = page_query(&pairs)?;
        let page = kb
            .service()
            .list_sessions_page(&session.user_id, Some(&session.session_id), limit, cursor)
            .await?;
        Ok(Json(SessionList {
            sessions: page.sessions.into_iter().map(summary).collect(),
            next_cursor: page.next_cursor.map(|c| c.to_string()),
        })
        .into_response())
    }
    .await;
    respond(&kb, result)
}

fn end_result(result: EndResult) -> Response {
    Json(json!({
        "id": result.session_id,
        "state": result.state.as_str(),
        "reason": result.reason.map(|r| r.as_str().to_owned()),
        "changed": result.changed,
    }))
    .into_response()
}

async fn revoke_one(
    State(kb): State<Keybound>,
    session: Result<Session, ApiError>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let session = session?;
        let Path(id) = id?;
        let result = kb.service().revoke_for_user(&session.user_id, &id).await?;
        Ok(end_result(result))
    }
    .await;
    respond(&kb, result)
}

async fn revoke_others(State(kb): State<Keybound>, session: Result<Session, ApiError>) -> Response {
    let result = async {
        let session = session?;
        let revoked = kb
            .service()
            .revoke_others(&session.user_id, &session.session_id)
            .await?;
        Ok(Json(json!({ "revoked": revoked })).into_response())
    }
    .await;
    respond(&kb, result)
}

async fn jwks(State(kb): State<Keybound>, request_headers: HeaderMap) -> Response {
    let jwks = match kb.verifier().key_ring().read() {
        Ok(ring) => ring.jwks(),
        Err(poisoned) => poisoned.into_inner().jwks(),
    };
    let body = jwks.to_string();
    let digest = Sha256::digest(body.as_bytes());
    let etag = format!("\"{}\"", b64::encode(&digest[..16]));
    let mut response = if if_none_match(&request_headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(JWKS_CACHE_CONTROL),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, RFC 9110 §13.1.2).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_lists() {
        let mut headers = HeaderMap::new();
        assert!(!if_none_match(&headers, "\"a\""));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"b\", W/\"a\""),
        );
        assert!(if_none_match(&headers, "\"a\""));
        assert!(!if_none_match(&headers, "\"c\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, "\"c\""));
    }
}
