//! Building requests and reading the parts of answers the SDK acts on.

use js_sys::Object;
use keybound_proto::TokenResponse;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Headers, Request, RequestInit, Response};
use zeroize::Zeroizing;

use super::js;
use crate::answer::{Answer, dpop_challenge_error};
use crate::{ClientError, ServerClock, parse_http_date};

/// An answer with what the SDK needs from it read out. The response body is left
/// unread for the caller (the SDK reads a clone when it needs the error body).
pub(crate) struct Reply {
    pub(crate) response: Response,
    pub(crate) status: u16,
    challenge_error: Option<String>,
    error: Option<String>,
    error_code: Option<String>,
    description: Option<String>,
    /// `DPoP-Nonce`, if the server sent one.
    pub(crate) nonce: Option<String>,
    date: Option<String>,
    sent_ms: f64,
    received_ms: f64,
}

fn invalid_input(error: JsValue) -> ClientError {
    ClientError::InvalidInput {
        detail: js::error_message(&error),
    }
}

/// `new Request(input, init)`: the same inputs `fetch` takes.
pub(crate) fn request(input: &JsValue, init: &JsValue) -> Result<Request, ClientError> {
    Request::new_with_request_and_init(input.unchecked_ref(), init.unchecked_ref())
        .map_err(invalid_input)
}

/// A request the SDK makes itself (refresh, logout, session management).
pub(crate) fn internal(
    method: &str,
    url: &str,
    json_body: Option<&str>,
) -> Result<Request, ClientError> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = json_body {
        let headers = Headers::new().map_err(invalid_input)?;
        headers
            .set("Content-Type", "application/json")
            .map_err(invalid_input)?;
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(body));
    }
    init.set_cache(web_sys::RequestCache::NoStore);
    Request::new_with_str_and_init(url, &init).map_err(invalid_input)
}

/// The login request: the app's `init`, with `POST` when no method is given and a
/// string body sent as JSON unless a `Content-Type` says otherwise.
pub(crate) fn login(url: &JsValue, init: &JsValue) -> Result<Request, ClientError> {
    let init = if init.is_object() {
        Object::assign(&Object::new(), init.unchecked_ref())
    } else {
        Object::new()
    };
    if js::get(&init, "method").is_undefined() {
        js::set(&init, "method", &"POST".into());
    }
    let headers = js::get(&init, "headers");
    let headers = if headers.is_undefined() {
        Headers::new()
    } else {
        Headers::new_with_headers(headers.unchecked_ref())
    }
    .map_err(invalid_input)?;
    let has_type = headers.has("Content-Type").unwrap_or(true);
    if js::get(&init, "body").is_string() && !has_type {
        headers
            .set("Content-Type", "application/json")
            .map_err(invalid_input)?;
    }
    js::set(&init, "headers", &headers);
    request(url, &init)
}

/// Sets the `Authorization` (when an access token is given) and `DPoP` headers.
pub(crate) fn sign(
    request: &Request,
    proof: &str,
    access_token: Option<&str>,
) -> Result<(), ClientError> {
    let headers = request.headers();
    if let Some(token) = access_token {
        let value = Zeroizing::new(format!("DPoP {token}"));
        headers
            .set("Authorization", &value)
            .map_err(invalid_input)?;
    }
    headers.set("DPoP", proof).map_err(invalid_input)
}

/// Sends a request and reads the answer's headers (and, for 400/401/403 with a JSON
/// body, the error members from a clone of the body).
pub(crate) async fn send(request: &Request) -> Result<Reply, ClientError> {
    let sent_ms = js::now_ms();
    let response = js::wait(js::global_fetch(request)).await.map_err(|error| {
        if js::error_name(&error).as_deref() == Some("AbortError") {
            ClientError::Aborted
        } else {
            ClientError::Network {
                detail: js::error_message(&error),
            }
        }
    })?;
    let received_ms = js::now_ms();
    let response: Response = response.unchecked_into();
    let headers = response.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let mut reply = Reply {
        status: response.status(),
        challenge_error: None,
        error: None,
        error_code: None,
        description: None,
        nonce: header("DPoP-Nonce"),
        date: header("Date"),
        sent_ms,
        received_ms,
        response,
    };
    if matches!(reply.status, 400 | 401 | 403) {
        reply.challenge_error = header("WWW-Authenticate").and_then(|h| dpop_challenge_error(&h));
        let is_json = header("Content-Type").is_some_and(|t| t.contains("json"));
        if is_json {
            if let Some(body) = json_of_clone(&reply.response).await {
                reply.error = js::get_str(&body, "error");
                reply.error_code = js::get_str(&body, "error_code");
                reply.description = js::get_str(&body, "error_description");
            }
        }
    }
    Ok(reply)
}

/// Parses a clone of the body, leaving the original unread.
async fn json_of_clone(response: &Response) -> Option<JsValue> {
    let copy = response.clone().ok()?;
    js::wait(copy.json().ok()?).await.ok()
}

impl Reply {
    /// 2xx.
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The facts [`Answer::verdict`] classifies.
    pub(crate) fn answer(&self) -> Answer<'_> {
        Answer {
            status: self.status,
            challenge_error: self.challenge_error.as_deref(),
            error: self.error.as_deref(),
            error_code: self.error_code.as_deref(),
            has_nonce: self.nonce.is_some(),
        }
    }

    /// `error` of the body or challenge.
    pub(crate) fn error_name(&self) -> Option<&str> {
        self.error.as_deref().or(self.challenge_error.as_deref())
    }

    /// `error_code` of the body.
    pub(crate) fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref()
    }

    /// The error this answer stands for.
    pub(crate) fn to_error(&self) -> ClientError {
        ClientError::from_server(
            self.status,
            self.error_name(),
            self.error_code(),
            self.description.as_deref(),
        )
    }

    /// The clock offset the answer's `Date` header implies, if it has one.
    pub(crate) fn clock_from_date(&self, clock: ServerClock) -> Option<ServerClock> {
        let secs = parse_http_date(self.date.as_deref()?)?;
        Some(clock.learn(secs, self.sent_ms, self.received_ms))
    }

    /// Learns the clock offset from a token response's `server_time`.
    pub(crate) fn clock_from_server_time(
        &self,
        clock: ServerClock,
        server_time: i64,
    ) -> ServerClock {
        clock.learn(server_time, self.sent_ms, self.received_ms)
    }

    /// The body as JSON (consumes the body).
    pub(crate) async fn json(&self) -> Result<JsValue, ClientError> {
        let body = self
            .response
            .json()
            .map_err(|_| ClientError::InvalidResponse {
                reason: "body already read",
            })?;
        js::wait(body)
            .await
            .map_err(|_| ClientError::InvalidResponse {
                reason: "body is not JSON",
            })
    }

    /// The body as a token response.
    pub(crate) async fn token_response(&self) -> Result<TokenResponse, ClientError> {
        let body = self.json().await?;
        let bad = || ClientError::InvalidResponse {
            reason: "not a token response",
        };
        let text = |key| js::get_str(&body, key).ok_or_else(bad);
        let int = |key| js::get_i64(&body, key).ok_or_else(bad);
        Ok(TokenResponse {
            access_token: text("access_token")?,
            token_type: text("token_type")?,
            expires_in: u64::try_from(int("expires_in")?).map_err(|_| bad())?,
            refresh_token: text("refresh_token")?,
            session_id: text("session_id")?,
            session_expires_at: int("session_expires_at")?,
            idle_expires_at: int("idle_expires_at")?,
            server_time: int("server_time")?,
        })
    }
}
