//! `GET /api/events`: the caller's own audit events as server-sent events.
//!
//! The browser opens the stream with `kb.fetch("/api/events")` and reads the body as it
//! arrives: like every protected route it needs a DPoP-signed request, which
//! `EventSource` cannot send. The request is verified once, when the stream opens; from
//! then on the stream lives exactly as long as the session: it closes after the event
//! that ended the session (revoked, closed, expired, refresh reuse), and a periodic check
//! closes it if the session ended in a way no event announced yet (an idle deadline that
//! passed). It never outlives a server shutdown.
//!
//! Events (`event:` name, JSON `data:`):
//!
//! | event | data |
//! |---|---|
//! | `hello` | `{"session_id","user_id","server_time"}`, first |
//! | `audit` | one audit event of any of the user's sessions (the keybound schema: `ts`, `event`, `session_id`, `user_id`, `jkt`, `reason`, `actor`, `generation`) |
//! | `lagged` | `{"missed": n}`: the stream fell behind and lost `n` events |
//! | `ended` | `{"session_id","state","reason"}`: the session ended; the stream closes |

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use http::HeaderValue;
use keybound_server::LifecycleError;
use keybound_server::axum::Session;
use keybound_server::lifecycle::{AuditEvent, AuditEventKind, SessionState};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::AppState;

/// How often an open stream checks that its session is still active.
const SESSION_CHECK: Duration = Duration::from_secs(3);
/// Comment lines that keep idle proxies from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(crate) async fn events(State(app): State<AppState>, session: Session) -> Response {
    let watch = Watch {
        app: app.clone(),
        events: app.audit.subscribe(),
        check: tokio::time::interval_at(tokio::time::Instant::now() + SESSION_CHECK, SESSION_CHECK),
        shutdown: app.shutdown.clone(),
        session,
        phase: Phase::Hello,
    };
    let mut response = Sse::new(stream_of(watch))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    // Proxies such as nginx would otherwise buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

enum Phase {
    Hello,
    Open,
    Done,
}

struct Watch {
    app: AppState,
    session: Session,
    events: broadcast::Receiver<AuditEvent>,
    check: tokio::time::Interval,
    shutdown: Option<watch::Receiver<bool>>,
    phase: Phase,
}

/// Whether an event ends the session it is about.
fn ends_session(kind: AuditEventKind) -> bool {
    matches!(
        kind,
        AuditEventKind::Revoked
            | AuditEventKind::Closed
            | AuditEventKind::Expired
            | AuditEventKind::RefreshReuse
            | AuditEventKind::Purged
    )
}

fn json_event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

async fn shutdown_requested(shutdown: &mut Option<watch::Receiver<bool>>) {
    match shutdown {
        Some(rx) => {
            // Ends on `true` or when the sender is gone.
            let _ = rx.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

fn stream_of(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(watch, |mut w| async move {
        let event = next_event(&mut w).await?;
        Some((Ok(event), w))
    })
}

async fn next_event(w: &mut Watch) -> Option<Event> {
    match w.phase {
        Phase::Done => return None,
        Phase::Hello => {
            w.phase = Phase::Open;
            let now = w.app.kb.verifier().clock().now_secs();
            return Some(json_event(
                "hello",
                &json!({
                    "session_id": w.session.session_id,
                    "user_id": w.session.user_id,
                    "server_time": now,
                }),
            ));
        }
        Phase::Open => {}
    }
    loop {
        tokio::select! {
            () = shutdown_requested(&mut w.shutdown) => return None,
            received = w.events.recv() => match received {
                Ok(event) if event.user_id == w.session.user_id => {
                    if event.session_id == w.session.session_id && ends_session(event.event) {
                        w.phase = Phase::Done;
                    }
                    let data = serde_json::to_value(&event).unwrap_or_default();
                    return Some(json_event("audit", &data));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Some(json_event("lagged", &json!({ "missed": missed })));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = w.check.tick() => {
                let ended = match w.app.kb.service().session(&w.session.session_id).await {
                    Ok(info) if info.state == SessionState::Active => None,
                    Ok(info) => Some((info.state.as_str(), info.reason.map(|r| r.as_str().to_owned()))),
                    Err(LifecycleError::SessionNotFound) => Some(("gone", None)),
                    // A store hiccup: look again at the next tick.
                    Err(_) => None,
                };
                if let Some((state, reason)) = ended {
                    w.phase = Phase::Done;
                    return Some(json_event(
                        "ended",
                        &json!({
                            "session_id": w.session.session_id,
                            "state": state,
                            "reason": reason,
                        }),
                    ));
                }
            }
        }
    }
}
