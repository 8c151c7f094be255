//! Which origins get credentials: the endpoint's, and those the app allowed
//! (`allowedOrigins`). Signed requests go nowhere else, and only answers from these
//! origins may change the session.

#[allow(unused_imports)]
use crate::prelude::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::wasm_bindgen;

use keybound_proto::normalize_htu;

use super::Engine;
use crate::{ClientError, origin_of};

/// `origin` as an allowed origin: an http(s) `scheme://host[:port]` with no path but
/// `/`, no query or fragment, normalised as `htu` is.
fn parse_origin(origin: &str) -> Option<String> {
    let normal = origin_of(origin)?;
    let htu = normalize_htu(origin).ok()?;
    let plain = origin.bytes().all(|b| b != b'?' && b != b'#');
    (plain && htu.len() == normal.len() + 1).then_some(normal)
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen)]
impl Engine {
    /// Allows signed requests (access token and proof) to `origin`
    /// (`https://api.example.com`). `false` (and `invalid_option`) when it is not an
    /// http(s) origin: a path, query, user info or wildcard is refused.
    pub fn allow_origin(&mut self, origin: &str) -> bool {
        match parse_origin(origin) {
            Some(origin) => {
                if !self.allowed.contains(&origin) {
                    self.allowed.push(origin);
                }
                true
            }
            None => {
                self.fail(ClientError::InvalidOption {
                    reason: "allowedOrigins must be http(s) origins (scheme://host[:port])",
                });
                false
            }
        }
    }

}

impl Engine {
    /// Whether signed requests to `url` may go out, and its answers be heard.
    pub(super) fn allows(&self, url: &str) -> bool {
        origin_of(url).is_some_and(|origin| self.allowed.contains(&origin))
    }
}
