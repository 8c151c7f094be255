//! The `keybound` command line's grammar: its commands, arguments and help texts.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use keybound_proto::ProofAlg;

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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

/// A `--alg` value: a proof algorithm's name.
fn parse_alg(name: &str) -> Result<ProofAlg, String> {
    ProofAlg::from_name(name).ok_or_else(|| format!("{name:?}: expected EdDSA or ES256"))
}
