//! A sensitive action (password or privilege change) in the caller's session, for
//! either binding: a DPoP session gets new tokens, a DBSC session a new bound cookie.

use ::axum::Json;
use ::axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use keybound_proto::wire::ExtendResponse;

use super::extract::Binding;
use super::{ApiError, Keybound, Session, TokenReply};
use crate::lifecycle::{SessionId, SessionInfo};

/// The answer to [`Keybound::rotate_on_sensitive_action`], ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SensitiveRotation {
    /// A DPoP session: the token response, which the client must switch to.
    Tokens(TokenReply),
    /// A DBSC session: the rotated session's bound cookie, set on the browser by this
    /// answer; every cookie issued before is refused from now on.
    Cookie(CookieRotation),
}

impl SensitiveRotation {
    /// The new tokens, for a DPoP session.
    pub fn tokens(&self) -> Option<&TokenReply> {
        match self {
            Self::Tokens(tokens) => Some(tokens),
            Self::Cookie(_) => None,
        }
    }
}

impl IntoResponse for SensitiveRotation {
    fn into_response(self) -> Response {
        match self {
            Self::Tokens(tokens) => tokens.into_response(),
            Self::Cookie(cookie) => cookie.into_response(),
        }
    }
}

/// A DBSC session after a sensitive action: `200` with the session (the body of
/// `POST {prefix}/extend`: the session's summary and `server_time`), the new bound
/// cookie in `Set-Cookie`, and `Cache-Control: no-store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieRotation {
    session: ExtendResponse,
    set_cookie: HeaderValue,
}

impl CookieRotation {
    /// The rotated session.
    pub fn session(&self) -> &ExtendResponse {
        &self.session
    }
}

impl IntoResponse for CookieRotation {
    fn into_response(self) -> Response {
        let mut response = Json(self.session).into_response();
        let headers = response.headers_mut();
        crate::response::no_store(headers);
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(header::SET_COOKIE, self.set_cookie);
        response
    }
}

impl Keybound {
    /// After a sensitive action (password or privilege change) by the caller: moves
    /// the session to a new generation, and with `revoke_others` revokes every other
    /// session of the user (`sensitive_action`). Send the answer to the client:
    ///
    /// * a DPoP session gets the new tokens (its access tokens already issued stay
    ///   valid until they expire, at most the access-token lifetime);
    /// * a DBSC session gets the rotated session's bound cookie, and the cookies
    ///   issued before are refused at once (`401 cookie_superseded`; on other nodes as
    ///   soon as their session cache hears of it, which the Redis store tells them at
    ///   once).
    ///
    /// Errors: `session_*` when the session ended meanwhile, `session_key_mismatch`,
    /// `503` when the store is down.
    pub async fn rotate_on_sensitive_action(
        &self,
        session: &Session,
        revoke_others: bool,
    ) -> Result<SensitiveRotation, ApiError> {
        match session.binding {
            Binding::Dpop => {
                let tokens = self
                    .service()
                    .rotate_on_sensitive_action(&session.session_id, &session.jkt, revoke_others)
                    .await?;
                Ok(SensitiveRotation::Tokens(self.token_reply(tokens)))
            }
            Binding::Dbsc => {
                let record = self
                    .service()
                    .rotate_dbsc_on_sensitive_action(
                        &session.session_id,
                        &session.jkt,
                        revoke_others,
                    )
                    .await?;
                let set_cookie = self.bound_cookie_line(&record)?;
                let now = self.verifier().clock().now_secs();
                let info = SessionInfo::new(&record, now, SessionId::parse(&session.session_id));
                Ok(SensitiveRotation::Cookie(CookieRotation {
                    session: ExtendResponse {
                        session: super::routes::summary(info),
                        server_time: now,
                    },
                    set_cookie,
                }))
            }
        }
    }
}
