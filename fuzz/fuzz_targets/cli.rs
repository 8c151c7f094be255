//! The `keybound` command line, in-process (`keybound_cli::run`): any argument vector
//! ends with exit code 0, 1 or 2, never a panic; `verify` rejections print a JSON error
//! body that does not echo the credentials; successful commands print what they
//! promise.
//!
//! Input: the arguments after the program name, separated by NUL bytes. Arguments that
//! would touch files (`@FILE`, `@-`, `keygen --out`) are skipped: the fuzzer must not
//! read standard input or write files.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let args: Vec<&OsStr> = data.split(|b| *b == 0).map(OsStr::from_bytes).collect();
    if args.len() > 24
        || args.iter().any(|a| {
            let a = a.as_bytes();
            a.starts_with(b"@") || a.windows(2).any(|w| w == b"=@") || a.starts_with(b"--out")
        })
    {
        return;
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once(OsStr::new("keybound")).chain(args.iter().copied());
    let code = keybound_cli::run(argv, &mut out, &mut err);
    let stdout = String::from_utf8_lossy(&out);
    let stderr = String::from_utf8_lossy(&err);
    let command = args.first().and_then(|a| a.to_str()).unwrap_or_default();
    match code {
        0 => {
            // Help and version (also inside a cluster of short flags such as
            // `-hx`) print text; a verification prints its JSON.
            let help = stdout.contains("Usage:") || stdout.starts_with("keybound ");
            if command == "verify" && !help {
                let verified: Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("verify printed no JSON: {e}: {stdout}"));
                assert!(verified["jkt"].is_string(), "{stdout}");
            }
        }
        1 => {
            assert_eq!(command, "verify", "exit 1 from {command}");
            let body: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("no JSON error body: {e}: {stdout}"));
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error == "invalid_dpop_proof" || error == "invalid_token",
                "{stdout}"
            );
            assert!(body["error_code"].is_string(), "{stdout}");
            let description = body["error_description"].as_str().unwrap_or_default();
            for arg in &args {
                let arg = arg.to_string_lossy();
                // A credential-like argument (a compact JWS has dots; no message
                // does), not one that happens to spell part of a message.
                if arg.len() >= 24 && !arg.starts_with('-') && arg.contains('.') {
                    assert!(!description.contains(arg.as_ref()), "echoed {arg:?}");
                }
            }
        }
        2 => assert!(!stderr.is_empty(), "exit 2 without a message"),
        other => panic!("exit code {other}"),
    }
});
