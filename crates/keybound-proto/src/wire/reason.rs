//! Why a session ended (the `reason` of a session summary, an audit event and the
//! `keybound_sessions_*_total{reason}` metrics), and the notes keybound records when
//! it opens a session that is not bound yet. Applications may add their own reasons
//! (e.g. `password_reset`); these are the ones keybound itself uses.

use super::Code;
#[allow(unused_imports)]
use crate::prelude::*;

codes! {
    // `closed`
    LOGOUT = "logout": "The user logged out.";

    // `revoked`
    USER_REVOKED = "user_revoked": "The user revoked the session.";
    USER_REVOKED_OTHERS = "user_revoked_others":
        "The user revoked all their other sessions.";
    ADMIN_REVOKED = "admin_revoked": "An administrator revoked the session.";
    REFRESH_REUSE = "refresh_reuse":
        "A refresh token was presented again outside the grace rule; the session was revoked.";
    SENSITIVE_ACTION = "sensitive_action":
        "The user's other sessions were revoked on a sensitive action (password or privilege change).";
    REAUTHENTICATION_REQUIRED = "reauthentication_required":
        "A risk decision required the user to sign in again.";
    RISK_POLICY = "risk_policy": "A risk decision revoked the session.";
    SESSION_LIMIT = "session_limit":
        "The user opened a session beyond the per-user limit; their least recently used session was revoked to make room.";

    // `expired`
    IDLE_TIMEOUT = "idle_timeout": "No refresh or `extend` within the idle timeout.";
    ABSOLUTE_LIFETIME = "absolute_lifetime": "The session's absolute lifetime passed.";
    DBSC_REGISTRATION_TIMEOUT = "dbsc_registration_timeout":
        "The browser never registered a DBSC key within the registration window after sign-in.";

    // Purged sessions
    RETENTION = "retention": "An ended session was purged after the retention period.";

    // `session.created` of a DBSC session that is not bound yet (the registration
    // policy in force)
    DBSC_REGISTRATION_PENDING = "dbsc_registration_pending":
        "Opened waiting for the browser's DBSC registration, with no credential until then.";
    DBSC_UNBOUND_COOKIE = "dbsc_unbound_cookie":
        "Opened waiting for the browser's DBSC registration, with a short-lived unbound cookie meanwhile.";
}
