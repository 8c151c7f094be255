//! When to refresh, warn and give up: the SDK's timers as one pure function.
//!
//! The browser side only keeps a single timer: it asks [`plan`] what to do now and when
//! to ask again, does it, and asks again. All times are the server's clock in
//! milliseconds (see [`crate::ServerClock`]).
//!
//! The rules:
//! * Tokens are refreshed before the access token expires, but only while the app is in
//!   use: something happened (a request, `touch()`) since the current tokens were
//!   issued. An unused app lets its access token lapse, so the server's idle timeout
//!   still means something; the next request refreshes first.
//! * Near the idle end an app in use refreshes (a refresh extends the idle deadline)
//!   instead of warning; an idle app gets `expiring` `expiringLeadSeconds` before the end.
//!   The absolute end cannot be extended and is always warned about.
//! * After a transient failure the next attempt waits for the backoff (`retry_at`).
//! * At the end the session is expired.

#[allow(unused_imports)]
use crate::prelude::*;
/// Which deadline ends the session first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The idle timeout: no refresh or extend for too long.
    Idle,
    /// The absolute lifetime.
    Absolute,
}

impl EndReason {
    /// `"idle"` or `"absolute"`, as in the `expiring` event's `detail.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Absolute => "absolute",
        }
    }
}

/// The deadlines of the current tokens, in server milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// When the tokens were issued (`server_time`).
    pub issued_at: i64,
    /// When the access token expires.
    pub access_expires_at: i64,
    /// When the session ends unless refreshed or extended.
    pub idle_expires_at: i64,
    /// When the session ends at the latest.
    pub session_expires_at: i64,
}

/// Shortest and longest head start of a refresh before the access token expires.
const MIN_MARGIN_MS: i64 = 1_000;
const MAX_MARGIN_MS: i64 = 60_000;

impl Timeline {
    /// Builds the timeline of a token response (all inputs in seconds).
    pub fn from_token_response(
        server_time: i64,
        expires_in: u64,
        idle_expires_at: i64,
        session_expires_at: i64,
    ) -> Self {
        let issued_at = server_time.saturating_mul(1000);
        let lifetime = i64::try_from(expires_in)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        Self {
            issued_at,
            access_expires_at: issued_at.saturating_add(lifetime),
            idle_expires_at: idle_expires_at.saturating_mul(1000),
            session_expires_at: session_expires_at.saturating_mul(1000),
        }
    }

    /// The deadline that comes first and why. On a tie the absolute end wins: it is the
    /// one no refresh can move.
    pub fn end(&self) -> (i64, EndReason) {
        if self.idle_expires_at < self.session_expires_at {
            (self.idle_expires_at, EndReason::Idle)
        } else {
            (self.session_expires_at, EndReason::Absolute)
        }
    }

    /// How long before the access token's expiry a refresh starts: a quarter of its
    /// lifetime, between one second and one minute.
    pub fn refresh_margin_ms(&self) -> i64 {
        let lifetime = self.access_expires_at.saturating_sub(self.issued_at);
        (lifetime / 4).clamp(MIN_MARGIN_MS, MAX_MARGIN_MS)
    }

    /// From when the access token is due for a refresh.
    pub fn refresh_due_at(&self) -> i64 {
        self.access_expires_at
            .saturating_sub(self.refresh_margin_ms())
    }

    /// Whether a request at `now` must wait for a refresh first.
    pub fn refresh_before_request(&self, now: i64) -> bool {
        now >= self.refresh_due_at()
    }

    /// Whether the access token can still be sent at `now`.
    pub fn access_token_valid(&self, now: i64) -> bool {
        now < self.access_expires_at
    }

    /// Whether the session has passed its end at `now`.
    pub fn ended(&self, now: i64) -> Option<EndReason> {
        let (end, reason) = self.end();
        (now >= end).then_some(reason)
    }
}

/// Everything besides the timeline that the plan depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// The server's time now.
    pub now: i64,
    /// The last time the app was used (a request or `touch()`), if ever.
    pub last_activity: Option<i64>,
    /// How long before the end `expiring` fires.
    pub expiring_lead_ms: i64,
    /// The end for which `expiring` already fired (it fires once per end).
    pub expiring_fired_for: Option<i64>,
    /// After a transient failure: no refresh attempt before this time.
    pub retry_at: Option<i64>,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing now.
    Wait,
    /// Refresh the tokens.
    Refresh,
    /// Fire `expiring`, then record `end` as warned about.
    Expiring {
        /// Which deadline.
        reason: EndReason,
        /// Whole seconds left, rounded up.
        seconds_left: u64,
        /// The deadline warned about.
        end: i64,
    },
    /// The session is over.
    Expired(EndReason),
}

/// The answer of [`plan`]: do `action` now, then ask again at `wake_at` (or on the next
/// activity, when there is nothing to wait for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// What to do now.
    pub action: Action,
    /// When to ask again, if anything is pending.
    pub wake_at: Option<i64>,
}

/// Decides what the session needs at `inputs.now`.
///
/// ```
/// use keybound_client::schedule::{plan, Action, Inputs, Timeline};
/// // Issued at t=0 s with a 300 s access token, 1800 s idle and 12 h absolute limits.
/// let t = Timeline::from_token_response(0, 300, 1_800, 43_200);
/// let idle = Inputs { now: 100_000, last_activity: None, expiring_lead_ms: 120_000,
///                     expiring_fired_for: None, retry_at: None };
/// // Unused since issue: nothing to do until the expiring warning.
/// assert_eq!(plan(&t, &idle).action, Action::Wait);
/// assert_eq!(plan(&t, &idle).wake_at, Some(1_680_000));
/// // Used, and the access token is due: refresh.
/// let busy = Inputs { now: 250_000, last_activity: Some(249_000), ..idle };
/// assert_eq!(plan(&t, &busy).action, Action::Refresh);
/// ```
pub fn plan(timeline: &Timeline, inputs: &Inputs) -> Plan {
    let now = inputs.now;
    let (end, reason) = timeline.end();
    if now >= end {
        return Plan {
            action: Action::Expired(reason),
            wake_at: None,
        };
    }
    let lead = inputs.expiring_lead_ms.max(0);
    let margin = timeline.refresh_margin_ms();
    let in_use = inputs
        .last_activity
        .is_some_and(|at| at >= timeline.issued_at);

    let mut refresh_at = timeline.refresh_due_at();
    if reason == EndReason::Idle {
        // Use near the idle end extends the session rather than warning about it; the
        // floor keeps a server that does not move the idle end from causing a refresh
        // per request.
        let idle_point = end
            .saturating_sub(lead.max(margin))
            .max(timeline.issued_at.saturating_add(margin));
        refresh_at = refresh_at.min(idle_point);
    }
    let retry_at = inputs.retry_at.unwrap_or(i64::MIN);
    if in_use && now >= refresh_at && now >= retry_at {
        return Plan {
            action: Action::Refresh,
            wake_at: None,
        };
    }

    let expiring_at = end.saturating_sub(lead);
    let warned = inputs.expiring_fired_for == Some(end);
    if !warned && now >= expiring_at {
        let left_ms = u64::try_from(end - now).unwrap_or(0);
        return Plan {
            action: Action::Expiring {
                reason,
                seconds_left: left_ms.div_ceil(1000),
                end,
            },
            wake_at: None,
        };
    }

    let mut wake = end;
    if !warned {
        wake = wake.min(expiring_at);
    }
    if in_use {
        wake = wake.min(refresh_at.max(retry_at));
    }
    Plan {
        action: Action::Wait,
        wake_at: Some(wake.max(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const S: i64 = 1000;

    /// Issued at 1000 s: access 300 s, idle end 1000+1800 s, absolute end 1000+43200 s.
    fn timeline() -> Timeline {
        Timeline::from_token_response(1000, 300, 2800, 44_200)
    }

    fn at(now_s: i64) -> Inputs {
        Inputs {
            now: now_s * S,
            last_activity: None,
            expiring_lead_ms: 120 * S,
            expiring_fired_for: None,
            retry_at: None,
        }
    }

    #[test]
    fn margins() {
        let t = timeline();
        assert_eq!(t.refresh_margin_ms(), 60 * S);
        assert_eq!(t.refresh_due_at(), 1240 * S);
        let short = Timeline::from_token_response(0, 4, 100, 200);
        assert_eq!(short.refresh_margin_ms(), S);
        let tiny = Timeline::from_token_response(0, 2, 100, 200);
        assert_eq!(tiny.refresh_margin_ms(), S);
        let mid = Timeline::from_token_response(0, 20, 100, 200);
        assert_eq!(mid.refresh_margin_ms(), 5 * S);
    }

    #[test]
    fn an_app_in_use_refreshes_when_due() {
        let t = timeline();
        let busy = Inputs {
            last_activity: Some(1100 * S),
            ..at(1200)
        };
        assert_eq!(
            plan(&t, &busy),
            Plan {
                action: Action::Wait,
                wake_at: Some(1240 * S)
            }
        );
        let due = Inputs {
            last_activity: Some(1100 * S),
            ..at(1240)
        };
        assert_eq!(plan(&t, &due).action, Action::Refresh);
    }

    #[test]
    fn an_unused_app_does_not_refresh() {
        let t = timeline();
        // Activity before the tokens were issued does not count.
        let stale = Inputs {
            last_activity: Some(999 * S),
            ..at(1290)
        };
        assert_eq!(plan(&t, &stale).action, Action::Wait);
        // It sleeps until the expiring warning.
        assert_eq!(plan(&t, &stale).wake_at, Some(2680 * S));
    }

    #[test]
    fn an_idle_app_is_warned_then_expires() {
        let t = timeline();
        let p = plan(&t, &at(2680));
        assert_eq!(
            p.action,
            Action::Expiring {
                reason: EndReason::Idle,
                seconds_left: 120,
                end: 2800 * S
            }
        );
        let warned = Inputs {
            expiring_fired_for: Some(2800 * S),
            ..at(2700)
        };
        assert_eq!(
            plan(&t, &warned),
            Plan {
                action: Action::Wait,
                wake_at: Some(2800 * S)
            }
        );
        assert_eq!(plan(&t, &at(2800)).action, Action::Expired(EndReason::Idle));
    }

    #[test]
    fn seconds_left_round_up() {
        let t = timeline();
        let p = plan(
            &t,
            &Inputs {
                now: 2700 * S + 1,
                ..at(0)
            },
        );
        assert!(matches!(
            p.action,
            Action::Expiring {
                seconds_left: 100,
                ..
            }
        ));
    }

    #[test]
    fn use_near_the_idle_end_refreshes_instead_of_warning() {
        // Access tokens outlive the idle window here, so only the idle point helps.
        let t = Timeline::from_token_response(1000, 3600, 1300, 44_200);
        let busy = Inputs {
            last_activity: Some(1170 * S),
            ..at(1180)
        };
        assert_eq!(plan(&t, &busy).action, Action::Refresh);
        let early = Inputs {
            last_activity: Some(1100 * S),
            ..at(1100)
        };
        assert_eq!(plan(&t, &early).wake_at, Some(1180 * S));
    }

    #[test]
    fn the_idle_point_never_comes_sooner_than_one_margin_after_issue() {
        // Idle window (20 s) shorter than the lead (120 s): without the floor every
        // request would refresh.
        let t = Timeline::from_token_response(1000, 3600, 1020, 44_200);
        let busy = Inputs {
            last_activity: Some(1001 * S),
            ..at(1001)
        };
        // Not a refresh yet: the warning fires instead.
        assert!(matches!(plan(&t, &busy).action, Action::Expiring { .. }));
        let warned = Inputs {
            expiring_fired_for: Some(1020 * S),
            ..busy
        };
        assert_eq!(plan(&t, &warned).wake_at, Some(1020 * S));
    }

    #[test]
    fn the_absolute_end_is_always_warned_about() {
        let t = Timeline::from_token_response(1000, 300, 50_000, 1200);
        assert_eq!(t.end(), (1200 * S, EndReason::Absolute));
        let busy = Inputs {
            last_activity: Some(1081 * S),
            ..at(1081)
        };
        assert_eq!(
            plan(&t, &busy).action,
            Action::Expiring {
                reason: EndReason::Absolute,
                seconds_left: 119,
                end: 1200 * S
            }
        );
        // A tie between idle and absolute end reports the absolute one.
        let tie = Timeline::from_token_response(1000, 300, 1200, 1200);
        assert_eq!(tie.end().1, EndReason::Absolute);
    }

    #[test]
    fn a_failed_refresh_waits_for_the_backoff() {
        let t = timeline();
        let backing_off = Inputs {
            last_activity: Some(1250 * S),
            retry_at: Some(1255 * S),
            ..at(1250)
        };
        assert_eq!(
            plan(&t, &backing_off),
            Plan {
                action: Action::Wait,
                wake_at: Some(1255 * S)
            }
        );
        let later = Inputs {
            now: 1255 * S,
            ..backing_off
        };
        assert_eq!(plan(&t, &later).action, Action::Refresh);
    }

    #[test]
    fn a_backoff_does_not_hold_back_the_warning() {
        let t = timeline();
        let p = plan(
            &t,
            &Inputs {
                last_activity: Some(2690 * S),
                retry_at: Some(2790 * S),
                ..at(2690)
            },
        );
        assert!(matches!(p.action, Action::Expiring { .. }));
    }

    #[test]
    fn request_path() {
        let t = timeline();
        assert!(!t.refresh_before_request(1239 * S));
        assert!(t.refresh_before_request(1240 * S));
        assert!(t.access_token_valid(1299 * S));
        assert!(!t.access_token_valid(1300 * S));
        assert_eq!(t.ended(2799 * S), None);
        assert_eq!(t.ended(2800 * S), Some(EndReason::Idle));
    }

    #[test]
    fn the_wake_time_is_never_in_the_past() {
        let t = timeline();
        for now in (1000..2800).step_by(7) {
            for activity in [None, Some(1000 * S), Some(now * S)] {
                let inputs = Inputs {
                    last_activity: activity,
                    expiring_fired_for: Some(2800 * S),
                    ..at(now)
                };
                let p = plan(&t, &inputs);
                if let Some(wake) = p.wake_at {
                    assert!(wake >= now * S);
                }
            }
        }
    }
}
