use super::codec::{Args, Out};
use super::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// The driver's list of the engine's method names, in `js/engine.js`.
const DRIVER_LIST: &str = include_str!("../../../../js/engine.js");

fn args(write: impl FnOnce(&mut Out)) -> Vec<u8> {
    let mut out = Out::default();
    write(&mut out);
    out.0
}

fn op(name: &str) -> u32 {
    NAMES.iter().position(|n| *n == name).unwrap() as u32
}

fn engine() -> Calls {
    Calls::new(&args(|o| {
        o.str("https://api.example/session");
        o.number(120.0);
        o.str("");
    }))
}

#[test]
fn the_driver_numbers_the_methods_as_the_module_does() {
    let start = DRIVER_LIST.find("const NAMES = [").unwrap();
    let list = &DRIVER_LIST[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    let names: Vec<&str> = list
        .split(',')
        .map(|n| n.trim().trim_matches('"'))
        .filter(|n| !n.is_empty())
        .collect();
    assert_eq!(names, NAMES);
}

#[test]
fn a_call_reaches_the_engine_and_its_result_comes_back() {
    let mut calls = engine();
    let url = calls.call(op("url"), &args(|o| o.str("/refresh")));
    assert_eq!(
        Args::new(&url).str(),
        Some("https://api.example/session/refresh")
    );
    let state = calls.call(op("state"), &[]);
    assert_eq!(Args::new(&state).str(), Some("anonymous"));
    let id = calls.call(op("session_id"), &[]);
    assert_eq!(Args::new(&id).maybe_str(), Some(None));
    let tick = calls.call(op("tick"), &args(|o| o.number(1.0e12)));
    assert!(Args::new(&tick).numbers().is_some());
    let kinds = calls.call(op("key_kinds"), &args(|o| o.flag(true)));
    assert_eq!(Args::new(&kinds).str(), Some("wasm"));
}

#[test]
fn unknown_numbers_and_misshapen_arguments_are_refused() {
    let mut calls = engine();
    assert_eq!(calls.call(NAMES.len() as u32, &[]), [REFUSED]);
    assert_eq!(calls.call(u32::MAX, &[]), [REFUSED]);
    // `url` wants a string.
    assert_eq!(calls.call(op("url"), &args(|o| o.number(1.0))), [REFUSED]);
    assert_eq!(calls.call(op("url"), &[]), [REFUSED]);
    // A refused call changes nothing: the engine still answers.
    let state = calls.call(op("state"), &[]);
    assert_eq!(Args::new(&state).str(), Some("anonymous"));
}

#[test]
fn an_engine_made_without_its_settings_says_why() {
    let mut calls = Calls::new(&[]);
    let error = calls.call(op("take_error"), &[]);
    let error = Args::new(&error).str().unwrap().to_owned();
    assert!(error.starts_with("invalid_option\n"), "{error}");
}
