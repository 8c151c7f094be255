//! keybound's browser SDK, compiled to WebAssembly and published as the npm package
//! `keybound`.
//!
//! Every request the app sends through `kb.fetch()` carries a DPoP proof (RFC 9449)
//! signed by a device key that cannot leave the browser: a non-extractable WebCrypto
//! Ed25519 key kept in IndexedDB, or, where the browser lacks WebCrypto Ed25519, an
//! ed25519-dalek key inside this module whose seed is stored encrypted under a
//! non-extractable AES-GCM key. Proofs are built by [`keybound_proto::ProofBuilder`],
//! the same code the server checks them with.
//!
//! The crate has two halves:
//! * target-independent logic, unit-tested natively: the session [`state`] machine, the
//!   refresh and warning [`schedule`], retry [`Backoff`], the [`ServerClock`] offset,
//!   the meaning of server [`answer`]s, [`NonceJar`] and [`SessionTokens`];
//! * the browser engine (`wasm32` only): key store, IndexedDB, WebCrypto, Web Locks,
//!   BroadcastChannel, timers, and the `Core` class the JavaScript package wraps.
//!
//! The JavaScript API (`Keybound.init`, `kb.login`, `kb.fetch`, events, …) is
//! documented in the package's `index.d.ts`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod answer;
mod backoff;
mod clock;
mod error;
mod nonce;
pub mod schedule;
pub mod state;
mod tokens;

#[cfg(target_arch = "wasm32")]
mod browser;

pub use backoff::Backoff;
pub use clock::{ServerClock, parse_http_date};
pub use error::ClientError;
pub use nonce::{NonceJar, origin_of};
pub use state::{SessionState, Terminal, Transition};
pub use tokens::SessionTokens;

#[cfg(target_arch = "wasm32")]
pub use browser::Core;
