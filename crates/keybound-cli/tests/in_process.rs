//! `keybound_cli::run`, the command line in-process: the same exit codes and output as
//! the binary, written to the given writers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

fn run(args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("keybound").chain(args.iter().copied());
    let code = keybound_cli::run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn binary(args: &[&str]) -> (u8, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keybound"))
        .args(args)
        .output()
        .unwrap();
    (
        u8::try_from(out.status.code().unwrap()).unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn same_exit_codes_and_output_as_the_binary() {
    let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    for args in [
        &["thumbprint", jwk][..],
        &["inspect", "not-a-jwt"],
        &[
            "verify",
            "--method",
            "GET",
            "--url",
            "https://a.example/",
            "--proof",
            "a.b.c",
        ],
        &["verify", "--method", "GET"],
        &["keygen", "--alg", "RS256"],
        &["--help"],
        &["proof", "--help"],
        &["--version"],
        &[],
    ] {
        let (code, out, err) = run(args);
        let (bin_code, bin_out, bin_err) = binary(args);
        assert_eq!(code, bin_code, "{args:?}");
        assert_eq!(out, bin_out, "{args:?}");
        assert_eq!(err, bin_err, "{args:?}");
    }
}

#[test]
fn verify_rejection_is_exit_1_with_a_json_body() {
    let (code, out, err) = run(&[
        "verify",
        "--method",
        "GET",
        "--url",
        "https://a.example/",
        "--proof",
        "a.b.c",
    ]);
    assert_eq!(code, 1, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert!(body["error_code"].is_string());
}

#[test]
fn keygen_prints_a_key_that_thumbprint_reads() {
    for alg in ["EdDSA", "ES256"] {
        let (code, jwk, err) = run(&["keygen", "--alg", alg]);
        assert_eq!(code, 0, "{err}");
        let (code, jkt, err) = run(&["thumbprint", jwk.trim()]);
        assert_eq!(code, 0, "{err}");
        let kid = serde_json::from_str::<Value>(&jwk).unwrap()["kid"].clone();
        assert_eq!(kid, jkt.trim());
    }
}
