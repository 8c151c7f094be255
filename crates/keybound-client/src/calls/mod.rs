//! The module's one export: the driver calls the [`Engine`] by number, with its
//! arguments and result as bytes ([`codec`]), through a single wasm-bindgen method.
//!
//! One entry point instead of one export per engine method keeps the per-method glue
//! (a wasm shim and a JavaScript wrapper each) out of what every page downloads;
//! `js/engine.js` gives the driver the engine's method names back. The numbers are the
//! order of [`ops!`]'s list, which a test checks against `js/engine.js`.

#[allow(unused_imports)]
use crate::prelude::*;

pub(crate) mod codec;

use codec::{Args, Out};

use crate::Engine;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::wasm_bindgen;

/// The engine's methods the driver calls, in the order of their numbers.
macro_rules! ops {
    ($($name:ident),* $(,)?) => {
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum Op { $($name),* }
        const OPS: &[Op] = &[$(Op::$name),*];
        /// The names, as `js/engine.js` lists them.
        #[cfg(test)]
        pub(crate) const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

ops![
    url,
    take_error,
    next_event,
    state,
    session_id,
    stamp,
    deadlines,
    proof_input,
    proof_finish,
    access_token,
    answer,
    answer_error,
    key_kinds,
    key_jwk,
    set_key,
    keep_key,
    drop_key,
    thumbprint,
    key_kind,
    take_response,
    pending_sealable,
    pending_session_id,
    pending_numbers,
    adopt_pending,
    stage_live,
    stage_ended,
    stage_nothing,
    staged_session_id,
    resume,
    reload,
    begin_request,
    go_on_after_failed_refresh,
    touch,
    refresh_plan,
    refresh_body,
    refresh_failed,
    kept_alive,
    end,
    tick,
    on_message,
    wants_wake,
];

/// What a refused call answers: a tag no value has (the driver throws).
const REFUSED: u8 = 0xff;

/// One engine, called by number.
pub struct Calls {
    engine: Engine,
}

impl Calls {
    /// An engine made by [`Engine::new`] from the arguments `endpoint`,
    /// `expiring_lead_seconds` and `allowed_origins`; without them, one that refuses
    /// every session operation with `invalid_option`.
    pub fn new(args: &[u8]) -> Calls {
        let mut args = Args::new(args);
        let engine = match (args.str(), args.number(), args.str()) {
            (Some(endpoint), Some(lead), Some(origins)) => Engine::new(endpoint, lead, origins),
            _ => Engine::new("", 0.0, ""),
        };
        Calls { engine }
    }

    /// Calls the engine's method number `op` with `args`; its result, or a refused
    /// call (a single byte `0xff`) for an unknown number or arguments of the wrong
    /// shape.
    pub fn call(&mut self, op: u32, args: &[u8]) -> Vec<u8> {
        let mut out = Out::default();
        if self.dispatch(op, &mut Args::new(args), &mut out).is_none() {
            out.0.clear();
            out.0.push(REFUSED);
        }
        out.0
    }
}

/// The module's engines (one per `Keybound` object), by handle.
#[cfg(target_arch = "wasm32")]
static ENGINES: spin::Mutex<Vec<Option<Calls>>> = spin::Mutex::new(Vec::new());

/// Makes an engine ([`Calls::new`]) and returns its handle.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
pub fn engine_new(args: &[u8]) -> u32 {
    let mut engines = ENGINES.lock();
    let calls = Some(Calls::new(args));
    match engines.iter().position(Option::is_none) {
        Some(free) => {
            if let Some(slot) = engines.get_mut(free) {
                *slot = calls;
            }
            free as u32
        }
        None => {
            engines.push(calls);
            (engines.len() - 1) as u32
        }
    }
}

/// [`Calls::call`] on the engine `handle`; a refused call for a handle that is none.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
pub fn engine_call(handle: u32, op: u32, args: &[u8]) -> Vec<u8> {
    match ENGINES.lock().get_mut(handle as usize) {
        Some(Some(calls)) => calls.call(op, args),
        _ => vec![REFUSED],
    }
}

/// Drops the engine `handle` (`kb.dispose()`); its handle may be given out again.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
pub fn engine_free(handle: u32) {
    if let Some(slot) = ENGINES.lock().get_mut(handle as usize) {
        *slot = None;
    }
}

impl Calls {
    fn dispatch(&mut self, op: u32, a: &mut Args<'_>, out: &mut Out) -> Option<()> {
        let e = &mut self.engine;
        match *OPS.get(op as usize)? {
            Op::url => out.str(&e.url(a.str()?)),
            Op::take_error => out.maybe_str(e.take_error().as_deref()),
            Op::next_event => out.maybe_str(e.next_event().as_deref()),
            Op::state => out.str(&e.state()),
            Op::session_id => out.maybe_str(e.session_id().as_deref()),
            Op::stamp => out.maybe_str(e.stamp().as_deref()),
            Op::deadlines => out.numbers(&e.deadlines()),
            Op::proof_input => {
                let input = e.proof_input(
                    a.str()?,
                    a.str()?,
                    a.maybe_string()?,
                    a.maybe_str()?,
                    a.bytes()?,
                    a.number()?,
                );
                out.maybe_str(input.as_deref());
            }
            Op::proof_finish => out.str(&Engine::proof_finish(a.str()?, a.bytes()?)),
            Op::access_token => out.maybe_str(e.access_token().as_deref()),
            Op::answer => {
                let step = e.answer(
                    a.u32()?,
                    a.u32()?,
                    a.str()?,
                    a.u32()? as u16,
                    a.maybe_str()?,
                    a.maybe_str()?,
                    a.maybe_str()?,
                    a.maybe_str()?,
                    a.maybe_str()?,
                    a.number()?,
                    a.maybe_str()?,
                    a.number()?,
                    a.number()?,
                    a.number()?,
                );
                out.number(f64::from(step));
            }
            Op::answer_error => e.answer_error(),
            Op::key_kinds => out.str(&Engine::key_kinds(a.flag()?)),
            Op::key_jwk => out.maybe_str(e.key_jwk(a.str()?, a.bytes()?).as_deref()),
            Op::set_key => out.flag(e.set_key(a.str()?, a.bytes()?, a.str()?)),
            Op::keep_key => out.flag(e.keep_key(a.flag()?)),
            Op::drop_key => e.drop_key(),
            Op::thumbprint => out.maybe_str(e.thumbprint().as_deref()),
            Op::key_kind => out.maybe_str(e.key_kind().as_deref()),
            Op::take_response => {
                let taken = e.take_response(
                    a.maybe_string()?,
                    a.maybe_string()?,
                    a.number()?,
                    a.maybe_string()?,
                    a.maybe_string()?,
                    a.number()?,
                    a.number()?,
                    a.number()?,
                    a.number()?,
                    a.number()?,
                );
                out.flag(taken);
            }
            Op::pending_sealable => out.maybe_str(e.pending_sealable().as_deref()),
            Op::pending_session_id => out.maybe_str(e.pending_session_id().as_deref()),
            Op::pending_numbers => out.numbers(&e.pending_numbers()),
            Op::adopt_pending => out.number(f64::from(e.adopt_pending(a.str()?))),
            Op::stage_live => {
                let staged = e.stage_live(a.str()?, a.str()?, a.str()?, a.str()?, &a.numbers()?);
                out.flag(staged);
            }
            Op::stage_ended => e.stage_ended(a.str()?, a.maybe_str()?),
            Op::stage_nothing => e.stage_nothing(),
            Op::staged_session_id => out.maybe_str(e.staged_session_id().as_deref()),
            Op::resume => out.number(f64::from(e.resume(a.number()?))),
            Op::reload => e.reload(),
            Op::begin_request => out.number(f64::from(e.begin_request(a.number()?))),
            Op::go_on_after_failed_refresh => {
                let go_on = e.go_on_after_failed_refresh(a.str()?, a.u32()? as u16, a.number()?);
                out.flag(go_on);
            }
            Op::touch => e.touch(a.number()?),
            Op::refresh_plan => {
                let plan = e.refresh_plan(a.maybe_str()?, a.flag()?, a.number()?);
                out.number(f64::from(plan));
            }
            Op::refresh_body => out.maybe_str(e.refresh_body().as_deref()),
            Op::refresh_failed => {
                let report = e.refresh_failed(a.str()?, a.u32()?, a.number()?);
                out.flag(report);
            }
            Op::kept_alive => out.flag(e.kept_alive(a.number()?)),
            Op::end => out.flag(e.end(a.str()?, a.u32()?)),
            Op::tick => out.numbers(&e.tick(a.number()?)),
            Op::on_message => {
                let next = e.on_message(a.maybe_str()?, a.maybe_str()?, a.maybe_str()?);
                out.number(f64::from(next));
            }
            Op::wants_wake => out.flag(e.wants_wake(a.flag()?)),
        }
        Some(())
    }
}

#[cfg(test)]
mod tests;
