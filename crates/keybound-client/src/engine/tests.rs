use keybound_proto::ed25519_dalek::{Signer, SigningKey};
use keybound_proto::{DpopProof, access_token_hash};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::Engine;
use super::exchange::step;
use super::session::adopted;

const ORIGIN: &str = "https://app.example";
/// Local time of the tests: 1,000,000 s after the epoch.
const NOW: f64 = 1_000_000_000.0;

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[5u8; 32])
}

fn engine_with_key() -> Engine {
    let mut engine = Engine::new("https://app.example/session/", 120.0, "");
    assert_eq!(engine.take_error(), None);
    let x = signing_key().verifying_key().to_bytes();
    assert!(engine.take_key("webcrypto", &x));
    engine
}

/// A token response issued now: 300 s access token, idle end in 1800 s, absolute in 12 h.
fn respond(engine: &mut Engine, session_id: &str, access_token: &str) -> bool {
    let now = NOW / 1000.0;
    engine.take_response(
        Some(access_token.into()),
        Some("DPoP".into()),
        300.0,
        Some("rt-1".into()),
        Some(session_id.into()),
        now + 43_200.0,
        now + 1_800.0,
        now,
        NOW,
        NOW + 10.0,
    )
}

fn logged_in() -> Engine {
    let mut engine = engine_with_key();
    assert!(respond(&mut engine, "s1", "at-1"));
    let taken = engine.adopt_pending("stamp-1");
    assert_eq!(taken, adopted::TAKEN | adopted::NEW_SESSION);
    assert_eq!(engine.next_event().as_deref(), Some("login"));
    engine
}

fn sign(engine: &mut Engine, url: &str, token: Option<&str>) -> DpopProof {
    let input = engine
        .proof_input(
            "GET",
            url,
            token.map(access_token_hash),
            None,
            &[9u8; 16],
            NOW,
        )
        .unwrap();
    let signature = signing_key().sign(input.as_bytes()).to_bytes();
    DpopProof::parse(&Engine::proof_finish(&input, &signature)).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn answer(
    engine: &mut Engine,
    exchange: u32,
    budget: u32,
    status: u16,
    challenge: Option<&str>,
    error: Option<&str>,
    code: Option<&str>,
    nonce: Option<&str>,
    date_secs: Option<i64>,
) -> (u32, u32, u32) {
    let r = engine.answer(
        exchange,
        budget,
        "https://app.example/api/x",
        status,
        challenge,
        error,
        code,
        None,
        nonce,
        date_secs.map_or(f64::NAN, |secs| secs as f64 * 1000.0),
        None,
        f64::NAN,
        NOW,
        NOW + 20.0,
    );
    (r & 15, (r >> 4) & 15, r >> 8)
}

#[test]
fn a_bad_endpoint_is_an_invalid_option() {
    let mut engine = Engine::new("ftp://x/session", 120.0, "");
    let error = engine.take_error().unwrap();
    assert!(
        error.starts_with("invalid_option\n\n\ninvalid option: "),
        "{error}"
    );
    assert_eq!(engine.take_error(), None);
}

#[test]
fn login_takes_up_tokens_and_proofs_verify() {
    let mut engine = logged_in();
    assert_eq!(engine.state(), "active");
    assert_eq!(engine.session_id().as_deref(), Some("s1"));
    assert_eq!(
        engine.url("/refresh"),
        "https://app.example/session/refresh"
    );
    let deadlines = engine.deadlines();
    assert_eq!(deadlines.len(), 3);
    assert_eq!(deadlines[0], NOW + 300_000.0);
    assert_eq!(engine.pending_numbers(), Vec::<f64>::new());

    let token = engine.access_token().unwrap();
    assert_eq!(token, "at-1");
    let proof = sign(&mut engine, "https://app.example/api/x?q=1", Some(&token));
    proof.verify_signature().unwrap();
    proof
        .check_htm_htu("GET", "https://app.example/api/x")
        .unwrap();
    proof.check_ath(Some("at-1")).unwrap();
    assert_eq!(Some(proof.thumbprint()), engine.thumbprint());
    assert_eq!(proof.claims().iat, 1_000_000);
}

#[test]
fn bad_token_responses_are_refused() {
    let mut engine = engine_with_key();
    let refused = engine.take_response(
        Some("at".into()),
        None,
        300.0,
        Some("rt".into()),
        Some("s".into()),
        1.0,
        1.0,
        0.0,
        NOW,
        NOW,
    );
    assert!(!refused);
    assert!(
        engine
            .take_error()
            .unwrap()
            .starts_with("invalid_response\n")
    );
    assert!(!respond(&mut engine, "s1", "a b"));
    assert!(
        engine
            .take_error()
            .unwrap()
            .starts_with("invalid_response\n")
    );
}

#[test]
fn a_nonce_challenge_is_retried_once_with_the_nonce() {
    let mut engine = logged_in();
    let (s, _, budget) = answer(
        &mut engine,
        0,
        0,
        401,
        Some(r#"DPoP error="use_dpop_nonce""#),
        None,
        None,
        Some("n-1"),
        None,
    );
    assert_eq!(s, step::RETRY);
    let proof = sign(&mut engine, "https://app.example/other", None);
    assert_eq!(proof.claims().nonce.as_deref(), Some("n-1"));
    let (s, _, _) = answer(
        &mut engine,
        0,
        budget,
        401,
        Some(r#"DPoP error="use_dpop_nonce""#),
        None,
        None,
        Some("n-2"),
        None,
    );
    assert_eq!(s, step::DELIVER);
}

#[test]
fn a_refused_iat_corrects_the_clock_from_date() {
    let mut engine = logged_in();
    let (s, _, _) = answer(
        &mut engine,
        2,
        0,
        401,
        None,
        Some("invalid_dpop_proof"),
        Some("iat_too_old"),
        None,
        // 600 s after the local clock (the browser's parse of its `Date`).
        Some(1_000_600),
    );
    assert_eq!(s, step::RETRY);
    let proof = sign(&mut engine, "https://app.example/x", None);
    assert_eq!(proof.claims().iat, 1_000_600);
}

#[test]
fn an_ended_session_and_failures_leave_their_errors() {
    let mut engine = logged_in();
    let (s, terminal, _) = answer(
        &mut engine,
        1,
        0,
        401,
        None,
        Some("invalid_token"),
        Some("session_revoked"),
        None,
        None,
    );
    assert_eq!((s, terminal), (step::ENDED, 2));
    assert!(
        engine
            .take_error()
            .unwrap()
            .starts_with("session_revoked\n\n")
    );
    let (s, _, _) = answer(
        &mut engine,
        2,
        0,
        401,
        None,
        Some("invalid_credentials"),
        None,
        None,
        None,
    );
    assert_eq!(s, step::FAIL);
    assert_eq!(
        engine.take_error().as_deref(),
        Some("invalid_credentials\n401\n\n401 invalid_credentials: ")
    );
    // A delivered answer's error, when the caller needed a success.
    let (s, _, _) = answer(&mut engine, 0, 0, 404, None, None, None, None, None);
    assert_eq!(s, step::DELIVER);
    engine.answer_error();
    assert!(engine.take_error().unwrap().starts_with("not_found\n404\n"));

    assert!(engine.end("revoked", 0));
    assert!(!engine.end("revoked", 0), "an ending is applied once");
    assert_eq!(engine.next_event().as_deref(), Some("revoked\n\ns1"));
    assert_eq!(engine.next_event(), None);
    assert_eq!(engine.access_token(), None);
    assert!(
        engine
            .take_error()
            .unwrap()
            .starts_with("session_revoked\n")
    );
}

#[test]
fn a_stored_session_resumes_unless_it_ran_out() {
    let mut writer = logged_in();
    let plain = "at-1\nrt-1";
    let jkt = writer.thumbprint().unwrap();
    let mut numbers = vec![
        0.0,
        1_000_000_000.0,
        1_000_300_000.0,
        1_001_800_000.0,
        1_043_200_000.0,
    ];

    let mut engine = engine_with_key();
    assert!(engine.stage_live(plain, "s1", &jkt, "stamp-1", &numbers));
    assert_eq!(engine.resume(NOW), 1);
    assert_eq!(engine.state(), "active");
    assert_eq!(engine.stamp().as_deref(), Some("stamp-1"));

    numbers[3] = 999_000_000.0;
    let mut engine = engine_with_key();
    assert!(engine.stage_live(plain, "s1", &jkt, "stamp-1", &numbers));
    assert_eq!(engine.resume(NOW), 2);
    assert_eq!(engine.state(), "expired");
    assert_eq!(engine.staged_session_id().as_deref(), Some("s1"));
    assert_eq!(engine.next_event(), None);

    // Another key's session is not resumed; a malformed record is an error.
    let mut other = Engine::new(ORIGIN, 120.0, "");
    assert!(other.take_key("wasm", &[1u8; 32]));
    assert!(other.stage_live(plain, "s1", &jkt, "stamp-1", &numbers));
    assert_eq!(other.resume(NOW), 0);
    assert!(!other.stage_live("no-newline", "s1", &jkt, "stamp-1", &numbers));
    assert!(other.take_error().unwrap().starts_with("storage_error\n"));
    assert!(!writer.take_key("other", &[0u8; 32]));
}

#[test]
fn a_refresh_takes_another_tabs_fresh_tokens() {
    let mut engine = logged_in();
    let jkt = engine.thumbprint().unwrap();
    let numbers = [
        0.0,
        1_000_000_000.0,
        1_000_300_000.0,
        1_001_800_000.0,
        1_043_200_000.0,
    ];
    assert!(engine.stage_live("at-2\nrt-2", "s1", &jkt, "stamp-2", &numbers));
    // The tokens with stamp-1 were due; storage has newer, fresh ones.
    assert_eq!(engine.refresh_plan(Some("stamp-1"), false, NOW), 1);
    assert_eq!(engine.next_event().as_deref(), Some("refreshed"));
    assert_eq!(engine.access_token().as_deref(), Some("at-2"));
    // extend() asks the server anyway, with the stored refresh token.
    assert_eq!(engine.refresh_plan(None, true, NOW), 2);
    assert_eq!(
        engine.refresh_body().as_deref(),
        Some(r#"{"refresh_token":"rt-2"}"#)
    );
    // Storage says another tab saw the session end.
    engine.stage_ended("revoked", Some("s1"));
    assert_eq!(engine.refresh_plan(None, false, NOW), 0);
    assert!(
        engine
            .take_error()
            .unwrap()
            .starts_with("session_revoked\n")
    );
    assert_eq!(engine.state(), "revoked");
}

#[test]
fn failed_refreshes_back_off_unless_the_session_is_gone() {
    let mut engine = logged_in();
    engine.touch(NOW);
    // At 240 s the token is due.
    let later = NOW + 240_000.0;
    engine.touch(later);
    assert_eq!(engine.tick(later), vec![1.0]);
    assert!(engine.refresh_failed("network_error", u32::MAX, later));
    assert_eq!(engine.tick(later), vec![0.0, 1_005.0]);
    assert!(!engine.refresh_failed("session_revoked", 0, later));
    assert!(engine.go_on_after_failed_refresh("network_error", 0, later));
    assert!(!engine.go_on_after_failed_refresh("invalid_grant", 400, later));
    assert!(!engine.go_on_after_failed_refresh("network_error", 0, NOW + 300_000.0));
    assert!(Engine::is_transient("server_error", 503));
}

#[test]
fn the_timer_warns_then_expires() {
    let mut engine = logged_in();
    assert_eq!(engine.tick(NOW), vec![0.0, 1_680_005.0]);
    let warn_at = NOW + 1_680_000.0;
    assert_eq!(engine.tick(warn_at), vec![0.0, 120_005.0]);
    assert_eq!(engine.next_event().as_deref(), Some("expiring\n120\nidle"));
    assert_eq!(engine.tick(NOW + 1_800_000.0), vec![2.0, 1.0]);
    // Under the lock nothing newer is stored: it expired.
    engine.stage_nothing();
    assert!(!engine.kept_alive(NOW + 1_800_000.0));
    assert!(engine.end("expired", 1));
    assert_eq!(engine.next_event().as_deref(), Some("expired\nidle\ns1"));
    assert_eq!(engine.tick(NOW), vec![3.0]);
}

#[test]
fn other_tabs_messages() {
    let mut engine = logged_in();
    assert_eq!(engine.on_message(Some("sync"), None, None), 1);
    assert_eq!(engine.on_message(Some("login"), None, None), 2);
    assert_eq!(engine.on_message(Some("bogus"), None, None), 0);
    // Another session's ending leaves this one alone.
    let other = engine.on_message(Some("ended"), Some("revoked"), Some("s9"));
    assert_eq!(other, 0);
    assert_eq!(engine.state(), "active");
    assert!(engine.wants_wake(false));
    assert!(!engine.wants_wake(true));
    engine.on_message(Some("ended"), Some("closed"), Some("s1"));
    assert_eq!(engine.state(), "closed");
    assert_eq!(engine.thumbprint(), None);
    assert_eq!(engine.next_event().as_deref(), Some("closed\n\ns1"));
}

#[test]
fn key_choice() {
    // WebCrypto keys only (Ed25519, else P-256); the module key only when asked for.
    assert_eq!(Engine::key_kinds(false), "webcrypto webcrypto-p256");
    assert_eq!(Engine::key_kinds(true), "wasm");
    let mut engine = engine_with_key();
    assert!(engine.keep_key(false));
    assert!(
        !engine.keep_key(true),
        "forceWasmKeys replaces an unused WebCrypto key"
    );
    assert_eq!(engine.key_kind(), None);
    // …but not one a stored session is bound to.
    let mut engine = engine_with_key();
    let jkt = engine.thumbprint().unwrap();
    let numbers = [0.0, 1.0, 2.0, 3.0, 4.0];
    assert!(engine.stage_live("a\nb", "s1", &jkt, "x", &numbers));
    assert!(engine.keep_key(true));
    assert_eq!(engine.key_kind().as_deref(), Some("webcrypto"));
    engine.drop_key();
    assert_eq!(
        engine.proof_input("GET", ORIGIN, None, None, &[0; 16], NOW),
        None
    );
    assert!(engine.take_error().unwrap().starts_with("not_logged_in\n"));
}

/// An answer from `url` with the JSON error `error`/`code` and the headers given.
#[allow(clippy::too_many_arguments)]
fn answer_from(
    engine: &mut Engine,
    exchange: u32,
    url: &str,
    status: u16,
    error: Option<&str>,
    code: Option<&str>,
    nonce: Option<&str>,
    retry_after: Option<&str>,
) -> u32 {
    engine.answer(
        exchange,
        0,
        url,
        status,
        error
            .map(|e| ["DPoP error=\"", e, "\""].concat())
            .as_deref(),
        error,
        code,
        None,
        nonce,
        f64::NAN,
        retry_after,
        // The browser's parse of the value as a date; written `@secs` here.
        retry_after
            .and_then(|v| v.strip_prefix('@'))
            .map_or(f64::NAN, |secs| secs.parse::<f64>().unwrap() * 1000.0),
        NOW,
        NOW + 20.0,
    ) & 15
}

/// Whether the engine makes a proof for `url` (no proof: nothing is sent).
fn may_sign(engine: &mut Engine, url: &str) -> bool {
    engine
        .proof_input(
            "GET",
            url,
            Some(access_token_hash("at-1")),
            None,
            &[3u8; 16],
            NOW,
        )
        .is_some()
}

#[test]
fn signed_requests_go_only_to_allowed_origins() {
    let mut engine = logged_in();
    // The endpoint's origin, by default; nothing else.
    assert!(may_sign(&mut engine, "https://app.example/api/orders"));
    assert!(may_sign(&mut engine, "https://app.example/x"));
    for foreign in [
        "https://evil.example/api",
        "http://app.example/api",
        "https://app.example:8443/api",
        "https://api.app.example/api",
        "not a url",
        // Not as the browser writes a URL (the driver passes only its parser's
        // output): never an allowed origin.
        "HTTPS://APP.example/api",
        "https://app.example:443/api",
        "https://user@app.example/api",
    ] {
        assert!(!may_sign(&mut engine, foreign), "{foreign}");
        let error = engine.take_error().unwrap();
        assert!(error.starts_with("origin_not_allowed\n\n\n"), "{error}");
    }
    // The app allows more, as origins only.
    assert!(engine.allow_origins("https://api.example/\nhttp://localhost:8080"));
    assert_eq!(engine.take_error(), None);
    assert!(may_sign(&mut engine, "https://api.example/v1/x"));
    assert!(may_sign(&mut engine, "http://localhost:8080/"));
    assert!(may_sign(&mut engine, "https://app.example/still"));
    assert!(!may_sign(&mut engine, "https://api.example:444/x"));
    engine.take_error();
    for bad in [
        "https://api.example/v1",
        "https://api.example?x",
        "https://api.example#x",
        "https://user@api.example",
        "api.example",
        "ftp://api.example",
        "https://",
        "https://ok.example\nhttps://api.example/v1",
        "https://*.example",
        "https://API.example",
    ] {
        let mut engine = Engine::new("https://app.example/session", 120.0, bad);
        let error = engine.take_error().unwrap();
        assert!(error.starts_with("invalid_option\n"), "{bad}: {error}");
    }
}

#[test]
fn answers_from_other_origins_never_change_the_session() {
    let mut engine = logged_in();
    let foreign = "https://evil.example/api";
    // A redirect ended at a foreign origin that says the session was revoked, with a
    // nonce: `kb.fetch` gets the answer; the session, nonces and clock stay.
    let s = answer_from(
        &mut engine,
        0,
        foreign,
        401,
        Some("invalid_token"),
        Some("session_revoked"),
        Some("evil-nonce"),
        None,
    );
    assert_eq!(s, step::DELIVER);
    assert_eq!(engine.state(), "active");
    assert_eq!(engine.next_event(), None);
    assert_eq!(engine.take_error(), None);
    engine.answer_error();
    assert_eq!(engine.take_error(), None, "no error stands for it either");
    assert_eq!(engine.nonces.get(foreign), None);
    // The SDK's own exchanges fail instead (a token response from there is not taken).
    for exchange in [1, 2, 3, 4] {
        let s = answer_from(&mut engine, exchange, foreign, 200, None, None, None, None);
        assert_eq!(s, step::FAIL, "exchange {exchange}");
        assert!(
            engine
                .take_error()
                .unwrap()
                .starts_with("origin_not_allowed\n")
        );
    }
    assert_eq!(engine.state(), "active");
    // The same answer from the session's own origin does end it.
    let s = answer_from(
        &mut engine,
        0,
        "https://app.example/api",
        401,
        Some("invalid_token"),
        Some("session_revoked"),
        None,
        None,
    );
    assert_eq!(s, step::ENDED);
    // …and one from an origin the app allowed.
    let mut engine = logged_in();
    assert!(engine.allow_origins("https://api.example"));
    let s = answer_from(
        &mut engine,
        0,
        "https://api.example/v1",
        401,
        Some("invalid_token"),
        Some("session_revoked"),
        None,
        None,
    );
    assert_eq!(s, step::ENDED);
}

#[test]
fn a_429_is_rate_limited_with_its_retry_after() {
    let mut engine = engine_with_key();
    let login = "https://app.example/api/login";
    let s = answer_from(
        &mut engine,
        2,
        login,
        429,
        Some("rate_limited"),
        Some("rate_limited"),
        None,
        Some("30"),
    );
    assert_eq!(s, step::FAIL);
    let error = engine.take_error().unwrap();
    assert!(
        error.starts_with("rate_limited\n429\n30\n429 rate_limited"),
        "{error}"
    );
    // No JSON body (a proxy's 429) and an HTTP date 90 s after the answer arrived
    // (`@secs`: what the browser parsed it to).
    let s = answer_from(
        &mut engine,
        2,
        login,
        429,
        None,
        None,
        None,
        Some("@1000090"),
    );
    assert_eq!(s, step::FAIL);
    let error = engine.take_error().unwrap();
    assert!(error.starts_with("rate_limited\n429\n90\n"), "{error}");
    // Neither seconds nor a date: no retry-after.
    answer_from(&mut engine, 2, login, 429, None, None, None, Some("soon"));
    assert!(
        engine
            .take_error()
            .unwrap()
            .starts_with("rate_limited\n429\n\n")
    );

    // A refused refresh waits for at least the Retry-After.
    let mut engine = logged_in();
    let refresh = "https://app.example/session/refresh";
    let s = answer_from(&mut engine, 4, refresh, 429, None, None, None, Some("600"));
    assert_eq!(s, step::FAIL);
    assert!(
        engine
            .take_error()
            .unwrap()
            .starts_with("rate_limited\n429\n600\n")
    );
    assert!(engine.refresh_failed("rate_limited", 0, NOW));
    assert_eq!(engine.state(), "active", "a 429 keeps the session");
    assert!(Engine::is_transient("rate_limited", 429));
    let plan = engine.tick(NOW + 299_000.0);
    assert_eq!(plan[0], 0.0, "no refresh before the Retry-After: {plan:?}");
}

/// Found by the `sdk_calls` fuzz target: a token response received at an absurd time
/// (`1.7e159`, far past what an `i64` of milliseconds holds) saturated the learned
/// offset near `i64::MIN`, and comparing the next response's sample with it overflowed.
#[test]
fn absurd_exchange_times_do_not_overflow_the_clock() {
    let mut engine = engine_with_key();
    let take = |engine: &mut Engine, server_time: f64, received: f64| {
        engine.take_response(
            Some("at-1".into()),
            Some("DPoP".into()),
            300.0,
            Some("rt-1".into()),
            Some("s1".into()),
            server_time + 43_200.0,
            server_time + 1_800.0,
            server_time,
            NOW,
            received,
        )
    };
    assert!(take(&mut engine, NOW / 1000.0, 1.776_695_444_412_054e159));
    assert!(take(&mut engine, 1.78e12, NOW));
    assert!(take(&mut engine, -9.0e15 + 1.0e5, f64::INFINITY));
    assert!(take(&mut engine, 9.0e15 - 1.0e5, f64::NEG_INFINITY));
    assert!(take(&mut engine, NOW / 1000.0, f64::NAN));
}

/// Found by the `sdk_calls` fuzz target: with the server's time far below the wake-up
/// time (a clock learned from a request "sent" at `1e300`, or a tick at `-inf`), the
/// timer's delay overflowed.
#[test]
fn the_timer_delay_does_not_overflow() {
    let mut engine = engine_with_key();
    let now = NOW / 1000.0;
    assert!(engine.take_response(
        Some("at-1".into()),
        Some("DPoP".into()),
        300.0,
        Some("rt-1".into()),
        Some("s1".into()),
        now + 43_200.0,
        now + 1_800.0,
        now,
        1e300,
        NOW,
    ));
    assert_eq!(
        engine.adopt_pending("stamp-1"),
        adopted::TAKEN | adopted::NEW_SESSION
    );
    assert_eq!(engine.tick(NOW), [0.0, f64::from(i32::MAX)]);
    let mut engine = logged_in();
    assert_eq!(engine.tick(f64::NEG_INFINITY), [0.0, f64::from(i32::MAX)]);
}
