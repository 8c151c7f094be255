//! The browser SDK's engine through its one entry point, as the module exports it:
//! `keybound_client::Calls::new` then sequences of `Calls::call(op, args)`, with the
//! arguments encoded as `js/engine.js` encodes them (tagged values,
//! `crates/keybound-client/src/calls/codec.rs`).
//!
//! A sequence mixes calls of every kind: the driver's own steps with realistic values
//! (taking up a real device key from the vectors — `key_jwk`, its SHA-256, `set_key` —,
//! token responses, storing and re-reading the session record, server answers in
//! keybound's vocabulary), any method by number with arguments of its shape drawn from
//! meaningful and arbitrary values (any `f64`: `NaN`, infinities, huge; any text),
//! and any number (unknown ones included) with arguments of any shape plus raw bytes.
//!
//! What must hold after every call:
//! * no panic (the targets build with debug assertions, so an arithmetic overflow is
//!   one);
//! * the result is the refusal (the single byte `0xff`), or exactly one well-formed
//!   tagged value that uses every byte, of the type the method returns (the methods
//!   that return nothing answer no bytes, which the driver reads as `undefined`);
//!   a well-shaped call to a known method is never refused, an unknown number always;
//! * no result carries a refresh or access token given to the engine (by
//!   `take_response`, or read back from storage by `stage_live`), as text or inside
//!   base64url (tokens of 12 characters or more there: shorter ones turn up by chance
//!   when words are read as base64url), except the three methods that hand them out:
//!   `access_token` (exactly an access token given), `refresh_body`
//!   (`{"refresh_token":"…"}` with a refresh token given) and `pending_sealable`
//!   (exactly `access \n refresh` of the last accepted token response, until
//!   `adopt_pending`). Tokens the fuzzer also passed as another argument (which a
//!   method may rightly echo, as it is or in base64url) are exempt; the tokens checked
//!   are those containing `~`, a token character nothing the engine makes up contains.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybound_client::Calls;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// The engine's methods in the order of their numbers (`ops!` in
/// `crates/keybound-client/src/calls/mod.rs`), with the types of their arguments and
/// result. Checked against `js/engine.js` (whose list a test in the crate checks
/// against the module's) on the first run.
const OPS: &[(&str, &[Ty], Ret)] = &[
    ("url", &[Ty::S], Ret::Str),
    ("take_error", &[], Ret::MaybeStr),
    ("next_event", &[], Ret::MaybeStr),
    ("state", &[], Ret::Str),
    ("session_id", &[], Ret::MaybeStr),
    ("stamp", &[], Ret::MaybeStr),
    ("deadlines", &[], Ret::Numbers),
    (
        "proof_input",
        &[Ty::S, Ty::S, Ty::Ms, Ty::Ms, Ty::B, Ty::N],
        Ret::MaybeStr,
    ),
    ("proof_finish", &[Ty::S, Ty::B], Ret::Str),
    ("access_token", &[], Ret::MaybeStr),
    (
        "answer",
        &[
            Ty::N,
            Ty::N,
            Ty::S,
            Ty::N,
            Ty::Ms,
            Ty::Ms,
            Ty::Ms,
            Ty::Ms,
            Ty::Ms,
            Ty::N,
            Ty::Ms,
            Ty::N,
            Ty::N,
            Ty::N,
        ],
        Ret::Number,
    ),
    ("answer_error", &[], Ret::Nothing),
    ("key_kinds", &[Ty::N], Ret::Str),
    ("key_jwk", &[Ty::S, Ty::B], Ret::MaybeStr),
    ("set_key", &[Ty::S, Ty::B, Ty::S], Ret::Flag),
    ("keep_key", &[Ty::N], Ret::Flag),
    ("drop_key", &[], Ret::Nothing),
    ("thumbprint", &[], Ret::MaybeStr),
    ("key_kind", &[], Ret::MaybeStr),
    (
        "take_response",
        &[
            Ty::Ms,
            Ty::Ms,
            Ty::N,
            Ty::Ms,
            Ty::Ms,
            Ty::N,
            Ty::N,
            Ty::N,
            Ty::N,
            Ty::N,
        ],
        Ret::Flag,
    ),
    ("pending_sealable", &[], Ret::MaybeStr),
    ("pending_session_id", &[], Ret::MaybeStr),
    ("pending_numbers", &[], Ret::Numbers),
    ("adopt_pending", &[Ty::S], Ret::Number),
    (
        "stage_live",
        &[Ty::S, Ty::S, Ty::S, Ty::S, Ty::L],
        Ret::Flag,
    ),
    ("stage_ended", &[Ty::S, Ty::Ms], Ret::Nothing),
    ("stage_nothing", &[], Ret::Nothing),
    ("staged_session_id", &[], Ret::MaybeStr),
    ("resume", &[Ty::N], Ret::Number),
    ("reload", &[], Ret::Nothing),
    ("begin_request", &[Ty::N], Ret::Number),
    (
        "go_on_after_failed_refresh",
        &[Ty::S, Ty::N, Ty::N],
        Ret::Flag,
    ),
    ("touch", &[Ty::N], Ret::Nothing),
    ("refresh_plan", &[Ty::Ms, Ty::N, Ty::N], Ret::Number),
    ("refresh_body", &[], Ret::MaybeStr),
    ("refresh_failed", &[Ty::S, Ty::N, Ty::N], Ret::Flag),
    ("kept_alive", &[Ty::N], Ret::Flag),
    ("end", &[Ty::S, Ty::N], Ret::Flag),
    ("tick", &[Ty::N], Ret::Numbers),
    ("on_message", &[Ty::Ms, Ty::Ms, Ty::Ms], Ret::Number),
    ("wants_wake", &[Ty::N], Ret::Flag),
];

/// An argument's type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    /// A string.
    S,
    /// A string or absent.
    Ms,
    /// A number.
    N,
    /// Bytes.
    B,
    /// A list of numbers.
    L,
}

/// A result's type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ret {
    Nothing,
    Str,
    MaybeStr,
    Number,
    Flag,
    Numbers,
}

/// The codec's tags (`calls/codec.rs`).
const ABSENT: u8 = 0;
const NUMBER: u8 = 1;
const STRING: u8 = 2;
const BYTES: u8 = 3;
const NUMBERS: u8 = 4;
const REFUSED: u8 = 0xff;

/// The browser's `Date.now()` the sequences start around (epoch milliseconds).
const NOW_MS: f64 = 1_780_000_000_000.0;
const ENDPOINT: &str = "https://app.example/session";
const ALLOWED: &str = "https://api.example\nhttp://localhost:8080/";

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    calls: Vec<Call>,
}

/// How the engine is made.
#[derive(Arbitrary, Debug)]
enum Setup {
    /// As the driver makes it, with a lead and allowed origins.
    Driver { lead: Num, origins: Option<Text> },
    /// Any arguments.
    Values(Vec<Val>),
    /// Any bytes.
    Bytes(Vec<u8>),
}

/// One step of a sequence.
#[derive(Arbitrary, Debug)]
enum Call {
    /// The driver takes up a device key: `key_jwk`, its SHA-256 as the thumbprint
    /// (as WebCrypto makes it), `set_key`, then maybe `keep_key`.
    TakeKey { key: Key, keep: Option<bool> },
    /// A token response, as the driver reads it from a login, refresh or rotation.
    Respond(Response),
    /// The driver stores the pending tokens (`pending_sealable`, `pending_session_id`,
    /// `pending_numbers`) and takes them up (`adopt_pending`), or not.
    Store { stamp: u8, adopt: bool },
    /// The driver reads the stored record back (`stage_live` with what `Store` kept,
    /// under the current key or another), then acts on it.
    Stage {
        stamp: u8,
        jkt: u8,
        then: u8,
        now: Num,
    },
    /// A server's answer, in keybound's vocabulary.
    Answer(ServerAnswer),
    /// The driver signs a request: `begin_request`, `access_token`, `proof_input`
    /// (with the token's `ath` as WebCrypto's SHA-256 makes it) and `proof_finish`.
    Sign {
        method: Text,
        url: Text,
        nonce: Option<Text>,
        jti: [u8; 16],
        now: Num,
    },
    /// A known method by number, with arguments of its shape (`bent` makes one of
    /// them another type, or leaves the last one out).
    Method {
        op: u8,
        args: Vec<Val>,
        bent: Option<u8>,
    },
    /// Any number with any arguments, then any bytes.
    Raw {
        op: u32,
        args: Vec<Val>,
        junk: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Key {
    Ed25519,
    P256,
    Wasm,
    Any { kind: Text, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Response {
    access: Tok,
    token_type: Option<Text>,
    expires_in: Num,
    refresh: Tok,
    session: Text,
    /// Seconds from the server's time to the absolute and idle ends.
    absolute: Num,
    idle: Num,
    /// The server's clock minus the browser's, in seconds.
    skew: Num,
    sent: Num,
    received: Num,
}

/// A token: `at~…`/`rt~…` (checked for leaks), or anything.
#[derive(Arbitrary, Debug)]
enum Tok {
    Marked(u8, String),
    Any(Option<String>),
}

#[derive(Arbitrary, Debug)]
struct ServerAnswer {
    exchange: u8,
    budget: u8,
    url: Text,
    status: Status,
    challenge: Option<Text>,
    error: Option<Text>,
    code: Option<Text>,
    description: Option<Text>,
    nonce: Option<Text>,
    date: Num,
    retry_after: Option<Text>,
    retry_after_date: Num,
    sent: Num,
    received: Num,
}

#[derive(Arbitrary, Debug)]
enum Status {
    Known(u8),
    Any(u16),
}

/// An argument value.
#[derive(Arbitrary, Debug)]
enum Val {
    Absent,
    Num(Num),
    Text(Text),
    Bytes(Bin),
    Numbers(Nums),
}

#[derive(Arbitrary, Debug)]
enum Num {
    /// `NOW_MS` plus seconds.
    Now(i32),
    /// Seconds since the epoch near `NOW_MS`, plus seconds.
    Secs(i32),
    Small(i16),
    Special(u8),
    Any(f64),
}

#[derive(Arbitrary, Debug)]
enum Text {
    /// One of keybound's words, URLs, kinds, stamps, session ids (see `words`).
    Word(u8),
    /// The current device key's thumbprint, or another.
    Thumbprint(bool),
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Bin {
    Jti([u8; 16]),
    Signature(u8),
    Key(u8),
    Any(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Nums {
    /// What `pending_numbers` last gave.
    Stored,
    Any(Vec<Num>),
}

fuzz_target!(|input: Input| {
    check_numbering();
    let mut run = Run::new(&input.setup);
    for call in input.calls.iter().take(96) {
        run.step(call);
    }
});

/// The harness's method list is `js/engine.js`'s (which the crate's tests hold to the
/// module's numbering).
fn check_numbering() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let driver = include_str!("../../js/engine.js");
        let start = driver.find("const NAMES = [").unwrap_or(0);
        let list = driver.get(start..).unwrap_or_default();
        let list = list
            .get(list.find('[').map_or(0, |i| i + 1)..list.find(']').unwrap_or(0))
            .unwrap_or_default();
        let names: Vec<&str> = list
            .split(',')
            .map(|n| n.trim().trim_matches('"'))
            .filter(|n| !n.is_empty())
            .collect();
        let ours: Vec<&str> = OPS.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(
            names, ours,
            "the target's method list is not js/engine.js's"
        );
    });
}

/// Keybound's words the arguments are drawn from.
fn words() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut words: Vec<String> = [
            ENDPOINT,
            "https://app.example/session/login",
            "https://app.example/session/refresh",
            "https://api.example/v1/me",
            "http://localhost:8080/x",
            "https://evil.example/x",
            "https://app.example",
            "https://api.example",
            "https://api.example/",
            "HTTPS://APP.EXAMPLE/",
            "/refresh",
            "",
            "GET",
            "POST",
            "DPoP",
            "dpop",
            "Bearer",
            "webcrypto",
            "webcrypto-p256",
            "wasm",
            "s1",
            "s2",
            "stamp-1",
            "stamp-2",
            "sync",
            "login",
            "ended",
            "active",
            "expired",
            "revoked",
            "closed",
            "DPoP error=\"use_dpop_nonce\"",
            "DPoP error=\"invalid_token\"",
            "DPoP algs=\"EdDSA ES256\", error=\"invalid_dpop_proof\"",
            "n-1",
            "120",
            "Wed, 21 Oct 2026 07:28:00 GMT",
            "at~x\nrt~y",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let wire = keybound_proto::wire::code::ALL
            .iter()
            .chain(keybound_proto::wire::oauth::ALL);
        words.extend(wire.map(|c| c.code.to_owned()));
        words
    })
}

/// The vectors' device keys as WebCrypto exports them raw: Ed25519 (32 bytes) and
/// P-256 (`04 || x || y`).
fn device_keys() -> &'static [Vec<u8>; 2] {
    static KEYS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/keys.json")).unwrap_or_default();
        let coordinate = |name: &str, member: &str| {
            URL_SAFE_NO_PAD
                .decode(
                    keys[name]["public_jwk"][member]
                        .as_str()
                        .unwrap_or_default(),
                )
                .unwrap_or_default()
        };
        let ed25519 = coordinate("device", "x");
        let p256 = [
            vec![4],
            coordinate("device_p256", "x"),
            coordinate("device_p256", "y"),
        ]
        .concat();
        assert_eq!((ed25519.len(), p256.len()), (32, 65), "the vectors' keys");
        [ed25519, p256]
    })
}

/// One engine and what the harness knows about what it was given.
struct Run {
    calls: Calls,
    /// Every string and byte string passed other than as a token: what a method may
    /// rightly echo.
    echoes: Vec<Vec<u8>>,
    /// Token texts with `~`, given as tokens.
    secrets: Vec<String>,
    /// Every access and refresh token text given (for the three that hand them out).
    access: Vec<String>,
    refresh: Vec<String>,
    /// `access \n refresh` of the last accepted token response, until `adopt_pending`.
    pending: Option<String>,
    /// The thumbprint of the last key taken up.
    thumbprint: Option<String>,
    /// The record the driver stored last: sealable, session id, numbers.
    stored: Option<(String, String, Vec<f64>)>,
}

impl Run {
    fn new(setup: &Setup) -> Run {
        let mut run = Run {
            calls: Calls::new(&[]),
            echoes: Vec::new(),
            secrets: Vec::new(),
            access: Vec::new(),
            refresh: Vec::new(),
            pending: None,
            thumbprint: None,
            stored: None,
        };
        let args = match setup {
            Setup::Driver { lead, origins } => {
                let origins = match origins {
                    None => ALLOWED.to_owned(),
                    Some(other) => run.text(other),
                };
                let mut enc = Enc::default();
                enc.str(ENDPOINT);
                enc.num(num(lead));
                enc.str(&origins);
                enc.0
            }
            Setup::Values(values) => run.encode(values),
            Setup::Bytes(bytes) => bytes.clone(),
        };
        for value in decode_all(&args) {
            if let Value::Str(s) | Value::Bytes(s) = value {
                run.echo(s);
            }
        }
        run.calls = Calls::new(&args);
        run
    }

    fn step(&mut self, call: &Call) {
        match call {
            Call::TakeKey { key, keep } => self.take_key(key, *keep),
            Call::Respond(response) => self.respond(response),
            Call::Store { stamp, adopt } => self.store(*stamp, *adopt),
            Call::Stage {
                stamp,
                jkt,
                then,
                now,
            } => self.stage(*stamp, *jkt, *then, now),
            Call::Answer(answer) => self.answer(answer),
            Call::Sign {
                method,
                url,
                nonce,
                jti,
                now,
            } => self.sign(method, url, nonce.as_ref(), jti, now),
            Call::Method { op, args, bent } => {
                let index = usize::from(*op) % OPS.len();
                let (_, types, _) = OPS[index];
                let mut enc = Enc::default();
                for (i, ty) in types.iter().enumerate() {
                    let value = args.get(i).unwrap_or(&Val::Absent);
                    match bent.map(|b| usize::from(b) % (types.len() + 1)) {
                        Some(j) if j == i => self.put(&mut enc, value),
                        Some(j) if j == types.len() && i + 1 == types.len() => {}
                        _ => self.put_as(&mut enc, *ty, value),
                    }
                }
                let bytes = enc.0;
                let result = self.call(index as u32, &bytes);
                if bent.is_none() {
                    assert_ne!(
                        result,
                        [REFUSED],
                        "{}: a well-shaped call was refused",
                        OPS[index].0
                    );
                }
            }
            Call::Raw { op, args, junk } => {
                let mut bytes = self.encode(args);
                bytes.extend_from_slice(junk);
                let result = self.call(*op, &bytes);
                if *op as usize >= OPS.len() {
                    assert_eq!(result, [REFUSED], "unknown method {op} was not refused");
                }
            }
        }
    }

    // ---- the driver's steps -------------------------------------------------------------

    fn take_key(&mut self, key: &Key, keep: Option<bool>) {
        let (kind, public_key) = match key {
            Key::Ed25519 => ("webcrypto".to_owned(), device_keys()[0].clone()),
            Key::P256 => ("webcrypto-p256".to_owned(), device_keys()[1].clone()),
            Key::Wasm => ("wasm".to_owned(), device_keys()[0].clone()),
            Key::Any { kind, bytes } => (self.text(kind), bytes.clone()),
        };
        let mut enc = Enc::default();
        enc.str(&kind);
        enc.bytes(&public_key);
        let jwk = self.call_named("key_jwk", &enc.0);
        let Some(Value::Str(jwk)) = decode_one(&jwk) else {
            return;
        };
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(jwk));
        let mut enc = Enc::default();
        enc.str(&kind);
        enc.bytes(&public_key);
        enc.str(&thumbprint);
        let set = self.call_named("set_key", &enc.0);
        assert_eq!(
            decode_one(&set),
            Some(Value::Num(1.0)),
            "a key whose JWK the engine wrote was not taken up"
        );
        self.thumbprint = Some(thumbprint);
        if let Some(force_wasm) = keep {
            let mut enc = Enc::default();
            enc.num(f64::from(u8::from(force_wasm)));
            self.call_named("keep_key", &enc.0);
        }
    }

    fn respond(&mut self, r: &Response) {
        let token = |tok: &Tok, mark: &str| match tok {
            Tok::Marked(n, rest) => {
                let rest: String = rest
                    .chars()
                    .filter(|c| is_token_char(*c))
                    .take(64)
                    .collect();
                Some(format!("{mark}~{n}{rest}"))
            }
            Tok::Any(any) => any.clone(),
        };
        let server_secs = (NOW_MS / 1000.0).floor() + num(&r.skew);
        let mut enc = Enc::default();
        enc.maybe_str(token(&r.access, "at").as_deref());
        match &r.token_type {
            None => enc.str("DPoP"),
            Some(text) => {
                let text = self.text(text);
                enc.str(&text);
            }
        }
        enc.num(num(&r.expires_in));
        enc.maybe_str(token(&r.refresh, "rt").as_deref());
        let session = self.text(&r.session);
        enc.str(&session);
        enc.num(server_secs + num(&r.absolute));
        enc.num(server_secs + num(&r.idle));
        enc.num(server_secs);
        enc.num(NOW_MS + num(&r.sent));
        enc.num(NOW_MS + num(&r.received));
        self.call_named("take_response", &enc.0);
    }

    fn store(&mut self, stamp: u8, adopt: bool) {
        let sealable = self.call_named("pending_sealable", &[]);
        let session = self.call_named("pending_session_id", &[]);
        let numbers = self.call_named("pending_numbers", &[]);
        if let (Some(Value::Str(plain)), Some(Value::Str(session)), Some(Value::Numbers(n))) = (
            decode_one(&sealable),
            decode_one(&session),
            decode_one(&numbers),
        ) {
            self.stored = Some((
                String::from_utf8_lossy(plain).into_owned(),
                String::from_utf8_lossy(session).into_owned(),
                n,
            ));
        }
        if adopt {
            let mut enc = Enc::default();
            enc.str(&format!("stamp-{stamp}"));
            self.call_named("adopt_pending", &enc.0);
        }
    }

    fn stage(&mut self, stamp: u8, jkt: u8, then: u8, now: &Num) {
        let Some((plain, session, numbers)) = self.stored.clone() else {
            self.call_named("stage_nothing", &[]);
            return;
        };
        let jkt = match (jkt % 4, &self.thumbprint) {
            (0, _) | (_, None) => URL_SAFE_NO_PAD.encode([jkt; 32]),
            (_, Some(current)) => current.clone(),
        };
        let mut enc = Enc::default();
        enc.str(&plain);
        enc.str(&session);
        enc.str(&jkt);
        enc.str(&format!("stamp-{stamp}"));
        enc.nums(&numbers);
        self.call_named("stage_live", &enc.0);
        let mut at = Enc::default();
        at.num(NOW_MS + num(now));
        match then % 5 {
            0 => self.call_named("resume", &at.0),
            1 => self.call_named("reload", &[]),
            2 => self.call_named("kept_alive", &at.0),
            3 => {
                let mut enc = Enc::default();
                enc.maybe_str(None);
                enc.num(f64::from(then & 8));
                enc.num(NOW_MS + num(now));
                self.call_named("refresh_plan", &enc.0)
            }
            _ => self.call_named("refresh_body", &[]),
        };
    }

    fn sign(&mut self, method: &Text, url: &Text, nonce: Option<&Text>, jti: &[u8; 16], now: &Num) {
        let mut at = Enc::default();
        at.num(NOW_MS + num(now));
        self.call_named("begin_request", &at.0);
        let token = self.call_named("access_token", &[]);
        let ath = match decode_one(&token) {
            Some(Value::Str(token)) => Some(URL_SAFE_NO_PAD.encode(Sha256::digest(token))),
            _ => None,
        };
        let mut enc = Enc::default();
        let method = self.text(method);
        enc.str(if method.is_empty() { "GET" } else { &method });
        let url = self.text(url);
        enc.str(&url);
        enc.maybe_str(ath.as_deref());
        let nonce = nonce.map(|n| self.text(n));
        enc.maybe_str(nonce.as_deref());
        enc.bytes(jti);
        enc.num(NOW_MS + num(now));
        let input = self.call_named("proof_input", &enc.0);
        if let Some(Value::Str(input)) = decode_one(&input) {
            let mut enc = Enc::default();
            enc.str(&String::from_utf8_lossy(input));
            enc.bytes(&[jti[0]; 64]);
            self.call_named("proof_finish", &enc.0);
        }
    }

    fn answer(&mut self, a: &ServerAnswer) {
        const STATUSES: [u16; 12] = [200, 201, 204, 400, 401, 403, 404, 408, 429, 500, 503, 302];
        let status = match a.status {
            Status::Known(i) => STATUSES[usize::from(i) % STATUSES.len()],
            Status::Any(n) => n,
        };
        let mut enc = Enc::default();
        enc.num(f64::from(a.exchange % 6));
        enc.num(f64::from(a.budget));
        let url = self.text(&a.url);
        enc.str(&url);
        enc.num(f64::from(status));
        for text in [&a.challenge, &a.error, &a.code, &a.description, &a.nonce] {
            let text = text.as_ref().map(|t| self.text(t));
            enc.maybe_str(text.as_deref());
        }
        enc.num(num(&a.date) * 1000.0);
        let retry_after = a.retry_after.as_ref().map(|t| self.text(t));
        enc.maybe_str(retry_after.as_deref());
        enc.num(num(&a.retry_after_date) * 1000.0);
        enc.num(NOW_MS + num(&a.sent));
        enc.num(NOW_MS + num(&a.received));
        self.call_named("answer", &enc.0);
    }

    // ---- values -------------------------------------------------------------------------

    fn text(&self, text: &Text) -> String {
        match text {
            Text::Word(i) => {
                let words = words();
                words[usize::from(*i) % words.len()].clone()
            }
            Text::Thumbprint(true) => self.thumbprint.clone().unwrap_or_default(),
            Text::Thumbprint(false) => URL_SAFE_NO_PAD.encode([7u8; 32]),
            Text::Any(s) => s.clone(),
        }
    }

    fn bin(&self, bin: &Bin) -> Vec<u8> {
        match bin {
            Bin::Jti(jti) => jti.to_vec(),
            Bin::Signature(b) => vec![*b; 64],
            Bin::Key(i) => device_keys()[usize::from(*i) % 2].clone(),
            Bin::Any(bytes) => bytes.clone(),
        }
    }

    fn nums(&self, nums: &Nums) -> Vec<f64> {
        match nums {
            Nums::Stored => self
                .stored
                .as_ref()
                .map(|s| s.2.clone())
                .unwrap_or_default(),
            Nums::Any(list) => list.iter().map(num).collect(),
        }
    }

    /// `value` as it is.
    fn put(&self, enc: &mut Enc, value: &Val) {
        match value {
            Val::Absent => enc.absent(),
            Val::Num(n) => enc.num(num(n)),
            Val::Text(t) => enc.str(&self.text(t)),
            Val::Bytes(b) => enc.bytes(&self.bin(b)),
            Val::Numbers(n) => enc.nums(&self.nums(n)),
        }
    }

    /// `value` as an argument of type `ty`.
    fn put_as(&self, enc: &mut Enc, ty: Ty, value: &Val) {
        match (ty, value) {
            (Ty::Ms, Val::Absent) => enc.absent(),
            (Ty::S | Ty::Ms, Val::Text(t)) => enc.str(&self.text(t)),
            (Ty::S | Ty::Ms, _) => enc.str(""),
            (Ty::N, Val::Num(n)) => enc.num(num(n)),
            (Ty::N, _) => enc.num(NOW_MS),
            (Ty::B, Val::Bytes(b)) => enc.bytes(&self.bin(b)),
            (Ty::B, _) => enc.bytes(&[0; 16]),
            (Ty::L, Val::Numbers(n)) => enc.nums(&self.nums(n)),
            (Ty::L, _) => enc.nums(&[]),
        }
    }

    fn encode(&self, values: &[Val]) -> Vec<u8> {
        let mut enc = Enc::default();
        for value in values {
            self.put(&mut enc, value);
        }
        enc.0
    }

    // ---- calls and their checks ---------------------------------------------------------

    fn call_named(&mut self, name: &str, args: &[u8]) -> Vec<u8> {
        let op = OPS.iter().position(|(n, _, _)| *n == name).unwrap_or(0);
        self.call(op as u32, args)
    }

    /// Calls the engine and checks the result.
    fn call(&mut self, op: u32, args: &[u8]) -> Vec<u8> {
        let method = OPS.get(op as usize);
        let name = method.map_or("unknown", |(name, _, _)| *name);
        // What the call gives the engine: tokens at their places, echoes elsewhere.
        let values = decode_all(args);
        for (i, value) in values.iter().enumerate() {
            let (Value::Str(s) | Value::Bytes(s)) = value else {
                continue;
            };
            let text = String::from_utf8_lossy(s).into_owned();
            match (name, i) {
                ("take_response", 0) => self.token(text, true),
                ("take_response", 3) => self.token(text, false),
                ("stage_live", 0) => {
                    let mut parts = text.split('\n');
                    if let Some(at) = parts.next() {
                        self.token(at.to_owned(), true);
                    }
                    for rt in parts {
                        self.token(rt.to_owned(), false);
                    }
                }
                _ => self.echo(s),
            }
        }

        let result = self.calls.call(op, args);

        if result == [REFUSED] {
            return result;
        }
        let Some((_, _, ret)) = method else {
            panic!("unknown method {op} answered {result:?}");
        };
        if result.is_empty() {
            assert_eq!(*ret, Ret::Nothing, "{name} answered no value");
            return result;
        }
        let Some(value) = decode_one(&result) else {
            panic!("{name}: the result is not one tagged value: {result:?}");
        };
        match (ret, &value) {
            (Ret::Str | Ret::MaybeStr, Value::Str(s)) => assert!(
                std::str::from_utf8(s).is_ok(),
                "{name}: a string that is not UTF-8"
            ),
            (Ret::MaybeStr, Value::Absent)
            | (Ret::Number, Value::Num(_))
            | (Ret::Numbers, Value::Numbers(_)) => {}
            (Ret::Flag, Value::Num(n)) => assert!(*n == 0.0 || *n == 1.0, "{name}: flag {n}"),
            _ => panic!("{name}: a {ret:?} method answered {value:?}"),
        }

        self.check_tokens(name, args, &value);
        result
    }

    /// Notes an argument a method may echo, as it is and inside base64url.
    fn echo(&mut self, s: &[u8]) {
        self.echoes.push(s.to_vec());
        if let Ok(text) = std::str::from_utf8(s) {
            self.echoes.extend(base64url_runs(text));
        }
    }

    fn token(&mut self, text: String, access: bool) {
        if text.contains('~') && !self.secrets.contains(&text) {
            self.secrets.push(text.clone());
        }
        let known = if access {
            &mut self.access
        } else {
            &mut self.refresh
        };
        if !known.contains(&text) {
            known.push(text);
        }
    }

    fn check_tokens(&mut self, name: &str, args: &[u8], value: &Value<'_>) {
        let text = match value {
            Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
            _ => String::new(),
        };
        match name {
            "take_response" => {
                if *value == Value::Num(1.0) {
                    let given = decode_all(args);
                    let text = |i: usize| match given.get(i) {
                        Some(Value::Str(s)) => String::from_utf8_lossy(s).into_owned(),
                        _ => String::new(),
                    };
                    self.pending = Some(format!("{}\n{}", text(0), text(3)));
                }
            }
            "adopt_pending" => self.pending = None,
            "pending_sealable" => {
                let got = match value {
                    Value::Str(_) => Some(text.clone()),
                    _ => None,
                };
                assert_eq!(
                    got, self.pending,
                    "pending_sealable is not the pending tokens"
                );
            }
            "access_token" => {
                if let Value::Str(_) = value {
                    assert!(
                        self.access.contains(&text),
                        "access_token handed out a text never given as an access token"
                    );
                }
            }
            "refresh_body" => {
                if let Value::Str(_) = value {
                    let token = text
                        .strip_prefix(r#"{"refresh_token":""#)
                        .and_then(|t| t.strip_suffix(r#""}"#));
                    assert!(
                        token.is_some_and(|t| self.refresh.iter().any(|r| r == t)),
                        "refresh_body is not a body with a refresh token given"
                    );
                }
            }
            _ => {
                if text.is_empty() {
                    return;
                }
                let decoded = base64url_runs(&text);
                for secret in &self.secrets {
                    if self.echoes.iter().any(|e| contains(e, secret.as_bytes())) {
                        continue;
                    }
                    // Inside base64url only from 12 characters on: shorter texts turn
                    // up by chance when words are decoded as if they were base64url.
                    let encoded = secret.len() >= 12
                        && decoded.iter().any(|d| contains(d, secret.as_bytes()));
                    assert!(
                        !text.contains(secret.as_str()) && !encoded,
                        "{name} leaked a token"
                    );
                }
            }
        }
    }
}

/// A character a token may hold (the engine refuses tokens with others).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.~+/=".contains(c)
}

/// Every maximal run of base64url characters in `text`, decoded (where it decodes).
fn base64url_runs(text: &str) -> Vec<Vec<u8>> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|run| run.len() >= 4)
        .filter_map(|run| URL_SAFE_NO_PAD.decode(run).ok())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn num(n: &Num) -> f64 {
    match n {
        Num::Now(secs) => NOW_MS + f64::from(*secs) * 1000.0,
        Num::Secs(secs) => (NOW_MS / 1000.0).floor() + f64::from(*secs),
        Num::Small(n) => f64::from(*n),
        Num::Special(i) => [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            9.0e15,
            -9.0e15,
            8.64e15,
            9.3e18,
            -9.3e18,
            4_294_967_296.0,
            65_536.0,
            0.5,
            1e300,
        ][usize::from(*i) % 16],
        Num::Any(n) => *n,
    }
}

/// Arguments as `js/engine.js` encodes them.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn absent(&mut self) {
        self.0.push(ABSENT);
    }

    fn num(&mut self, n: f64) {
        self.0.push(NUMBER);
        self.0.extend_from_slice(&n.to_le_bytes());
    }

    fn len(&mut self, tag: u8, n: usize) {
        self.0.push(tag);
        self.0
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.len(STRING, s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn maybe_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.absent(),
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(BYTES, b.len());
        self.0.extend_from_slice(b);
    }

    fn nums(&mut self, ns: &[f64]) {
        self.len(NUMBERS, ns.len());
        for n in ns {
            self.0.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// A tagged value, read independently of the engine's reader.
#[derive(Debug, PartialEq)]
enum Value<'a> {
    Absent,
    Num(f64),
    Str(&'a [u8]),
    Bytes(&'a [u8]),
    Numbers(Vec<f64>),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok()
    }

    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn value(&mut self) -> Option<Value<'a>> {
        let tag = *self.take(1)?.first()?;
        Some(match tag {
            ABSENT => Value::Absent,
            NUMBER => Value::Num(self.f64()?),
            STRING => {
                let n = self.u32()?;
                Value::Str(self.take(n)?)
            }
            BYTES => {
                let n = self.u32()?;
                Value::Bytes(self.take(n)?)
            }
            NUMBERS => {
                let n = self.u32()?;
                if n > self.0.len() / 8 {
                    return None;
                }
                Value::Numbers((0..n).filter_map(|_| self.f64()).collect())
            }
            _ => return None,
        })
    }
}

/// The values at the start of `bytes`, up to the first that does not read.
fn decode_all(bytes: &[u8]) -> Vec<Value<'_>> {
    let mut reader = Reader(bytes);
    std::iter::from_fn(|| reader.value()).collect()
}

/// The one value `bytes` holds.
fn decode_one(bytes: &[u8]) -> Option<Value<'_>> {
    let mut reader = Reader(bytes);
    let value = reader.value()?;
    reader.0.is_empty().then_some(value)
}
