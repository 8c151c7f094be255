//! DBSC's wire forms (`keybound_proto::dbsc`): the request headers Chromium sends
//! (`Secure-Session-Response`, `Sec-Secure-Session-Id`, quoted or bare), the `dbsc+jwt`
//! proof and its registration and refresh checks, and the headers keybound builds
//! (`Secure-Session-Registration`, `Secure-Session-Challenge`).
//!
//! Input: any bytes. The whole input is read as each request header and, when it is
//! UTF-8, as a proof; its `\n`-separated fields are the values given to the header
//! builders.
//!
//! What must hold: no panic; every refusal has a stable code of `code::ALL`, the one the
//! refusal's kind gives, and a description that never holds the proof; a header value
//! reads the same as an independent RFC 9651 sf-string reader (quoted) or as its
//! trimmed text (bare); what the builders write reads back; a parsed proof's key reads
//! back from its JWK with an independent RFC 7638 thumbprint; given a challenge keybound
//! issued, the checks end exactly as a model of their order says (missing key,
//! signature size, purpose, session, expiry), the signature verifier sees the signed
//! bytes; and only the recorded browser's own texts verify under a real key.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybound_proto::dbsc::{
    ChallengePurpose, Challenges, DbscAlg, DbscError, DbscKey, DbscProof, MAX_HEADER_LEN,
    MAX_SESSION_ID_LEN, RefreshCheck, Registration, RegistrationCheck, SignatureVerifier,
    challenge_header, read_session_id, read_session_response,
};
use keybound_proto::wire::code;
use keybound_server::DbscSignatures;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::{Digest, Sha256};

const SECRET: [u8; 32] = [0x5a; 32];
const NOW_MS: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    headers(data);
    if let Ok(text) = std::str::from_utf8(data) {
        builders(&text.split('\n').collect::<Vec<_>>());
        proof(text);
    }
});

/// A refusal's code is one of keybound's stable codes.
fn known_code(err: &DbscError) -> &'static str {
    let c = err.code();
    assert!(!err.to_string().is_empty());
    assert!(code::ALL.iter().any(|k| k.code == c), "unknown code {c}");
    c
}

/// RFC 9651 §4.2.5, written independently: the sf-string at the start of `input`, and
/// what follows it.
fn sf_string(input: &[u8]) -> Option<(String, &[u8])> {
    let mut chars = input.iter().enumerate().skip(1);
    let mut out = String::new();
    while let Some((i, &c)) = chars.next() {
        if c == b'\\' {
            let (_, &next) = chars.next()?;
            if !matches!(next, b'"' | b'\\') {
                return None;
            }
            out.push(char::from(next));
        } else if c == b'"' {
            return Some((out, &input[i + 1..]));
        } else if !(0x20..0x7f).contains(&c) {
            return None;
        } else {
            out.push(char::from(c));
        }
    }
    None
}

/// What a DBSC request header must read as: a quoted value as its sf-string followed by
/// nothing or parameters, a bare one as its printable-ASCII text; never empty.
fn expected_header(value: &[u8]) -> Option<String> {
    let space = |b: &u8| matches!(b, b' ' | b'\t');
    let start = value.iter().take_while(|b| space(b)).count();
    let end = value.len() - value[start..].iter().rev().take_while(|b| space(b)).count();
    let trimmed = &value[start..end];
    let text = if trimmed.first() == Some(&b'"') {
        let (text, rest) = sf_string(trimmed)?;
        if !(rest.is_empty() || rest[0] == b';') {
            return None;
        }
        text
    } else {
        if !trimmed.iter().all(|b| (0x20..0x7f).contains(b)) {
            return None;
        }
        String::from_utf8(trimmed.to_vec()).ok()?
    };
    (!text.is_empty()).then_some(text)
}

fn headers(data: &[u8]) {
    let expected = expected_header(data);
    match read_session_response(data) {
        Ok(text) => {
            assert!(data.len() <= MAX_HEADER_LEN);
            assert!(!text.is_empty() && text.bytes().all(|b| (0x20..0x7f).contains(&b)));
            assert_eq!(Some(&text), expected.as_ref(), "{data:?}");
            // The same text written as the challenge header writes it reads back.
            if let Ok(header) = challenge_header(&text, "s") {
                assert_eq!(read_session_response(header.as_bytes()).ok(), Some(text));
            }
        }
        Err(err) => {
            assert_eq!(known_code(&err), code::INVALID_HEADER, "{err}");
            if data.len() <= MAX_HEADER_LEN {
                assert_eq!(expected, None, "{data:?} refused: {err}");
            }
        }
    }
    match read_session_id(data) {
        Ok(id) => {
            assert!(!id.is_empty() && id.len() <= MAX_SESSION_ID_LEN);
            assert_eq!(Some(&id), expected.as_ref(), "{data:?}");
        }
        Err(err) => {
            assert_eq!(known_code(&err), code::INVALID_HEADER, "{err}");
            if data.len() <= 2 * MAX_SESSION_ID_LEN + 2 {
                assert!(
                    expected
                        .as_ref()
                        .is_none_or(|e| e.len() > MAX_SESSION_ID_LEN),
                    "{data:?} refused: {err}"
                );
            }
        }
    }
}

/// A value the builders can put into an sf-string.
fn encodable(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn builders(fields: &[&str]) {
    let (challenge, id, path, authorization) = (
        fields.first().copied().unwrap_or_default(),
        fields.get(1).copied().unwrap_or_default(),
        fields.get(2).copied().unwrap_or_default(),
        fields.get(3).copied(),
    );
    match challenge_header(challenge, id) {
        Ok(header) => {
            assert!(encodable(challenge) && encodable(id));
            assert_eq!(
                read_session_response(header.as_bytes()).ok().as_deref(),
                Some(challenge)
            );
            let (_, rest) = sf_string(header.as_bytes()).unwrap_or_default();
            let id_param = rest.strip_prefix(b";id=").and_then(sf_string);
            assert_eq!(
                id_param.map(|(text, rest)| (text, rest.len())),
                Some((id.to_owned(), 0))
            );
        }
        Err(err) => {
            assert_eq!(known_code(&err), code::UNENCODABLE_VALUE);
            assert!(!(encodable(challenge) && encodable(id)));
        }
    }
    let mut registration = Registration::new(path, challenge);
    if let Some(authorization) = authorization {
        registration = registration.authorization(authorization);
    }
    let alg_sets: [&[DbscAlg]; 3] = [&DbscAlg::ALL, &[DbscAlg::Rs256], &[]];
    for algs in alg_sets {
        let registration = registration.clone().algs(algs);
        let fine = encodable(path)
            && encodable(challenge)
            && authorization.is_none_or(|a| a.bytes().all(|b| (0x20..0x7f).contains(&b)))
            && !algs.is_empty();
        match registration.header_value() {
            Ok(header) => {
                assert!(fine, "{header}");
                let names: Vec<&str> = algs.iter().map(|a| a.as_str()).collect();
                let list = format!("({})", names.join(" "));
                let rest = header.as_bytes().strip_prefix(list.as_bytes());
                let rest = rest.and_then(|r| r.strip_prefix(b";path="));
                let (read_path, rest) = rest.and_then(sf_string).unwrap_or_default();
                assert_eq!(read_path, path);
                let rest = rest.strip_prefix(b";challenge=").unwrap_or_default();
                let (read_challenge, rest) = sf_string(rest).unwrap_or_default();
                assert_eq!(read_challenge, challenge);
                match authorization {
                    Some(authorization) => {
                        let rest = rest.strip_prefix(b";authorization=").unwrap_or_default();
                        assert_eq!(
                            sf_string(rest).map(|(a, r)| (a, r.len())),
                            Some((authorization.to_owned(), 0))
                        );
                    }
                    None => assert!(rest.is_empty(), "{header}"),
                }
            }
            Err(err) => {
                assert_eq!(known_code(&err), code::UNENCODABLE_VALUE);
                assert!(!fine);
            }
        }
    }
}

/// The proofs and keys Chromium sent in `tests/vectors/dbsc/chromium.json`.
struct Recorded {
    texts: HashSet<String>,
    keys: Vec<DbscKey>,
}

fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(include_str!("../../tests/vectors/dbsc/chromium.json"))
                .unwrap_or(Value::Null);
        let mut texts = HashSet::new();
        let mut keys = Vec::new();
        for scenario in doc["scenarios"].as_array().into_iter().flatten() {
            for exchange in scenario["exchanges"].as_array().into_iter().flatten() {
                let header = &exchange["request"]["headers"]["secure-session-response"];
                if let Some(text) = header.as_str() {
                    texts.insert(text.to_owned());
                    if let Some(key) = DbscProof::parse(text).ok().and_then(|p| p.key().cloned()) {
                        keys.push(key);
                    }
                }
            }
        }
        Recorded { texts, keys }
    })
}

/// An independent RFC 7638 thumbprint of a DBSC key.
fn thumbprint(key: &DbscKey) -> String {
    let b = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let canonical = match key {
        DbscKey::P256 { x, y } => {
            format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b(x),
                b(y)
            )
        }
        DbscKey::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b(e), b(n)),
    };
    b(&Sha256::digest(canonical.as_bytes()))
}

/// One call of a signature verifier: the algorithm, the signing input, the signature.
type Call = (DbscAlg, Vec<u8>, Vec<u8>);

/// A signature verifier that accepts and remembers what it was asked.
#[derive(Default)]
struct Accepting(std::cell::RefCell<Vec<Call>>);

impl SignatureVerifier for Accepting {
    fn verify(
        &self,
        alg: DbscAlg,
        key: &DbscKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), DbscError> {
        assert_eq!(key.alg(), alg);
        self.0
            .borrow_mut()
            .push((alg, signing_input.to_vec(), signature.to_vec()));
        Ok(())
    }
}

fn proof(text: &str) {
    let parsed = match DbscProof::parse(text) {
        Ok(parsed) => parsed,
        Err(err) => {
            known_code(&err);
            let description = err.to_string();
            if text.len() >= 16 && text.contains('.') {
                assert!(
                    !description.contains(text),
                    "echoed the proof: {description}"
                );
            }
            return;
        }
    };
    // What was read is what was sent.
    let parts: Vec<&str> = text.split('.').collect();
    assert_eq!(parts.len(), 3);
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    assert_eq!(parsed.signing_input(), signing_input.as_bytes());
    assert_eq!(URL_SAFE_NO_PAD.encode(parsed.signature()), parts[2]);
    assert!(!parsed.jti().is_empty());
    if let Some(key) = parsed.key() {
        assert_eq!(key.alg(), parsed.alg());
        assert_eq!(DbscKey::from_json(&key.to_json()).as_ref(), Ok(key));
        assert_eq!(key.thumbprint(), thumbprint(key));
    }

    // Holding no private key, a fuzzer can only get the recorded texts to verify.
    let real = DbscSignatures;
    let keys: Vec<&DbscKey> = match parsed.key() {
        Some(key) => vec![key],
        None => recorded().keys.iter().collect(),
    };
    for key in keys {
        if key.alg() == parsed.alg()
            && real
                .verify(
                    parsed.alg(),
                    key,
                    parsed.signing_input(),
                    parsed.signature(),
                )
                .is_ok()
        {
            assert!(recorded().texts.contains(text), "a made-up proof verified");
        }
    }

    checks(&parsed, parts[0], parts[1], parts[2]);
}

/// The registration and refresh checks on the same proof carrying a challenge keybound
/// issued: each ends as the model of their order says.
fn checks(parsed: &DbscProof, header: &str, payload: &str, signature: &str) {
    let Ok(payload) = URL_SAFE_NO_PAD.decode(payload) else {
        return;
    };
    let Ok(Value::Object(mut claims)) = serde_json::from_slice::<Value>(&payload) else {
        return;
    };
    let challenges = Challenges::from_secret(&SECRET, Challenges::DEFAULT_LIFETIME);
    let session = parsed.sub().unwrap_or("kb-sess").to_owned();
    let now_ms = match parsed.iat() {
        None => NOW_MS,
        Some(iat) => match iat.checked_mul(1000) {
            Some(ms) => ms,
            None => return,
        },
    };
    let skew = Duration::from_secs(60);
    let key = parsed.key();
    // A refresh proof carries no key: it is checked with a recorded session's key.
    let session_key = key.or_else(|| recorded().keys.iter().find(|k| k.alg() == parsed.alg()));

    for purpose in [ChallengePurpose::Registration, ChallengePurpose::Refresh] {
        let jti = challenges.issue(purpose, &session, now_ms, [7; 16]);
        claims.insert("jti".into(), Value::String(jti));
        let Ok(json) = serde_json::to_vec(&claims) else {
            return;
        };
        let new_payload = URL_SAFE_NO_PAD.encode(json);
        let text = format!("{header}.{new_payload}.{signature}");
        if text.len() > MAX_HEADER_LEN {
            return;
        }
        let reparsed = match DbscProof::parse(&text) {
            Ok(p) => p,
            Err(err) => panic!("a parsed proof with a new jti was refused: {err}"),
        };
        assert_eq!(reparsed.key(), key);
        assert_eq!(reparsed.sub(), parsed.sub());
        assert_eq!(reparsed.iat(), parsed.iat());

        let registration =
            |session_id: &str, now_ms: i64, max_skew: Duration, v: &dyn SignatureVerifier| {
                reparsed.verify_registration(
                    &RegistrationCheck {
                        challenges: &challenges,
                        session_id,
                        authorization: parsed.authorization(),
                        algs: &DbscAlg::ALL,
                        now_ms,
                        max_skew,
                    },
                    v,
                )
            };
        let refresh = |key: &DbscKey,
                       session_id: &str,
                       now_ms: i64,
                       max_skew: Duration,
                       v: &dyn SignatureVerifier| {
            reparsed.verify_refresh(
                &RefreshCheck {
                    challenges: &challenges,
                    session_id,
                    key,
                    now_ms,
                    max_skew,
                },
                v,
            )
        };
        let code_of = |r: Result<(), DbscError>| r.err().map(|e| known_code(&e));

        // The right purpose, session and time.
        let accepting = Accepting::default();
        let got = match purpose {
            ChallengePurpose::Registration => {
                code_of(registration(&session, now_ms, skew, &accepting).map(|k| {
                    assert_eq!(Some(&k), key);
                }))
            }
            ChallengePurpose::Refresh => match session_key {
                Some(key) => code_of(refresh(key, &session, now_ms, skew, &accepting)),
                None => continue,
            },
        };
        let checked_with = match purpose {
            ChallengePurpose::Registration => key,
            ChallengePurpose::Refresh => session_key,
        };
        let want = match checked_with {
            None => Some(code::MISSING_KEY),
            Some(k) if k.signature_len() != parsed.signature().len() => {
                Some(code::MALFORMED_SIGNATURE)
            }
            Some(_) => None,
        };
        assert_eq!(got, want, "{purpose:?}");
        let calls = accepting.0.borrow();
        if want.is_none() {
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].1, reparsed.signing_input());
            assert_eq!(calls[0].2, parsed.signature());
        } else {
            assert!(calls.is_empty());
        }
        drop(calls);

        let Some(key) = session_key else { continue };
        if purpose == ChallengePurpose::Registration && parsed.key().is_none() {
            continue;
        }
        let never = Accepting::default();
        // A challenge for the other step, another session, or one too old is refused
        // before any signature check.
        let other = match purpose {
            ChallengePurpose::Registration => code_of(refresh(key, &session, now_ms, skew, &never)),
            ChallengePurpose::Refresh => {
                code_of(registration(&session, now_ms, skew, &never).map(|_| ()))
            }
        };
        let want = if parsed.key().is_none() {
            code::MISSING_KEY
        } else {
            code::INVALID_CHALLENGE
        };
        assert_eq!(other, Some(want), "{purpose:?} as the other step");
        let elsewhere = format!("{session}-other");
        let moved = match purpose {
            ChallengePurpose::Registration => {
                registration(&elsewhere, now_ms, skew, &never).map(|_| ())
            }
            ChallengePurpose::Refresh => refresh(key, &elsewhere, now_ms, skew, &never),
        };
        let want = if parsed.sub().is_some() {
            code::SESSION_MISMATCH
        } else {
            code::INVALID_CHALLENGE
        };
        assert_eq!(code_of(moved), Some(want));
        let late = now_ms.saturating_add(61_000);
        let wide = Duration::from_secs(u64::MAX);
        let expired = match purpose {
            ChallengePurpose::Registration => {
                registration(&session, late, wide, &never).map(|_| ())
            }
            ChallengePurpose::Refresh => refresh(key, &session, late, wide, &never),
        };
        if late == now_ms + 61_000 {
            assert_eq!(code_of(expired), Some(code::CHALLENGE_EXPIRED));
        }
        assert!(never.0.borrow().is_empty());

        // The real verifier: the payload changed, so the signature no longer holds.
        let real = match purpose {
            ChallengePurpose::Registration => {
                registration(&session, now_ms, skew, &DbscSignatures).map(|_| ())
            }
            ChallengePurpose::Refresh => refresh(key, &session, now_ms, skew, &DbscSignatures),
        };
        if !recorded().texts.contains(&text) {
            assert!(real.is_err(), "a re-signed payload verified");
        }
    }
}
