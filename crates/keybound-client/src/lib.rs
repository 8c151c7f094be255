//! keybound's browser SDK engine, compiled to WebAssembly and published in the npm
//! package `keybound`.
//!
//! Every request the app sends through `kb.fetch()` carries a DPoP proof (RFC 9449)
//! signed by a device key that cannot leave the browser: a non-extractable WebCrypto
//! Ed25519 key kept in IndexedDB (proofs `EdDSA`), or, where the browser lacks WebCrypto
//! Ed25519, a non-extractable WebCrypto ECDSA P-256 key (proofs `ES256`). Only when the
//! app asks for it (`forceWasmKeys`) is it an Ed25519 key in the separately loaded
//! fallback module (`keybound-fallback`) whose seed is stored encrypted under a
//! non-extractable AES-GCM key. Proofs are built by [`keybound_proto::ProofBuilder`],
//! the same code the server checks them with.
//!
//! The crate is the SDK's [`Engine`]: every decision as a synchronous state machine
//! (key choice, proofs, the refresh [`schedule`] and grace, the session [`state`]
//! machine, what server [`answer`]s mean and the one retry budget of an exchange, the
//! [`ServerClock`] offset, [`NonceJar`]). It takes events (an answer arrived, a
//! stored record was read, a timer fired, another tab spoke) and returns what to do;
//! the package's JavaScript driver (`js/driver.js`, `js/store.js`) carries that out
//! with `fetch`, IndexedDB, WebCrypto, Web Locks, BroadcastChannel and timers. So the
//! module holds no futures, closures or per-call glue, and everything here is tested
//! natively. The module build (feature `module`) links no standard library, and the
//! driver reaches it through one call (`engine_call`, see `calls`).
//!
//! What the browser already does well, the driver asks the browser for and hands the
//! engine the result to decide on: URLs as the browser's parser writes them (the `htu`
//! signed is exactly the URL `fetch` sends, and origins compare as text), `Date` and
//! `Retry-After` dates as `Date.parse` reads them, and SHA-256 (the key's thumbprint, a
//! token's `ath`) from WebCrypto. The module carries no URL, date or SHA-256 code.
//!
//! The JavaScript API (`Keybound.init`, `kb.login`, `kb.fetch`, events, …) is
//! documented in the package's `index.d.ts`.
//!
//! # Storage
//!
//! One IndexedDB database per `storageName` holds the device key (a non-extractable
//! `CryptoKey`, or the module key's seed sealed with AES-GCM), a non-extractable AES-GCM
//! "vault" key (created when something is first sealed), and the session: deadlines in
//! clear, both tokens sealed under the vault key with the session id and key thumbprint
//! as associated data, and a random `stamp` that changes with every write. When a session
//! ends, its record is replaced by a marker saying how (`revoked`, …). Logout deletes
//! the device key too. Where IndexedDB cannot be opened, the same records live in the
//! tab's memory (`kb.persistent === false`).
//!
//! # Tabs
//!
//! Every refresh, expiry and logout runs under the Web Lock `keybound:{name}:session`.
//! Under the lock a tab re-reads the stored session first: if the stamp changed since it
//! decided to refresh and the stored tokens are fresh, another tab refreshed and it takes
//! those; otherwise it refreshes with the *stored* refresh token (never an old copy in
//! memory, which would look like reuse to the server). The result is stored, then
//! announced on the BroadcastChannel `keybound:{name}` (`sync`, `login`, `ended`), on
//! which other tabs re-read storage or end their session. Within a tab, concurrent
//! callers share one refresh.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// The module every page downloads (feature `module`, which js/build.sh turns on) links
// no standard library: no formatting or panic machinery (a panic stops the module).
// Native builds and the wasm tests use `std` as usual.
#![cfg_attr(all(target_arch = "wasm32", feature = "module"), no_std)]

extern crate alloc;

/// What the standard prelude would give every module.
#[allow(unused_imports)]
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
    pub(crate) use alloc::{format, vec};
}

/// A panic stops the module without formatting anything: the engine has no panics
/// by design (no unwrap, no indexing it cannot prove), so this is only the backstop.
#[cfg(all(target_arch = "wasm32", feature = "module"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

pub mod answer;
mod backoff;
mod calls;
mod clock;
mod error;
mod nonce;
pub mod schedule;
pub mod state;
mod tokens;

mod engine;

pub use backoff::Backoff;
pub use clock::{ServerClock, epoch_secs};
pub use error::ClientError;
pub use nonce::{NonceJar, origin_of};
pub use state::{SessionState, Terminal, Transition};
pub use tokens::SessionTokens;

pub use calls::Calls;
#[cfg(target_arch = "wasm32")]
pub use calls::{engine_call, engine_free, engine_new};
pub use engine::{Engine, KeyKind};

/// The module's allocator: a small free list (with coalescing) instead of the standard
/// library's dlmalloc, about 5 KB less code in a module every page downloads; the
/// engine makes few, small allocations.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
