//! Which origins get credentials: the endpoint's, and those the app allowed
//! (`allowedOrigins`). Signed requests go nowhere else, and only answers from these
//! origins may change the session.

#[allow(unused_imports)]
use crate::prelude::*;

use super::Engine;
use crate::{ClientError, origin_of};

/// `origin` as an allowed origin: an http(s) `scheme://host[:port]` as the browser's
/// URL parser writes it (the driver passes `new URL(origin).href`), with nothing after
/// the host but the one `/` the parser adds.
fn parse_origin(origin: &str) -> Option<String> {
    let bare = origin.strip_suffix('/').unwrap_or(origin);
    origin_of(bare).filter(|o| *o == bare).map(str::to_owned)
}

impl Engine {
    /// Allows signed requests to each origin of `origins` (one a line,
    /// `https://api.example.com`). `false` (and `invalid_option`) when one is not an
    /// http(s) origin: a path, query, user info or wildcard is refused.
    pub(super) fn allow_origins(&mut self, origins: &str) -> bool {
        for origin in origins.split('\n').filter(|o| !o.is_empty()) {
            match parse_origin(origin) {
                Some(origin) => self.allowed.push(origin),
                None => {
                    self.fail(ClientError::InvalidOption {
                        reason: "allowedOrigins must be http(s) origins (scheme://host[:port])",
                    });
                    return false;
                }
            }
        }
        true
    }

    /// Whether signed requests to `url` may go out, and its answers be heard.
    pub(super) fn allows(&self, url: &str) -> bool {
        origin_of(url).is_some_and(|origin| self.allowed.iter().any(|a| a == origin))
    }
}
