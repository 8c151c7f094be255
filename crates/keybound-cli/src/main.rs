//! `keybound`: keys, JWK thumbprints, DPoP proofs, access tokens and their verification
//! from the command line, for wiring DPoP by hand and as a black-box test interface.
//!
//! Exit codes: 0 success; 1 `verify` rejected the credentials (the JSON error body is
//! on stdout); 2 bad input or usage (one line on stderr).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use keybound_proto::{
    AccessTokenClaims, MAX_JWS_LEN, ProofAlg, ProofBuilder, PublicJwk, RequestContext, Signer as _,
    b64, decode_unverified, normalize_htu,
};
use keybound_server::KeyRing;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

mod device;
mod error;
mod input;
mod verify;

use device::DeviceKey;
use error::CliError;
use input::{private_key_from_json, read_json_object, read_jwks, read_jws, read_private_key};

const ABOUT: &str = "keybound: Ed25519 and P-256 keys, JWK thumbprints, DPoP proofs \
(RFC 9449, EdDSA and ES256), access tokens (at+jwt) and their verification.";

const LONG_ABOUT: &str = "\
keybound: Ed25519 and P-256 keys, JWK thumbprints, DPoP proofs (RFC 9449, EdDSA and
ES256), access tokens (at+jwt) and their verification, for wiring DPoP by hand,
debugging and tests.

Every argument that takes a JWK, a JWKS, a proof or a token accepts the text itself or
@FILE to read it from a file (@- reads standard input). Prefer @FILE for private keys:
command lines are visible to other users of the machine.

Exit codes: 0 success; 1 `verify` rejected the request (JSON error body on stdout);
2 bad input or usage (one line on stderr).";

const EXAMPLES: &str = "\
Examples:
  keybound keygen --out device.jwk
  keybound thumbprint @device.jwk
  curl -H \"DPoP: $(keybound proof --key @device.jwk --method GET --url https://api.example.com/me)\" \\
       https://api.example.com/me
  keybound inspect \"$PROOF\"";

#[derive(Parser)]
#[command(name = "keybound", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a new private key as a JWK: Ed25519 (default) or P-256 (--alg ES256).
    #[command(
        long_about = "Generate a new private key as a JWK with members kty, crv, x, d and kid \
(kid = the key's RFC 7638 thumbprint): Ed25519 ({\"kty\":\"OKP\",\"crv\":\"Ed25519\",…}) by \
default, which serves as a device key (`proof --key`, alg EdDSA) and as a server signing \
key (`token --key`, `jwks`); or with --alg ES256 an ECDSA P-256 device key \
({\"kty\":\"EC\",\"crv\":\"P-256\",\"x\",\"y\",\"d\",\"kid\"}), for ES256 proofs.

Without --out the JWK is printed on stdout. With --out it is written to FILE with mode \
0600, atomically (complete or not at all), and an existing FILE is never replaced unless \
--force is given.",
        after_help = "Examples:\n  keybound keygen --out device.jwk\n  keybound keygen --alg ES256 --out device-p256.jwk\n  keybound keygen --out server.jwk --force"
    )]
    Keygen {
        /// The key's algorithm: EdDSA (Ed25519) or ES256 (P-256).
        #[arg(long, value_name = "ALG", default_value = "EdDSA", value_parser = parse_alg)]
        alg: ProofAlg,
        /// Write the key to FILE (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE if it exists (the old key is lost).
        #[arg(long, requires = "out")]
        force: bool,
    },

    /// Print the RFC 7638 thumbprint (jkt) of an Ed25519 or P-256 JWK.
    #[command(
        long_about = "Print the RFC 7638 JWK thumbprint (the `jkt` that access tokens are bound \
to) of an Ed25519 (OKP) or P-256 (EC) JWK. A private JWK is accepted too: its public half \
is used.",
        after_help = "Examples:\n  keybound thumbprint @device.jwk\n  keybound thumbprint \
'{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}'"
    )]
    Thumbprint {
        /// The JWK: JSON text or @FILE.
        #[arg(value_name = "JWK")]
        jwk: String,
    },

    /// Print the JWKS (public keys) for server signing keys.
    #[command(
        long_about = "Print the JWKS document (as served at /.well-known/jwks.json) holding \
the public halves of server signing keys, for `verify --jwks`. The first KEY must be \
private (the current signing key); further keys are previous keys, private or public, \
and each needs a kid.",
        after_help = "Example:\n  keybound jwks @server.jwk > jwks.json"
    )]
    Jwks {
        /// Server keys: JSON text or @FILE; the first one private.
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },

    /// Print a DPoP proof for one request.
    #[command(
        long_about = "Print a DPoP proof (compact JWS, typ dpop+jwt) for one request, signed \
with a private device key: alg EdDSA for an Ed25519 key, ES256 (the 64-byte r || s \
signature) for a P-256 key. The URL is normalised into htu (query and \
fragment dropped). jti is 128 random bits; iat is now unless --iat is given. With \
--access-token the proof carries ath, the token's SHA-256 hash.",
        after_help = "Examples:
  curl -H \"DPoP: $(keybound proof --key @device.jwk --method GET --url https://api.example.com/me)\" \\
       https://api.example.com/me
  curl -H \"Authorization: DPoP $AT\" \\
       -H \"DPoP: $(keybound proof --key @device.jwk --method POST --url https://api.example.com/orders --access-token \"$AT\")\" \\
       -X POST https://api.example.com/orders"
    )]
    Proof {
        /// The private device key: JWK text or @FILE.
        #[arg(long, value_name = "JWK")]
        key: String,
        /// The request's HTTP method (htm), exactly as sent, e.g. GET.
        #[arg(long, value_name = "M")]
        method: String,
        /// The request's URL (htu).
        #[arg(long, value_name = "U")]
        url: String,
        /// The access token sent with the request (adds ath): text or @FILE.
        #[arg(long, value_name = "AT", allow_hyphen_values = true)]
        access_token: Option<String>,
        /// A nonce the server issued in DPoP-Nonce.
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        nonce: Option<String>,
        /// Issued-at time, seconds since the epoch (default: now).
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        iat: Option<i64>,
    },

    /// Print a signed access token (at+jwt) bound to a device key.
    #[command(
        long_about = "Print an access token (compact JWS, typ at+jwt, alg EdDSA) signed with a \
private server key, bound to a device key by cnf.jkt. For tests and debugging: a real \
service issues tokens at login and refresh.",
        after_help = "Example:
  keybound token --key @server.jwk --sub user-42 --sid session-1 \\
      --jkt \"$(keybound thumbprint @device.jwk)\" --ttl 300"
    )]
    Token {
        /// The private server key: JWK text or @FILE (its kid goes into the header).
        #[arg(long, value_name = "SERVER_JWK")]
        key: String,
        /// The user id (sub).
        #[arg(long, value_name = "S", allow_hyphen_values = true)]
        sub: String,
        /// The session id (sid).
        #[arg(long, value_name = "SID", allow_hyphen_values = true)]
        sid: String,
        /// Thumbprint of the device key the token is bound to (cnf.jkt).
        #[arg(long, value_name = "JKT", allow_hyphen_values = true)]
        jkt: String,
        /// Lifetime in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        ttl: u64,
        /// Issued-at time, seconds since the epoch (default: now).
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        iat: Option<i64>,
        /// The issuer (iss).
        #[arg(long, value_name = "ISS", default_value = "keybound")]
        iss: String,
    },

    /// Verify a DPoP proof (and access token) for one request.
    #[command(
        long_about = "Run keybound's ordered checks on a DPoP proof and, with --access-token, \
the access token: JOSE parsing, htm/htu against the request, iat window, ath, cnf.jkt \
against the proof key, token signature (key by kid from --jwks) and expiry, proof \
signature. Replay and nonce checks need server state and are not run.

Accepted: exit 0 and the verified claims as JSON on stdout. Rejected: exit 1 and \
{\"error\",\"error_description\",\"error_code\"} on stdout, where error is \
invalid_dpop_proof or invalid_token and error_code is keybound's precise code.",
        after_help = "Examples:
  keybound verify --method GET --url https://api.example.com/me --proof \"$PROOF\"
  keybound verify --method GET --url https://api.example.com/me --proof \"$PROOF\" \\
      --access-token \"$AT\" --jwks @jwks.json --max-skew 30"
    )]
    Verify {
        /// The request's HTTP method.
        #[arg(long, value_name = "M")]
        method: String,
        /// The request's URL as the service is reached publicly.
        #[arg(long, value_name = "U")]
        url: String,
        /// The DPoP proof: text or @FILE.
        #[arg(long, value_name = "P")]
        proof: String,
        /// The access token: text or @FILE (requires --jwks).
        #[arg(long, value_name = "AT", requires = "jwks", allow_hyphen_values = true)]
        access_token: Option<String>,
        /// The server's public keys (JWKS): JSON text or @FILE (requires --access-token).
        #[arg(long, value_name = "JWKS", requires = "access_token")]
        jwks: Option<String>,
        /// The time to verify at, seconds since the epoch (default: now).
        #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
        now: Option<i64>,
        /// Allowed distance between the proof's iat and now, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        max_skew: u64,
    },

    /// Decode a JWT's header and claims WITHOUT verifying anything.
    #[command(
        long_about = "Decode a compact JWT (a proof or an access token) and print its header \
and claims as JSON, labelled NOT VERIFIED: nothing is checked, not the signature, not \
the key, not the claims. Use `verify` to check.",
        after_help = "Example:\n  keybound inspect \"$PROOF\""
    )]
    Inspect {
        /// The JWT: text or @FILE.
        #[arg(value_name = "JWT")]
        jwt: String,
    },
}

/// How a command that ran to completion ended.
enum Outcome {
    /// Done; exit 0.
    Done,
    /// `verify` rejected the request; exit 1.
    Rejected,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
        Err(err) => {
            let _ = writeln!(io::stderr(), "keybound: error: {err}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<Outcome, CliError> {
    match command {
        Command::Keygen { alg, out, force } => keygen(alg, out, force),
        Command::Thumbprint { jwk } => thumbprint(&jwk),
        Command::Jwks { keys } => jwks(&keys),
        Command::Proof {
            key,
            method,
            url,
            access_token,
            nonce,
            iat,
        } => proof(
            &key,
            &method,
            &url,
            access_token.as_deref(),
            nonce.as_deref(),
            iat,
        ),
        Command::Token {
            key,
            sub,
            sid,
            jkt,
            ttl,
            iat,
            iss,
        } => token(&key, &sub, &sid, &jkt, ttl, iat, &iss),
        Command::Verify {
            method,
            url,
            proof,
            access_token,
            jwks,
            now,
            max_skew,
        } => verify(
            &method,
            &url,
            &proof,
            access_token.as_deref(),
            jwks.as_deref(),
            now,
            max_skew,
        ),
        Command::Inspect { jwt } => inspect(&jwt),
    }
}

/// A `--alg` value: a proof algorithm's name.
fn parse_alg(name: &str) -> Result<ProofAlg, String> {
    ProofAlg::from_name(name).ok_or_else(|| format!("{name:?}: expected EdDSA or ES256"))
}

fn keygen(alg: ProofAlg, out: Option<PathBuf>, force: bool) -> Result<Outcome, CliError> {
    let key = DeviceKey::generate(alg)?;
    let jwk = key.to_private_jwk()?;
    match out {
        None => emit(&jwk)?,
        Some(path) => {
            let contents = Zeroizing::new(format!("{}\n", jwk.as_str()));
            keybound_server::keyfile::write_private(&path, contents.as_bytes(), force).map_err(
                |source| match source.kind() {
                    std::io::ErrorKind::AlreadyExists => CliError::Exists {
                        path: path.display().to_string(),
                    },
                    _ => CliError::Write {
                        path: path.display().to_string(),
                        source,
                    },
                },
            )?;
            let kind = match alg {
                ProofAlg::EdDSA => "Ed25519",
                ProofAlg::ES256 => "P-256",
            };
            note(&format!(
                "wrote a new {kind} private key to {} (mode 0600); kid {}",
                path.display(),
                key.public_jwk().thumbprint()
            ));
        }
    }
    Ok(Outcome::Done)
}

fn thumbprint(arg: &str) -> Result<Outcome, CliError> {
    let json = read_json_object(arg, "JWK")?;
    let public = if json.value().get("d").is_some() {
        DeviceKey::from_json(json.value(), "JWK")?.public_jwk()
    } else {
        PublicJwk::from_json(json.value()).map_err(|e| CliError::invalid("JWK", e))?
    };
    emit(&public.thumbprint())?;
    Ok(Outcome::Done)
}

fn jwks(args: &[String]) -> Result<Outcome, CliError> {
    let Some((first, previous)) = args.split_first() else {
        return Err(CliError::invalid("KEY", "at least one key is needed"));
    };
    let mut ring = KeyRing::new(read_private_key(first, "KEY")?);
    for arg in previous {
        let json = read_json_object(arg, "KEY")?;
        let kid = match json.value().get("kid").and_then(Value::as_str) {
            Some(kid) if !kid.is_empty() => kid.to_owned(),
            _ => return Err(CliError::invalid("KEY", "a previous key needs a kid")),
        };
        let key = if json.value().get("d").is_some() {
            private_key_from_json(json.value(), "KEY")?.verifying_key()
        } else {
            PublicJwk::from_json(json.value())
                .and_then(|jwk| jwk.verifying_key())
                .map_err(|e| CliError::invalid("KEY", e))?
        };
        ring = ring.with_previous(kid, key);
    }
    emit(&pretty(&ring.jwks())?)?;
    Ok(Outcome::Done)
}

fn proof(
    key: &str,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    iat: Option<i64>,
) -> Result<Outcome, CliError> {
    check_method(method)?;
    let signer = DeviceKey::from_json(read_json_object(key, "--key")?.value(), "--key")?;
    let iat = iat.unwrap_or_else(now_secs);
    let mut builder = ProofBuilder::new(signer.public_jwk(), method, url, iat, random_16()?)
        .map_err(|e| CliError::invalid("--url", e))?;
    if let Some(arg) = access_token {
        builder = builder.access_token(&read_jws(arg, "--access-token")?);
    }
    if let Some(nonce) = nonce {
        if nonce.is_empty() {
            return Err(CliError::invalid("--nonce", "is empty"));
        }
        builder = builder.nonce(nonce);
    }
    let proof = builder
        .sign(&signer)
        .map_err(|e| CliError::invalid("--key", e))?;
    emit(&proof)?;
    Ok(Outcome::Done)
}

fn token(
    key: &str,
    sub: &str,
    sid: &str,
    jkt: &str,
    ttl: u64,
    iat: Option<i64>,
    iss: &str,
) -> Result<Outcome, CliError> {
    for (what, value) in [("--sub", sub), ("--sid", sid), ("--iss", iss)] {
        if value.is_empty() {
            return Err(CliError::invalid(what, "is empty"));
        }
    }
    if b64::decode_array::<32>(jkt, "jkt").is_err() {
        return Err(CliError::invalid(
            "--jkt",
            "expected a JWK thumbprint (43 characters of base64url, as `keybound thumbprint` prints)",
        ));
    }
    if ttl == 0 {
        return Err(CliError::invalid("--ttl", "must be at least 1 second"));
    }
    let ring = KeyRing::new(read_private_key(key, "--key")?);
    let iat = iat.unwrap_or_else(now_secs);
    let exp = i64::try_from(ttl)
        .ok()
        .and_then(|ttl| iat.checked_add(ttl))
        .ok_or_else(|| CliError::invalid("--ttl", "iat + ttl is out of range"))?;
    let claims = AccessTokenClaims {
        iss: iss.to_owned(),
        sub: sub.to_owned(),
        sid: sid.to_owned(),
        jti: b64::encode(random_16()?),
        iat,
        exp,
        jkt: jkt.to_owned(),
    };
    let token = ring
        .sign(&claims)
        .map_err(|e| CliError::invalid("--key", e))?;
    emit(&token)?;
    Ok(Outcome::Done)
}

fn verify(
    method: &str,
    url: &str,
    proof: &str,
    access_token: Option<&str>,
    jwks: Option<&str>,
    now: Option<i64>,
    max_skew: u64,
) -> Result<Outcome, CliError> {
    check_method(method)?;
    normalize_htu(url).map_err(|e| CliError::invalid("--url", e))?;
    let proof = read_jws(proof, "--proof")?;
    let access_token = access_token
        .map(|arg| read_jws(arg, "--access-token"))
        .transpose()?;
    let keys = jwks.map(|arg| read_jwks(arg, "--jwks")).transpose()?;
    let token = match (&access_token, &keys) {
        (Some(token), Some(keys)) => Some((token.as_str(), keys)),
        (None, None) => None,
        _ => {
            return Err(CliError::invalid(
                "--access-token",
                "--access-token and --jwks go together",
            ));
        }
    };
    let input = verify::VerifyInput {
        ctx: RequestContext {
            method,
            url,
            now: now.unwrap_or_else(now_secs),
            max_skew_secs: max_skew,
            max_jws_len: MAX_JWS_LEN,
        },
        proof: &proof,
        token,
    };
    match verify::verify(&input) {
        Ok(checked) => {
            emit(&pretty(&verify::Verified::new(&checked))?)?;
            Ok(Outcome::Done)
        }
        Err(body) => {
            let body = serde_json::to_string(&body)
                .map_err(|e| CliError::invalid("output", e.to_string()))?;
            emit(&body)?;
            Ok(Outcome::Rejected)
        }
    }
}

/// What `keybound inspect` prints, the warning first.
#[derive(Serialize)]
struct Inspected {
    verified: bool,
    warning: &'static str,
    header: Value,
    claims: Value,
}

fn inspect(arg: &str) -> Result<Outcome, CliError> {
    let jwt = read_jws(arg, "JWT")?;
    let (header, claims) = decode_unverified(&jwt).map_err(|e| CliError::invalid("JWT", e))?;
    let out = Inspected {
        verified: false,
        warning: "NOT VERIFIED: decoded only; signature, key and claims were not checked",
        header,
        claims,
    };
    note("NOT VERIFIED: decoded only; use `keybound verify` to check a proof or token");
    emit(&pretty(&out)?)?;
    Ok(Outcome::Done)
}

/// An HTTP method must be a non-empty RFC 9110 token; it is compared exactly, so it is
/// not case-folded.
fn check_method(method: &str) -> Result<(), CliError> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if method.is_empty() || !method.bytes().all(tchar) {
        return Err(CliError::invalid(
            "--method",
            "expected an HTTP method such as GET or POST",
        ));
    }
    Ok(())
}

fn random_16() -> Result<[u8; 16], CliError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CliError::Random(e.to_string()))?;
    Ok(bytes)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn pretty(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(|e| CliError::invalid("output", e.to_string()))
}

/// Prints one line of output. A closed pipe (`keybound … | head -c 10`) is not an error.
fn emit(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(CliError::Write {
            path: "standard output".into(),
            source,
        }),
    }
}

/// A message for the human at the terminal, on stderr.
fn note(message: &str) {
    let _ = writeln!(io::stderr(), "keybound: {message}");
}
