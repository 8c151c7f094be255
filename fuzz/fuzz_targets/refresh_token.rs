//! Refresh tokens: arbitrary text through the parser (only the canonical form of a
//! token parses, so no two texts name the same token) and the tag check; and tokens
//! issued from the same bytes, which must parse back, authenticate only under their
//! own server secret, and stop authenticating when any part changes.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use keybound_proto::b64;
use keybound_server::fuzzing::{
    authenticates, issue_refresh_token, parse_refresh_token, successor_secret,
};
use keybound_server::lifecycle::{RefreshSecret, SessionId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        parsed(text);
    }
    if let Ok(input) = Issued::arbitrary(&mut Unstructured::new(data)) {
        issued(&input);
    }
});

fn parsed(text: &str) {
    let server = RefreshSecret::from_bytes([1; 32]);
    let Some(token) = parse_refresh_token(text) else {
        assert!(!authenticates(&server, text));
        return;
    };
    let mut body = [0u8; 48];
    body[..32].copy_from_slice(token.secret.as_ref());
    body[32..].copy_from_slice(&token.tag);
    let canonical = format!(
        "{}.{}.{}",
        token.session_id,
        token.generation,
        b64::encode(body)
    );
    assert_eq!(canonical, text, "a non-canonical refresh token parsed");
    // Re-issued with the same secret, the text carries the tag this server makes.
    let reissued = issue_refresh_token(&server, &token.session_id, token.generation, &token.secret);
    assert_eq!(authenticates(&server, text), reissued == text);
}

#[derive(Arbitrary, Debug)]
struct Issued {
    server: [u8; 32],
    session: [u8; 16],
    generation: u64,
    secret: [u8; 32],
    flip: u16,
}

fn issued(input: &Issued) {
    let server = RefreshSecret::from_bytes(input.server);
    let sid = SessionId::from_bytes(input.session);
    let text = issue_refresh_token(&server, &sid, input.generation, &input.secret);
    let Some(token) = parse_refresh_token(&text) else {
        panic!("an issued token does not parse: {text}")
    };
    assert_eq!(token.session_id, sid);
    assert_eq!(token.generation, input.generation);
    assert_eq!(*token.secret, input.secret);
    assert!(authenticates(&server, &text));
    let mut other = input.server;
    other[0] ^= 1;
    assert!(!authenticates(&RefreshSecret::from_bytes(other), &text));

    // Changing any one character gives a token that does not parse or does not
    // authenticate.
    let bytes = text.as_bytes();
    let at = usize::from(input.flip) % bytes.len();
    for replacement in *b"A0_." {
        if bytes[at] == replacement {
            continue;
        }
        let mut changed = bytes.to_vec();
        changed[at] = replacement;
        if let Ok(changed) = String::from_utf8(changed) {
            assert!(!authenticates(&server, &changed), "{text} -> {changed}");
        }
    }

    if let Some(next_generation) = input.generation.checked_add(1) {
        let next = successor_secret(&server, &sid, input.generation, &input.secret);
        assert_ne!(*next, input.secret);
        assert_eq!(
            *next,
            *successor_secret(&server, &sid, input.generation, &input.secret)
        );
        let next_text = issue_refresh_token(&server, &sid, next_generation, &next);
        assert!(authenticates(&server, &next_text));
        assert_ne!(next_text, text);
    }
}
