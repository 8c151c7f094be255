//! keybound server: verifies DPoP-signed requests and runs the session lifecycle.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::future::Future;
use std::pin::Pin;

mod clock;
mod keys;
pub mod lifecycle;
mod session_check;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use keybound_proto as proto;
pub use keys::{KeyError, KeyRing, ServerKey};
pub use lifecycle::{LifecycleError, SessionService};
pub use session_check::{AcceptAllSessions, SessionCheck, SessionDenied};

/// A boxed, sendable future, used by the object-safe async traits of this crate
/// (stores, hooks) so they can be held as `Arc<dyn Trait>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
