//! Audit events (DESIGN §4) and the sinks they go to.
//!
//! Every state transition emits exactly one [`AuditEvent`]:
//!
//! ```json
//! {"ts":1700000000123,"event":"session.revoked","session_id":"…","user_id":"alice",
//!  "jkt":"…","reason":"user_revoked","actor":"user:alice","generation":3}
//! ```
//!
//! `ts` is milliseconds since the Unix epoch (from the service's clock); `reason` is
//! `null` for `session.created` and `session.refreshed`. Events never contain a token.
//!
//! | event | when | reason | actor |
//! |---|---|---|---|
//! | `session.created` | login | – (a DBSC session: `dbsc_registration_pending` / `dbsc_unbound_cookie`) | `user:<id>` |
//! | `session.refreshed` | refresh rotated the tokens | – | `user:<id>` |
//! | `session.rotated` | sensitive action replaced the tokens | `sensitive_action` | `user:<id>` |
//! | `session.refresh_reuse` | an old refresh token revoked the session | `refresh_reuse` | `system` |
//! | `session.revoked` | revoked by user, admin or risk policy | the caller's | the caller's |
//! | `session.closed` | logout | `logout` | `user:<id>` |
//! | `session.expired` | idle timeout, absolute lifetime or DBSC registration window made durable | `idle_timeout` / `absolute_lifetime` / `dbsc_registration_timeout` | `system` |
//! | `session.purged` | removed after retention | `retention` | `system` |

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// The kind of an audit event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum AuditEventKind {
    /// `session.created`
    #[serde(rename = "session.created")]
    Created,
    /// `session.refreshed`
    #[serde(rename = "session.refreshed")]
    Refreshed,
    /// `session.refresh_reuse`
    #[serde(rename = "session.refresh_reuse")]
    RefreshReuse,
    /// `session.revoked`
    #[serde(rename = "session.revoked")]
    Revoked,
    /// `session.closed`
    #[serde(rename = "session.closed")]
    Closed,
    /// `session.expired`
    #[serde(rename = "session.expired")]
    Expired,
    /// `session.purged`
    #[serde(rename = "session.purged")]
    Purged,
    /// `session.rotated`
    #[serde(rename = "session.rotated")]
    Rotated,
    /// `session.bound`: a DBSC session's browser registered its key.
    #[serde(rename = "session.bound")]
    Bound,
}

impl AuditEventKind {
    /// The event's name, e.g. `session.revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "session.created",
            Self::Refreshed => "session.refreshed",
            Self::RefreshReuse => "session.refresh_reuse",
            Self::Revoked => "session.revoked",
            Self::Closed => "session.closed",
            Self::Expired => "session.expired",
            Self::Purged => "session.purged",
            Self::Rotated => "session.rotated",
            Self::Bound => "session.bound",
        }
    }
}

impl std::fmt::Display for AuditEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One session transition, in the DESIGN §4 schema.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// When, milliseconds since the Unix epoch.
    pub ts: i64,
    /// What happened.
    pub event: AuditEventKind,
    /// The session.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// Thumbprint of its key.
    pub jkt: String,
    /// Why, for terminal transitions and rotations.
    pub reason: Option<String>,
    /// Who: `user:<id>`, `admin:<id>` or `system`.
    pub actor: String,
    /// The refresh-token generation after the transition.
    pub generation: u64,
}

impl AuditEvent {
    /// The event as one line of JSON (without the newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where audit events go. Called synchronously on the request path, once per event:
/// hand slow work to a channel.
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: &AuditEvent);

    /// Whether the sink would keep an event now; when no sink would, the service does
    /// not build the event at all. Default: always.
    fn enabled(&self) -> bool {
        true
    }
}

impl<S: AuditSink + ?Sized> AuditSink for std::sync::Arc<S> {
    fn record(&self, event: &AuditEvent) {
        (**self).record(event);
    }

    fn enabled(&self) -> bool {
        (**self).enabled()
    }
}

/// Emits each event as a `tracing` event at `INFO`, target `keybound::audit`, with
/// the schema's fields as structured fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn enabled(&self) -> bool {
        tracing::enabled!(target: "keybound::audit", tracing::Level::INFO)
    }

    fn record(&self, e: &AuditEvent) {
        tracing::info!(
            target: "keybound::audit",
            ts = e.ts,
            event = e.event.as_str(),
            session_id = %e.session_id,
            user_id = %e.user_id,
            jkt = %e.jkt,
            reason = e.reason.as_deref(),
            actor = %e.actor,
            generation = e.generation,
            "{}",
            e.event.as_str()
        );
    }
}

/// Writes each event as one line of JSON to a writer (a file, stdout, a pipe), and
/// flushes it. Write errors are reported through `tracing` and otherwise ignored.
///
/// ```
/// use keybound_server::lifecycle::JsonLinesSink;
/// let sink = JsonLinesSink::new(std::io::stdout());
/// # drop(sink);
/// ```
pub struct JsonLinesSink {
    writer: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}

impl JsonLinesSink {
    /// A sink writing to `writer`.
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        Self {
            writer: Mutex::new(Box::new(writer)),
        }
    }
}

impl AuditSink for JsonLinesSink {
    fn record(&self, event: &AuditEvent) {
        let mut line = event.to_json();
        line.push('\n');
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = writer
            .write_all(line.as_bytes())
            .and_then(|()| writer.flush())
        {
            tracing::warn!(target: "keybound::audit", error = %e, "writing an audit event failed");
        }
    }
}

/// Publishes events on a `tokio::sync::broadcast` channel: every
/// [`subscribe`](Self::subscribe)r gets every event sent after it subscribed. A
/// subscriber that falls more than `capacity` events behind loses the oldest ones
/// (it sees `RecvError::Lagged`); with no subscriber, events are dropped.
///
/// ```
/// use keybound_server::lifecycle::BroadcastSink;
/// let sink = BroadcastSink::new(1024);
/// let mut events = sink.subscribe();
/// # drop(events);
/// ```
#[derive(Clone, Debug)]
pub struct BroadcastSink {
    sender: broadcast::Sender<AuditEvent>,
}

impl BroadcastSink {
    /// A channel keeping up to `capacity` (at least 1) events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AuditEvent> {
        self.sender.subscribe()
    }
}

impl AuditSink for BroadcastSink {
    fn enabled(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    fn record(&self, event: &AuditEvent) {
        // An error only means nobody listens right now.
        let _ = self.sender.send(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event() -> AuditEvent {
        AuditEvent {
            ts: 1_700_000_000_123,
            event: AuditEventKind::Revoked,
            session_id: "sid".into(),
            user_id: "alice".into(),
            jkt: "jkt".into(),
            reason: Some("user_revoked".into()),
            actor: "user:alice".into(),
            generation: 3,
        }
    }

    #[test]
    fn json_lines_have_exactly_the_schema_fields() {
        let buf = Shared::default();
        let sink = JsonLinesSink::new(buf.clone());
        sink.record(&event());
        sink.record(&event());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "actor",
                "event",
                "generation",
                "jkt",
                "reason",
                "session_id",
                "ts",
                "user_id"
            ]
        );
        assert_eq!(value["event"], "session.revoked");
        assert_eq!(value["ts"], 1_700_000_000_123i64);
    }

    #[tokio::test]
    async fn broadcast_subscribers_receive_events() {
        let sink = BroadcastSink::new(8);
        sink.record(&event()); // nobody listening: dropped, no error
        let mut rx = sink.subscribe();
        sink.record(&event());
        assert_eq!(rx.recv().await.unwrap(), event());
    }
}
