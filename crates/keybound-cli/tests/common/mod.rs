//! What the black-box tests of the `keybound` binary share: running it (with or
//! without standard input) and the three outcomes it has, success (exit 0), a
//! rejection (exit 1, the error body on stdout) and bad input (exit 2, one line on
//! stderr).
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The URL the tests' proofs are made for.
pub const URL: &str = "https://api.example.com/orders";

/// Runs `keybound ARGS…` with empty standard input.
pub fn kb(args: &[&str]) -> Output {
    kb_stdin(args, None)
}

/// Runs `keybound ARGS…` with `stdin` as its standard input; it must never panic.
pub fn kb_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keybound"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "the CLI panicked: {stderr}");
    out
}

/// Standard output, trimmed.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

/// Standard error.
pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Asserts exit 0 and returns standard output, trimmed.
#[track_caller]
pub fn ok(args: &[&str]) -> String {
    let out = kb(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Asserts exit 2 with one clear line on stderr, nothing on stdout, and returns it.
#[track_caller]
pub fn bad_input(args: &[&str]) -> String {
    let out = kb(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "{args:?} printed {}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("keybound: error: "), "{err}");
    err
}

/// Asserts exit 1 and returns the error body from stdout.
#[track_caller]
pub fn rejected(args: &[&str]) -> Value {
    let out = kb(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    let body: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{body}");
    for key in ["error", "error_description", "error_code"] {
        assert!(body[key].is_string(), "{body}");
    }
    body
}

/// Asserts exit 1 with the error body's `error` and `error_code`.
#[track_caller]
pub fn assert_rejected(args: &[&str], error: &str, code: &str) {
    let body = rejected(args);
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
}

/// [`bad_input`], whose message does not show `secret` (key material).
#[track_caller]
pub fn bad_input_without(args: &[&str], secret: &str) -> String {
    let err = bad_input(args);
    assert!(!err.contains(secret), "{err}");
    err
}
