//! What another tab's message means. Tabs of one storage name share a BroadcastChannel:
//! `sync` (new tokens in storage), `login` (a new session, maybe a new key) and `ended`
//! (with the state and the session id).

#[allow(unused_imports)]
use crate::prelude::*;

use super::Engine;
use crate::Terminal;

impl Engine {
    /// Reads a message `{kind, state, sid}` from another tab. Returns 0 (nothing more
    /// to do; an ending was applied), 1 (re-read the session from storage) or 2
    /// (re-read the device key too).
    pub fn on_message(
        &mut self,
        kind: Option<&str>,
        state: Option<&str>,
        session_id: Option<&str>,
    ) -> u32 {
        match kind {
            Some("sync") => 1,
            Some("login") => 2,
            Some("ended") => {
                let Some(terminal) = state.and_then(Terminal::parse) else {
                    return 0;
                };
                if terminal == Terminal::Closed {
                    // Another tab logged out and deleted the shared device key.
                    self.key = None;
                }
                let session_id = session_id.filter(|s| !s.is_empty());
                if session_id.is_none() || session_id == self.session_id().as_deref() {
                    self.end_local(terminal, None);
                }
                0
            }
            _ => 0,
        }
    }

    /// Whether waking up (the tab became visible, the network came back) calls for a
    /// re-read of storage: timers may have been throttled meanwhile.
    pub fn wants_wake(&self, hidden: bool) -> bool {
        !hidden && self.state.is_active()
    }
}
