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
//! (`Verifier::verify`), prints them as one JSON line, and serves.
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
use keybound_server::{Clock, RequestHead, SystemClock};

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

/// CPU time of the calling thread (user + system), in seconds, from
/// `/proc/thread-self/stat` (Linux; 10 ms ticks): unlike wall time, it does not count
/// the time other processes on a shared machine hold the core.
fn thread_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start with field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Wall and CPU microseconds per call over `calls` calls.
struct Timing {
    start: Instant,
    cpu: Option<f64>,
}

impl Timing {
    fn start() -> Self {
        Self {
            start: Instant::now(),
            cpu: thread_cpu_secs(),
        }
    }

    fn per_call_us(&self, calls: usize) -> (f64, Option<f64>) {
        let calls = calls as f64;
        let wall = self.start.elapsed().as_secs_f64() * 1e6 / calls;
        let cpu = self
            .cpu
            .zip(thread_cpu_secs())
            .map(|(before, after)| (after - before) * 1e6 / calls);
        (wall, cpu)
    }
}

fn json_number(value: Option<f64>) -> String {
    value.map_or("null".to_owned(), |v| format!("{v:.2}"))
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

    // Raw verify_strict of one proof signature (what the verifier calls per request).
    let sample = proof(&device, &url, &token)?;
    let (input, signature) = sample.rsplit_once('.').ok_or("a compact JWS")?;
    let signature: [u8; 64] = keybound_server::proto::b64::decode(signature, "signature")?
        .try_into()
        .map_err(|_| "a 64-byte signature")?;
    let signature = Signature::from_bytes(&signature);
    let key = device.verifying_key();
    const CALLS: usize = 20_000;
    let timing = Timing::start();
    for _ in 0..CALLS {
        key.verify_strict(input.as_bytes(), &signature)?;
    }
    let (strict_wall, strict_cpu) = timing.per_call_us(CALLS);

    // The whole in-process verification of a request (fresh proof each time, made
    // beforehand): parsing, checks, token cache, verify_strict, replay store, session.
    let uri: Uri = "/protected".parse()?;
    let requests: Vec<HeaderMap> = (0..CALLS)
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
    let timing = Timing::start();
    for headers in &requests {
        kb.verifier()
            .verify(RequestHead {
                method: &Method::GET,
                uri: &uri,
                headers,
            })
            .await?;
    }
    let (request_wall, request_cpu) = timing.per_call_us(CALLS);

    println!(
        r#"{{"origin":"{origin}","pool":{pool_size},"pool_secs":{pool_secs:.1},"verify_strict_cpu_us":{},"verify_strict_wall_us":{strict_wall:.2},"verify_request_cpu_us":{},"verify_request_wall_us":{request_wall:.2}}}"#,
        json_number(strict_cpu),
        json_number(request_cpu),
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
