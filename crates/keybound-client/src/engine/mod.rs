//! The SDK's engine: every decision of the browser SDK, as a synchronous state machine.
//!
//! The JavaScript driver (`js/driver.js`) does the browser's effects (`fetch`,
//! IndexedDB, WebCrypto, Web Locks, BroadcastChannel, timers) and tells the engine what
//! happened: an answer arrived, a stored record was read, a timer fired, another tab
//! spoke. The engine answers with what to do next (retry, refresh, take up tokens, end
//! the session, wake up at `t`) and queues the events the app should hear. It holds the
//! session's state, tokens, device key (public half), server clock and nonces; it never
//! awaits, spawns or calls into JavaScript, so the module carries no futures, closures
//! or per-call glue. Times come in as the browser's `Date.now()`.

#[allow(unused_imports)]
use crate::prelude::*;
mod exchange;
mod keys;
mod origins;
mod session;
mod tabs;

use keybound_proto::PublicJwk;

use crate::schedule::EndReason;
use crate::{
    Backoff, ClientError, NonceJar, ServerClock, SessionState, SessionTokens, Terminal, origin_of,
};
pub use keys::KeyKind;

/// Something the app should hear about, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A new session (a login here or in another tab).
    Login,
    /// New tokens for the same session.
    Refreshed,
    /// The session ended.
    Ended {
        terminal: Terminal,
        reason: Option<EndReason>,
        session_id: Option<String>,
    },
    /// The session ends in `seconds_left` unless something happens.
    Expiring {
        seconds_left: u64,
        reason: EndReason,
    },
}

/// The device key's public half.
#[derive(Debug, Clone)]
struct DeviceKey {
    kind: KeyKind,
    jwk: PublicJwk,
    thumbprint: String,
}

/// The current tokens and the stamp of the storage record they came from.
#[derive(Debug, Clone)]
struct Live {
    tokens: SessionTokens,
    stamp: String,
}

/// The `session` storage record the driver just read.
#[derive(Debug, Clone)]
enum Staged {
    Nothing,
    Ended {
        terminal: Terminal,
        session_id: Option<String>,
    },
    Live {
        live: Live,
        jkt: String,
        offset_ms: i64,
    },
}

/// The SDK's engine; see the module documentation.
#[derive(Debug)]
pub struct Engine {
    /// Absolute URL of the session router, without a trailing slash.
    endpoint: String,
    /// The origins signed requests may go to: the endpoint's, then the app's.
    allowed: Vec<String>,
    expiring_lead_ms: i64,
    clock: ServerClock,
    nonces: NonceJar,
    key: Option<DeviceKey>,
    live: Option<Live>,
    /// Tokens of a token response, checked, until the driver has stored them.
    pending: Option<SessionTokens>,
    staged: Staged,
    /// The last session that ended here: its tokens are never taken up again.
    ended: Option<String>,
    state: SessionState,
    last_activity: Option<i64>,
    expiring_fired_for: Option<i64>,
    retry_at: Option<i64>,
    backoff: Backoff,
    events: Vec<Event>,
    error: Option<ClientError>,
    /// What the last answer said, for the error it stands for.
    last_answer: Option<ClientError>,
    /// A `429`'s `Retry-After`: no background refresh before (server milliseconds).
    retry_not_before: Option<i64>,
}

impl Engine {
    /// An engine for the session router at `endpoint` (an absolute http(s) URL; the
    /// driver resolves it against the page), firing `expiring` `expiring_lead_seconds`
    /// before the session's end, signing for the endpoint's origin and the
    /// `allowed_origins` (one a line, see `allowedOrigins`). A bad endpoint or origin
    /// leaves an `invalid_option` error for [`take_error`](Self::take_error).
    pub fn new(endpoint: &str, expiring_lead_seconds: f64, allowed_origins: &str) -> Engine {
        let endpoint = endpoint.trim_end_matches('/');
        let origin = origin_of(endpoint).map(str::to_owned);
        let mut engine = Engine {
            endpoint: endpoint.to_owned(),
            allowed: Vec::new(),
            expiring_lead_ms: (expiring_lead_seconds.clamp(0.0, 86_400.0) * 1000.0) as i64,
            clock: ServerClock::default(),
            nonces: NonceJar::default(),
            key: None,
            live: None,
            pending: None,
            staged: Staged::Nothing,
            ended: None,
            state: SessionState::Anonymous,
            last_activity: None,
            expiring_fired_for: None,
            retry_at: None,
            backoff: Backoff::default(),
            events: Vec::new(),
            error: None,
            last_answer: None,
            retry_not_before: None,
        };
        match origin {
            Some(origin) => {
                engine.allowed.push(origin);
                engine.allow_origins(allowed_origins);
            }
            None => engine.fail(ClientError::InvalidOption {
                reason: "endpoint must be an http(s) URL",
            }),
        }
        engine
    }

    /// `endpoint` + `path`: a URL of the session router.
    pub fn url(&self, path: &str) -> String {
        let mut url = self.endpoint.clone();
        url.push_str(path);
        url
    }

    /// The last error, as `code \n status \n retry-after \n message` (status empty
    /// when the error is not a server's answer, retry-after unless a `429` said), and
    /// forgets it.
    pub fn take_error(&mut self) -> Option<String> {
        let error = self.error.take()?;
        let mut out = String::from(error.code());
        for n in [error.status().map(u64::from), error.retry_after()] {
            out.push('\n');
            if let Some(n) = n {
                crate::error::push_decimal(&mut out, n);
            }
        }
        out.push('\n');
        out.push_str(&error.message());
        Some(out)
    }

    /// The next event for the app, as `type [\n …]`: `login`, `refreshed`,
    /// `expiring \n seconds \n idle|absolute`, or `expired|revoked|closed \n reason \n
    /// session id` (empty parts when unknown).
    pub fn next_event(&mut self) -> Option<String> {
        if self.events.is_empty() {
            return None;
        }
        let mut out = String::new();
        match self.events.remove(0) {
            Event::Login => out.push_str("login"),
            Event::Refreshed => out.push_str("refreshed"),
            Event::Expiring {
                seconds_left,
                reason,
            } => {
                out.push_str("expiring\n");
                crate::error::push_decimal(&mut out, seconds_left);
                out.push('\n');
                out.push_str(reason.as_str());
            }
            Event::Ended {
                terminal,
                reason,
                session_id,
            } => {
                out.push_str(terminal.as_str());
                out.push('\n');
                out.push_str(reason.map_or("", EndReason::as_str));
                out.push('\n');
                out.push_str(session_id.as_deref().unwrap_or(""));
            }
        }
        Some(out)
    }

    /// `kb.state`: `anonymous`, `active`, `expired`, `revoked` or `closed`.
    pub fn state(&self) -> String {
        self.state.as_str().to_owned()
    }

    /// The live session's id.
    pub fn session_id(&self) -> Option<String> {
        self.live.as_ref().map(|l| l.tokens.session_id().to_owned())
    }

    /// The stamp of the storage record the live tokens came from.
    pub fn stamp(&self) -> Option<String> {
        self.live.as_ref().map(|l| l.stamp.clone())
    }

    /// The live session's deadlines on the browser's clock (epoch milliseconds): access
    /// token expiry, idle end, absolute end; empty without a session.
    pub fn deadlines(&self) -> Vec<f64> {
        let Some(live) = &self.live else {
            return Vec::new();
        };
        let t = live.tokens.timeline();
        [t.access_expires_at, t.idle_expires_at, t.session_expires_at]
            .into_iter()
            .map(|at| self.clock.to_local_ms(at))
            .collect()
    }
}

impl Engine {
    fn fail(&mut self, error: ClientError) {
        self.error = Some(error);
    }

    fn now(&self, local_now_ms: f64) -> i64 {
        self.clock.server_now_ms(local_now_ms)
    }

    /// The error, if any, that stops an operation needing a session.
    fn require_active(&mut self) -> bool {
        match self.state.require_active() {
            Ok(()) => true,
            Err(error) => {
                self.fail(error);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
