//! The browser engine: everything that needs `wasm32` and the Web platform.

mod core;
mod flight;
mod idb;
mod js;
mod keys;
mod lock;
mod net;
mod storage;

#[cfg(test)]
mod tests;

pub use self::core::Core;
