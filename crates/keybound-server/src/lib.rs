//! keybound server: verifies DPoP-signed requests and runs the session lifecycle.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
