//! The `keybound` commands: what each one checks, computes and prints.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use keybound_proto::{
    AccessTokenClaims, MAX_JWS_LEN, ProofAlg, ProofBuilder, PublicJwk, RequestContext, Signer as _,
    b64, decode_unverified, normalize_htu,
};
use keybound_server::KeyRing;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::args::Command;
use crate::device::DeviceKey;
use crate::error::CliError;
use crate::input::{
    private_key_from_json, read_json_object, read_jwks, read_jws, read_private_key,
};
use crate::verify;
use crate::{Outcome, Output};

/// Runs one parsed command, printing through `output`.
pub(crate) fn execute(command: Command, output: &mut Output<'_>) -> Result<Outcome, CliError> {
    match command {
        Command::Keygen { alg, out, force } => keygen(output, alg, out, force),
        Command::Thumbprint { jwk } => thumbprint(output, &jwk),
        Command::Jwks { keys } => jwks(output, &keys),
        Command::Proof {
            key,
            method,
            url,
            access_token,
            nonce,
            iat,
        } => proof(
            output,
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
        } => {
            output.emit(&token(&key, &sub, &sid, &jkt, ttl, iat, &iss)?)?;
            Ok(Outcome::Done)
        }
        Command::Verify {
            method,
            url,
            proof,
            access_token,
            jwks,
            now,
            max_skew,
        } => {
            let (outcome, body) = verify(
                &method,
                &url,
                &proof,
                access_token.as_deref(),
                jwks.as_deref(),
                now,
                max_skew,
            )?;
            output.emit(&body)?;
            Ok(outcome)
        }
        Command::Inspect { jwt } => inspect(output, &jwt),
    }
}

fn keygen(
    output: &mut Output<'_>,
    alg: ProofAlg,
    out: Option<PathBuf>,
    force: bool,
) -> Result<Outcome, CliError> {
    let key = DeviceKey::generate(alg)?;
    let jwk = key.to_private_jwk()?;
    match out {
        None => output.emit(&jwk)?,
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
            output.note(&format!(
                "wrote a new {kind} private key to {} (mode 0600); kid {}",
                path.display(),
                key.public_jwk().thumbprint()
            ));
        }
    }
    Ok(Outcome::Done)
}

fn thumbprint(output: &mut Output<'_>, arg: &str) -> Result<Outcome, CliError> {
    let json = read_json_object(arg, "JWK")?;
    let public = if json.value().get("d").is_some() {
        DeviceKey::from_json(json.value(), "JWK")?.public_jwk()
    } else {
        PublicJwk::from_json(json.value()).map_err(|e| CliError::invalid("JWK", e))?
    };
    output.emit(&public.thumbprint())?;
    Ok(Outcome::Done)
}

fn jwks(output: &mut Output<'_>, args: &[String]) -> Result<Outcome, CliError> {
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
    output.emit(&pretty(&ring.jwks())?)?;
    Ok(Outcome::Done)
}

fn proof(
    output: &mut Output<'_>,
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
    output.emit(&proof)?;
    Ok(Outcome::Done)
}

/// Signs the access token `keybound token` prints.
fn token(
    key: &str,
    sub: &str,
    sid: &str,
    jkt: &str,
    ttl: u64,
    iat: Option<i64>,
    iss: &str,
) -> Result<String, CliError> {
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
    ring.sign(&claims)
        .map_err(|e| CliError::invalid("--key", e))
}

/// Verifies a request; the result is the JSON to print and whether it was accepted.
fn verify(
    method: &str,
    url: &str,
    proof: &str,
    access_token: Option<&str>,
    jwks: Option<&str>,
    now: Option<i64>,
    max_skew: u64,
) -> Result<(Outcome, String), CliError> {
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
        Ok(checked) => Ok((Outcome::Done, pretty(&verify::Verified::new(&checked))?)),
        Err(body) => {
            let body = serde_json::to_string(&body)
                .map_err(|e| CliError::invalid("output", e.to_string()))?;
            Ok((Outcome::Rejected, body))
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

fn inspect(output: &mut Output<'_>, arg: &str) -> Result<Outcome, CliError> {
    let jwt = read_jws(arg, "JWT")?;
    let (header, claims) = decode_unverified(&jwt).map_err(|e| CliError::invalid("JWT", e))?;
    let out = Inspected {
        verified: false,
        warning: "NOT VERIFIED: decoded only; signature, key and claims were not checked",
        header,
        claims,
    };
    output.note("NOT VERIFIED: decoded only; use `keybound verify` to check a proof or token");
    output.emit(&pretty(&out)?)?;
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
