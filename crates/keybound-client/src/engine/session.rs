//! The session: tokens taken up from answers and from storage, endings, the refresh
//! decisions around the cross-tab lock, and the one timer.

#[allow(unused_imports)]
use crate::prelude::*;

use keybound_proto::TokenResponse;

use super::{Engine, Event, Live, Staged};
use crate::schedule::{self, Action, EndReason, Inputs, Timeline};
use crate::{ClientError, ServerClock, SessionTokens, Terminal, Transition};

/// What [`Engine::adopt_pending`] did, as bits.
pub(crate) mod adopted {
    /// The tokens were taken up (`login` or `refreshed` is queued).
    pub(crate) const TAKEN: u32 = 1;
    /// They belong to a new session (other tabs hear `login`, else `sync`).
    pub(crate) const NEW_SESSION: u32 = 2;
}

/// A whole number that fits an `i64` exactly, from JavaScript.
fn whole(n: f64) -> Option<i64> {
    ((-9.0e15..9.0e15).contains(&n) && (n as i64) as f64 == n).then_some(n as i64)
}

/// A stored deadline, or why the record is unusable.
fn stored_number(numbers: &[f64], i: usize) -> Result<i64, ClientError> {
    numbers
        .get(i)
        .copied()
        .and_then(whole)
        .ok_or(ClientError::Storage {
            op: "stored record is malformed",
        })
}

fn end_reason(index: u32) -> Option<EndReason> {
    match index {
        1 => Some(EndReason::Idle),
        2 => Some(EndReason::Absolute),
        _ => None,
    }
}

impl Engine {
    // ---- tokens from an answer ---------------------------------------------------------

    /// Checks a token response (the members of its JSON body, `undefined`/`NaN` when
    /// absent or of the wrong type) answered to a request sent at `sent` and received
    /// at `received`, learns the server's clock from it and keeps the tokens until the
    /// driver has stored them. `false` (and `invalid_response`) when it is not one.
    #[allow(clippy::too_many_arguments)]
    pub fn take_response(
        &mut self,
        access_token: Option<String>,
        token_type: Option<String>,
        expires_in: f64,
        refresh_token: Option<String>,
        session_id: Option<String>,
        session_expires_at: f64,
        idle_expires_at: f64,
        server_time: f64,
        sent: f64,
        received: f64,
    ) -> bool {
        let response = (|| {
            Some(TokenResponse {
                access_token: access_token?,
                token_type: token_type?,
                expires_in: u64::try_from(whole(expires_in)?).ok()?,
                refresh_token: refresh_token?,
                session_id: session_id?,
                session_expires_at: whole(session_expires_at)?,
                idle_expires_at: whole(idle_expires_at)?,
                server_time: whole(server_time)?,
            })
        })();
        let Some(response) = response else {
            self.fail(ClientError::InvalidResponse {
                reason: "not a token response",
            });
            return false;
        };
        let server_time = response.server_time;
        match SessionTokens::from_response(response) {
            Ok(tokens) => {
                self.clock = self.clock.learn(server_time, sent, received);
                self.pending = Some(tokens);
                true
            }
            Err(error) => {
                self.fail(error);
                false
            }
        }
    }

    /// The pending tokens as the plaintext the driver seals for storage.
    pub fn pending_sealable(&self) -> Option<String> {
        let plain = self.pending.as_ref()?.sealable();
        // Token characters are ASCII, so this never fails.
        String::from_utf8(plain.to_vec()).ok()
    }

    /// The pending session's id.
    pub fn pending_session_id(&self) -> Option<String> {
        self.pending.as_ref().map(|t| t.session_id().to_owned())
    }

    /// What the storage record of the pending tokens holds in clear: clock offset,
    /// issue time, access-token expiry, idle end, absolute end (server milliseconds).
    pub fn pending_numbers(&self) -> Vec<f64> {
        let Some(tokens) = &self.pending else {
            return Vec::new();
        };
        let t = tokens.timeline();
        [
            self.clock.offset_ms(),
            t.issued_at,
            t.access_expires_at,
            t.idle_expires_at,
            t.session_expires_at,
        ]
        .into_iter()
        .map(|n| n as f64)
        .collect()
    }

    /// Takes up the pending tokens, stored with `stamp`. Returns bits: 1 taken up, 2 a
    /// new session (see the driver's broadcast).
    pub fn adopt_pending(&mut self, stamp: &str) -> u32 {
        let Some(tokens) = self.pending.take() else {
            return 0;
        };
        let new_session = self.session_id().as_deref() != Some(tokens.session_id());
        let taken = self.adopt(
            Live {
                tokens,
                stamp: stamp.to_owned(),
            },
            None,
        );
        u32::from(taken) * adopted::TAKEN + u32::from(new_session) * adopted::NEW_SESSION
    }

    // ---- tokens from storage -----------------------------------------------------------

    /// Stages the stored `session` record: a live one (the sealed tokens decrypted,
    /// `numbers` as [`pending_numbers`](Self::pending_numbers) gives them).
    /// `false` (and `storage_error`) when it is malformed.
    pub fn stage_live(
        &mut self,
        plain: &str,
        session_id: &str,
        jkt: &str,
        stamp: &str,
        numbers: &[f64],
    ) -> bool {
        let staged = (|| {
            let timeline = Timeline {
                issued_at: stored_number(numbers, 1)?,
                access_expires_at: stored_number(numbers, 2)?,
                idle_expires_at: stored_number(numbers, 3)?,
                session_expires_at: stored_number(numbers, 4)?,
            };
            let tokens =
                SessionTokens::from_sealed(plain.as_bytes(), session_id.to_owned(), timeline)?;
            Ok(Staged::Live {
                live: Live {
                    tokens,
                    stamp: stamp.to_owned(),
                },
                jkt: jkt.to_owned(),
                offset_ms: stored_number(numbers, 0)?,
            })
        })();
        match staged {
            Ok(staged) => {
                self.staged = staged;
                true
            }
            Err(error) => {
                self.staged = Staged::Nothing;
                self.fail(error);
                false
            }
        }
    }

    /// Stages a stored marker of how session `session_id` ended (`expired`, …), or,
    /// for anything else, no session.
    pub fn stage_ended(&mut self, terminal: &str, session_id: Option<&str>) {
        self.staged = match Terminal::parse(terminal) {
            Some(terminal) => Staged::Ended {
                terminal,
                session_id: session_id.map(str::to_owned),
            },
            None => Staged::Nothing,
        };
    }

    /// Stages "no session stored".
    pub fn stage_nothing(&mut self) {
        self.staged = Staged::Nothing;
    }

    /// The staged record's session id.
    pub fn staged_session_id(&self) -> Option<String> {
        match &self.staged {
            Staged::Live { live, .. } => Some(live.tokens.session_id().to_owned()),
            Staged::Ended { session_id, .. } => session_id.clone(),
            Staged::Nothing => None,
        }
    }

    /// Start-up: resumes the staged session if it is bound to the device key. Returns 0
    /// (nothing to resume), 1 (active) or 2 (it ran out while no page was open: the
    /// state is `expired` and the driver stores the ending, without an event).
    pub fn resume(&mut self, now: f64) -> u32 {
        let Some((live, offset_ms)) = self.staged_bound() else {
            return 0;
        };
        self.clock = ServerClock::with_offset(offset_ms);
        if live.tokens.timeline().ended(self.now(now)).is_some() {
            self.state = crate::SessionState::Ended(Terminal::Expired);
            return 2;
        }
        self.state = crate::SessionState::Active;
        self.live = Some(live);
        1
    }

    /// Another tab changed storage (or this one woke up): takes up the staged session,
    /// or ends this one if the staged marker says it ended.
    pub fn reload(&mut self) {
        if let Some((live, offset_ms)) = self.staged_bound() {
            self.adopt(live, Some(offset_ms));
            return;
        }
        if let Staged::Ended {
            terminal,
            session_id,
        } = &self.staged
        {
            if session_id.is_some() && *session_id == self.session_id() {
                self.end_local(*terminal, None);
            }
        }
    }

    // ---- requests and refreshes --------------------------------------------------------

    /// A request is about to be signed at `now`: needs an active session (else 0 and
    /// the error), counts as use, and says whether to refresh first (2) or not (1).
    pub fn begin_request(&mut self, now: f64) -> u32 {
        if !self.require_active() {
            return 0;
        }
        let now = self.now(now);
        self.last_activity = Some(now);
        match &self.live {
            None => {
                self.fail(ClientError::NotLoggedIn);
                0
            }
            Some(live) if live.tokens.timeline().refresh_before_request(now) => 2,
            Some(_) => 1,
        }
    }

    /// After the refresh a request waited for failed with `code`/`status`: whether the
    /// request may still go out (a transient failure while the access token is valid).
    pub fn go_on_after_failed_refresh(&self, code: &str, status: u16, now: f64) -> bool {
        let valid = self
            .live
            .as_ref()
            .is_some_and(|l| l.tokens.timeline().access_token_valid(self.now(now)));
        valid && Engine::is_transient(code, status)
    }

    /// The app is in use (`touch()`): noted while a session is active.
    pub fn touch(&mut self, now: f64) {
        if self.state.is_active() {
            self.last_activity = Some(self.now(now));
        }
    }

    /// Under the session lock, with the stored record staged: decides a refresh. `seen`
    /// is the stamp of the tokens found due (`None` for `extend()`, which always asks
    /// the server). Returns 0 (no session: the error says why, and an ending is
    /// applied), 1 (another tab refreshed: its tokens are taken up) or 2 (send the
    /// refresh, with [`refresh_body`](Self::refresh_body)).
    pub fn refresh_plan(&mut self, seen: Option<&str>, forced: bool, now: f64) -> u32 {
        if self.key.is_none() {
            self.fail(ClientError::NotLoggedIn);
            return 0;
        }
        if let Staged::Ended { terminal, .. } = &self.staged {
            let terminal = *terminal;
            self.end_local(terminal, None);
            self.fail(ClientError::SessionEnded(terminal));
            return 0;
        }
        let Some((live, offset_ms)) = self.staged_bound() else {
            if let Some(next) = self.state.apply(Transition::Forgotten) {
                self.state = next;
                self.live = None;
            }
            self.fail(ClientError::NotLoggedIn);
            return 0;
        };
        let fresh_elsewhere = !forced
            && seen != Some(live.stamp.as_str())
            && !live.tokens.timeline().refresh_before_request(self.now(now));
        self.adopt(live, Some(offset_ms));
        if fresh_elsewhere { 1 } else { 2 }
    }

    /// The refresh request's JSON body, with the stored refresh token.
    pub fn refresh_body(&self) -> Option<String> {
        let tokens = match &self.staged {
            Staged::Live { live, .. } => &live.tokens,
            _ => &self.live.as_ref()?.tokens,
        };
        let mut body = String::from(r#"{"refresh_token":""#);
        body.push_str(tokens.refresh_token());
        body.push_str(r#""}"#);
        Some(body)
    }

    /// A refresh failed with `code`: unless the session is gone, the next attempt waits
    /// for the backoff (`random` is any uniformly random 32-bit number). Returns whether
    /// the failure is worth telling the app (`error` event): not when the session is gone.
    pub fn refresh_failed(&mut self, code: &str, random: u32, now: f64) -> bool {
        if code == keybound_proto::wire::code::NOT_LOGGED_IN
            || Terminal::from_error_code(code).is_some()
        {
            return false;
        }
        let delay = self.backoff.next_delay_ms(random);
        let at = self
            .now(now)
            .saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        // A `429` said how long to wait: not before that.
        self.retry_at = Some(at.max(self.retry_not_before.take().unwrap_or(at)));
        true
    }

    /// Under the session lock, with the stored record staged, when the local deadline
    /// passed: `true` if another tab kept the session going (its tokens are taken up),
    /// `false` if it expired (the driver ends it everywhere).
    pub fn kept_alive(&mut self, now: f64) -> bool {
        let now = self.now(now);
        let mine = self.stamp();
        let Some((live, offset_ms)) = self.staged_bound() else {
            return false;
        };
        let newer = Some(&live.stamp) != mine.as_ref();
        if newer && live.tokens.timeline().ended(now).is_none() {
            self.adopt(live, Some(offset_ms));
            return true;
        }
        false
    }

    // ---- endings -----------------------------------------------------------------------

    /// Applies an ending here (`expired`, `revoked`, `closed`; `reason` 1 idle, 2
    /// absolute, 0 none): the event is queued once, however often the ending is heard.
    /// Returns whether anything changed.
    pub fn end(&mut self, terminal: &str, reason: u32) -> bool {
        Terminal::parse(terminal).is_some_and(|t| self.end_local(t, end_reason(reason)))
    }

    // ---- the timer ---------------------------------------------------------------------

    /// Asks the schedule what to do at `now`. Returns `[0, delay]` (wait, then ask
    /// again after `delay` ms; `-1`: only on activity), `[1]` (refresh in the
    /// background), `[2, reason]` (the session reached its end: expire it, reason 1 idle
    /// or 2 absolute) or `[3]` (no session: nothing to wait for). `expiring` warnings
    /// are queued as events along the way.
    pub fn tick(&mut self, now: f64) -> Vec<f64> {
        // Each pass either returns or records a warning, so three passes are enough.
        for _ in 0..3 {
            let timeline = match (&self.live, self.state.is_active()) {
                (Some(live), true) => *live.tokens.timeline(),
                _ => return vec![3.0],
            };
            let server_now = self.now(now);
            let inputs = Inputs {
                now: server_now,
                last_activity: self.last_activity,
                expiring_lead_ms: self.expiring_lead_ms,
                expiring_fired_for: self.expiring_fired_for,
                retry_at: self.retry_at,
            };
            let plan = schedule::plan(&timeline, &inputs);
            match plan.action {
                Action::Wait => {
                    // A little late rather than early: browsers may fire timers a
                    // millisecond early, which would only cause an extra wake-up.
                    // The two may be further apart than an `i64` holds: the delay is
                    // reckoned in `f64` (a wake-up already due is a delay of 0).
                    let delay = plan.wake_at.map_or(-1.0, |at| {
                        let delay = at as f64 - server_now as f64 + 5.0;
                        delay.clamp(0.0, f64::from(i32::MAX))
                    });
                    return vec![0.0, delay];
                }
                Action::Refresh => return vec![1.0],
                Action::Expired(reason) => {
                    let reason = match reason {
                        EndReason::Idle => 1.0,
                        EndReason::Absolute => 2.0,
                    };
                    return vec![2.0, reason];
                }
                Action::Expiring {
                    reason,
                    seconds_left,
                    end,
                } => {
                    self.expiring_fired_for = Some(end);
                    self.events.push(Event::Expiring {
                        seconds_left,
                        reason,
                    });
                }
            }
        }
        vec![0.0, -1.0]
    }
}

impl Engine {
    /// The staged live record, if it is bound to the device key.
    fn staged_bound(&self) -> Option<(Live, i64)> {
        match &self.staged {
            Staged::Live {
                live,
                jkt,
                offset_ms,
            } if Some(jkt.as_str()) == self.key_thumbprint() => Some((live.clone(), *offset_ms)),
            _ => None,
        }
    }

    /// Takes over tokens (from a login, a refresh here, or another tab's storage record)
    /// and queues `login` or `refreshed`. Returns whether they were taken.
    fn adopt(&mut self, live: Live, offset_ms: Option<i64>) -> bool {
        let (same_session, same_stamp) = match &self.live {
            Some(current) => (
                current.tokens.session_id() == live.tokens.session_id(),
                current.stamp == live.stamp,
            ),
            None => (false, false),
        };
        let ended_here = self.ended.as_deref() == Some(live.tokens.session_id());
        if same_stamp || ended_here {
            // Nothing new, or late tokens of a session that already ended.
            return false;
        }
        if let Some(offset) = offset_ms {
            self.clock = ServerClock::with_offset(offset);
        }
        self.live = Some(live);
        if !same_session {
            if let Some(next) = self.state.apply(Transition::LoggedIn) {
                self.state = next;
            }
            self.expiring_fired_for = None;
            self.last_activity = None;
        }
        self.retry_at = None;
        self.backoff.reset();
        self.events.push(if same_session {
            Event::Refreshed
        } else {
            Event::Login
        });
        true
    }

    pub(super) fn end_local(&mut self, terminal: Terminal, reason: Option<EndReason>) -> bool {
        let Some(next) = self.state.apply(Transition::Ended(terminal)) else {
            return false;
        };
        let session_id = self.session_id();
        self.state = next;
        self.live = None;
        self.ended.clone_from(&session_id);
        if terminal == Terminal::Closed {
            // Logging out (here or in another tab) deleted the shared device key.
            self.key = None;
        }
        self.events.push(Event::Ended {
            terminal,
            reason,
            session_id,
        });
        true
    }
}
