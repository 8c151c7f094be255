//! The server side of keybound's HTTP benchmark (`scripts/bench-http.sh`, figures in
//! `BENCHMARKS.md`): the same handler unprotected (`GET /plain`) and behind the
//! [`Session`] extractor (`GET /protected`), on a single-threaded runtime so that the
//! server's CPU time per request is the inverse of its throughput once the load
//! generator saturates it.
//!
//! At start it opens a session for a bench device, writes a pool of fresh proofs for
//! `GET /protected` (one line each, after a first line holding the access token) for
//! the load generator to rotate through, so that every request carries a new `jti` and
//! replay protection stays on. It then times, on the same thread, the raw
//! `verify_strict` of one proof signature and the whole in-process verification
//! (`Verifier::verify_headers`), prints them as one JSON line, and serves.
//!
//! ```sh
//! cargo run --release -p keybound-server --example http_bench -- 127.0.0.1:8099 /tmp/pool.txt 200000
//! ```

use std::io::Write;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, Uri};
use keybound_server::axum::{Keybound, Session};
use keybound_server::lifecycle::OpenRequest;
use keybound_server::proto::ed25519_dalek::{Signature, SigningKey};
use keybound_server::proto::{ProofBuilder, Signer};
use keybound_server::settings::Settings;
use keybound_server::{Clock, SystemClock};

type Error = Box<dyn std::error::Error>;

/// What both routes answer: a small JSON document.
async fn handler() -> &'static str {
    r#"{"orders":[]}"#
}

async fn protected(_session: Session) -> &'static str {
    handler().await
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: http_bench LISTEN POOL_FILE POOL_SIZE";
    let listen = args.next().ok_or(usage)?;
    let pool_file = args.next().ok_or(usage)?;
    let pool_size: usize = args.next().ok_or(usage)?.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(&listen, &pool_file, pool_size))
}

fn proof(device: &SigningKey, url: &str, token: &str) -> Result<String, Error> {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti)?;
    Ok(
        ProofBuilder::new(device.public_jwk(), "GET", url, SystemClock.now_secs(), jti)?
            .access_token(token)
            .sign(device)?,
    )
}

/// Median of `rounds` timings of `batch` calls of `f`, in nanoseconds per call.
fn per_call(rounds: usize, batch: u32, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[rounds / 2]
}

async fn run(listen: &str, pool_file: &str, pool_size: usize) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let settings = Settings::from_lookup(|name| match name {
        "KEYBOUND_LISTEN" => Some(listen.to_owned()),
        "KEYBOUND_PUBLIC_ORIGIN" => Some(origin.clone()),
        // Long enough for the whole run: the token is verified once, then cached.
        "KEYBOUND_ACCESS_TTL_SECS" => Some("3600".to_owned()),
        "KEYBOUND_IDLE_TIMEOUT_SECS" => Some("7200".to_owned()),
        _ => None,
    })?;
    let running = Keybound::setup(settings).build().await?;
    let kb = running.keybound.clone();

    let device = SigningKey::from_bytes(&[7u8; 32]);
    let jkt = device.public_jwk().thumbprint();
    let tokens = kb
        .service()
        .open_session("bench", &jkt, OpenRequest::new())
        .await?;
    let token = tokens.access_token;
    let url = format!("{origin}/protected");

    // The pool for the load generator.
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(pool_file)?);
    writeln!(out, "{token}")?;
    for _ in 0..pool_size {
        writeln!(out, "{}", proof(&device, &url, &token)?)?;
    }
    out.flush()?;
    let pool_secs = started.elapsed().as_secs_f64();

    // Raw verify_strict of one proof signature.
    let sample = proof(&device, &url, &token)?;
    let (input, signature) = sample.rsplit_once('.').ok_or("a compact JWS")?;
    let signature: [u8; 64] = keybound_server::proto::b64::decode(signature, "signature")?
        .try_into()
        .map_err(|_| "a 64-byte signature")?;
    let signature = Signature::from_bytes(&signature);
    let key = device.verifying_key();
    let verify_strict_ns = per_call(9, 2_000, || {
        assert!(key.verify_strict(input.as_bytes(), &signature).is_ok());
    });

    // The whole in-process verification of a request, fresh proof each time.
    let uri: Uri = "/protected".parse()?;
    let requests: Vec<HeaderMap> = (0..9 * 2_000)
        .map(|_| -> Result<HeaderMap, Error> {
            let mut headers = HeaderMap::new();
            headers.insert(
                "authorization",
                HeaderValue::from_str(&format!("DPoP {token}"))?,
            );
            headers.insert(
                "dpop",
                HeaderValue::from_str(&proof(&device, &url, &token)?)?,
            );
            Ok(headers)
        })
        .collect::<Result<_, _>>()?;
    let mut samples = Vec::new();
    for batch in requests.chunks(2_000) {
        let start = Instant::now();
        for headers in batch {
            kb.verifier()
                .verify_headers(&Method::GET, &uri, headers)
                .await?;
        }
        samples.push(start.elapsed().as_secs_f64() * 1e9 / 2_000.0);
    }
    samples.sort_by(f64::total_cmp);
    let verify_request_ns = samples[samples.len() / 2];

    println!(
        r#"{{"origin":"{origin}","pool":{pool_size},"pool_secs":{pool_secs:.1},"verify_strict_us":{:.2},"verify_request_us":{:.2}}}"#,
        verify_strict_ns / 1e3,
        verify_request_ns / 1e3,
    );
    std::io::stdout().flush()?;

    let app = Router::new()
        .route("/plain", get(handler))
        .route("/protected", get(protected))
        .with_state(kb);
    // Keep the service (and its sweeper) until the benchmark stops the process.
    let _running = running;
    tokio::time::timeout(Duration::from_secs(600), axum::serve(listener, app))
        .await
        .ok();
    Ok(())
}
