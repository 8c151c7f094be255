//! The lifecycle's metrics, recorded through the `metrics` crate's facade (install
//! any recorder, e.g. `metrics-exporter-prometheus`, to collect them).
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `keybound_sessions_opened_total` | counter | – | sessions opened |
//! | `keybound_refreshes_total` | counter | `result` | refreshes by outcome: `rotated`, `grace_replay`, `reuse_detected`, `key_mismatch`, `invalid`, `not_active`, `denied`, `error` |
//! | `keybound_revocations_total` | counter | `reason` | sessions revoked, by reason (including `refresh_reuse`) |
//! | `keybound_sessions_closed_total` | counter | – | logouts |
//! | `keybound_sessions_expired_total` | counter | `reason` | expiries made durable (`idle_timeout`, `absolute_lifetime`) |
//! | `keybound_sessions_purged_total` | counter | – | terminal sessions purged after retention |
//! | `keybound_risk_decisions_total` | counter | `event`, `decision` | risk-policy answers (`login`/`refresh`; `allow`, `shorten`, `reauthenticate`, `revoke`) |
//! | `keybound_sweeps_total` | counter | `result` | sweeps, `ok` or `error` |
//! | `keybound_sweep_duration_seconds` | histogram | – | duration of one complete sweep |
//! | `keybound_active_sessions` | gauge | – | sessions stored as active, set after each sweep |
//! | `keybound_dbsc_total` | counter | `step`, `result` | DBSC registrations and refreshes (`register`/`refresh`; `ok`, `challenged`, `terminated`, or the refusal's error code) |

use crate::session::Reason;

/// Sessions opened.
pub const SESSIONS_OPENED: &str = "keybound_sessions_opened_total";
/// Refreshes by `result`.
pub const REFRESHES: &str = "keybound_refreshes_total";
/// Revocations by `reason`.
pub const REVOCATIONS: &str = "keybound_revocations_total";
/// Logouts.
pub const SESSIONS_CLOSED: &str = "keybound_sessions_closed_total";
/// Durable expiries by `reason`.
pub const SESSIONS_EXPIRED: &str = "keybound_sessions_expired_total";
/// Purges.
pub const SESSIONS_PURGED: &str = "keybound_sessions_purged_total";
/// Risk decisions by `event` and `decision`.
pub const RISK_DECISIONS: &str = "keybound_risk_decisions_total";
/// Sweeps by `result`.
pub const SWEEPS: &str = "keybound_sweeps_total";
/// Sweep duration in seconds.
pub const SWEEP_DURATION: &str = "keybound_sweep_duration_seconds";
/// DBSC registrations and refreshes by `step` and `result`.
pub const DBSC: &str = "keybound_dbsc_total";
/// Sessions stored as active.
pub const ACTIVE_SESSIONS: &str = "keybound_active_sessions";

pub(crate) fn opened() {
    ::metrics::counter!(SESSIONS_OPENED).increment(1);
}

/// A DBSC registration or refresh and how it ended.
#[cfg(feature = "axum")]
pub(crate) fn dbsc(step: &'static str, result: &'static str) {
    ::metrics::counter!(DBSC, "step" => step, "result" => result).increment(1);
}

pub(crate) fn refresh(result: &'static str) {
    ::metrics::counter!(REFRESHES, "result" => result).increment(1);
}

pub(crate) fn revoked(reason: &Reason) {
    ::metrics::counter!(REVOCATIONS, "reason" => reason.as_str().to_owned()).increment(1);
}

pub(crate) fn closed() {
    ::metrics::counter!(SESSIONS_CLOSED).increment(1);
}

pub(crate) fn expired(reason: &Reason) {
    ::metrics::counter!(SESSIONS_EXPIRED, "reason" => reason.as_str().to_owned()).increment(1);
}

pub(crate) fn purged(count: u64) {
    ::metrics::counter!(SESSIONS_PURGED).increment(count);
}

pub(crate) fn risk(event: &'static str, decision: &'static str) {
    ::metrics::counter!(RISK_DECISIONS, "event" => event, "decision" => decision).increment(1);
}

pub(crate) fn sweep(ok: bool, seconds: f64) {
    let result = if ok { "ok" } else { "error" };
    ::metrics::counter!(SWEEPS, "result" => result).increment(1);
    ::metrics::histogram!(SWEEP_DURATION).record(seconds);
}

pub(crate) fn active(count: u64) {
    #[allow(clippy::cast_precision_loss)]
    ::metrics::gauge!(ACTIVE_SESSIONS).set(count as f64);
}
