//! keybound without axum: the verifier and the session service on plain `http` types,
//! the way any `http`-based framework (hyper, warp, tonic, actix adapters, …) can use
//! them. `handle` is the whole server side: login, a protected route, refresh.
//! `main` plays a client against it, signing with `keybound-proto`.
//!
//! ```sh
//! cargo run -p keybound-server --no-default-features --example plain_http
//! ```

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use keybound_server::lifecycle::{OpenRequest, RequestSignals, SessionService};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofBuilder, Signer, TokenResponse};
use keybound_server::store::MemoryStore;
use keybound_server::{Clock, KeyRing, SystemClock, Verifier};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

const ORIGIN: &str = "https://api.example";

/// What the server keeps: one verifier, one session service, sharing the key ring.
struct Backend {
    verifier: Verifier,
    service: SessionService,
}

impl Backend {
    fn new() -> Result<Self, Error> {
        let keys = KeyRing::generate()?.into_shared();
        let service = SessionService::builder(MemoryStore::new(), keys.clone())
            .issuer(ORIGIN)
            .build()?;
        let verifier = Verifier::builder()
            .public_origin(ORIGIN)
            .key_ring(keys)
            // Revoked, closed and expired sessions are refused on their next request.
            .session_check(Arc::new(service.clone()))
            .build()?;
        Ok(Self { verifier, service })
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// A lifecycle error as an OAuth error response.
fn tokens_response(tokens: &TokenResponse) -> Response<String> {
    json_response(StatusCode::OK, &json!(tokens))
}

/// The server: any framework that hands over an `http::Request` can do this.
async fn handle(backend: &Backend, request: Request<String>) -> Response<String> {
    let (parts, body) = request.into_parts();
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/login") => {
            // The proof first: it names the key the session will be bound to.
            let proof = match backend.verifier.verify_proof(&parts).await {
                Ok(proof) => proof,
                Err(rejection) => return backend.verifier.response(rejection),
            };
            // ... check the credentials in `body` your own way, then record the proof
            // as used (only now, so proofs without credentials are never stored) ...
            if let Err(rejection) = backend.verifier.consume_proof(&proof).await {
                return backend.verifier.response(rejection);
            }
            match backend
                .service
                .open_session("alice", &proof.jkt, OpenRequest::new())
                .await
            {
                Ok(tokens) => tokens_response(&tokens),
                Err(err) => err.into_http_response(),
            }
        }
        (&Method::GET, "/me") => match backend.verifier.verify(&parts).await {
            Ok(caller) => json_response(
                StatusCode::OK,
                &json!({"user": caller.sub, "session": caller.sid}),
            ),
            // 401 + WWW-Authenticate (+ DPoP-Nonce), or 503 + Retry-After.
            Err(rejection) => backend.verifier.response(rejection),
        },
        (&Method::POST, "/refresh") => {
            let proof = match backend.verifier.verify_proof(&parts).await {
                Ok(proof) => proof,
                Err(rejection) => return backend.verifier.response(rejection),
            };
            let token = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["refresh_token"].as_str().map(str::to_owned))
                .unwrap_or_default();
            // Record the proof as used once the refresh token is known to be bound to
            // the proof's key.
            match backend
                .service
                .check_refresh_binding(&token, &proof.jkt)
                .await
            {
                Ok(true) => {
                    if let Err(rejection) = backend.verifier.consume_proof(&proof).await {
                        return backend.verifier.response(rejection);
                    }
                }
                // Another key: refresh refuses it (or detects reuse); nothing to record.
                Ok(false) => {}
                Err(err) => return err.into_http_response(),
            }
            match backend
                .service
                .refresh(&token, &proof.jkt, &RequestSignals::new())
                .await
            {
                Ok(tokens) => tokens_response(&tokens),
                Err(err) => err.into_http_response(),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

/// A client request signed by `device`.
fn signed(
    device: &SigningKey,
    method: &str,
    path: &str,
    at: Option<&str>,
    body: &str,
) -> Result<Request<String>, Error> {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti)?;
    let url = format!("{ORIGIN}{path}");
    let mut proof = ProofBuilder::new(
        device.public_jwk(),
        method,
        &url,
        SystemClock.now_secs(),
        jti,
    )?;
    let mut request = Request::builder().method(method).uri(path);
    if let Some(at) = at {
        proof = proof.access_token(at);
        request = request.header(header::AUTHORIZATION, format!("DPoP {at}"));
    }
    Ok(request
        .header("dpop", proof.sign(device)?)
        .body(body.to_owned())?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let backend = Backend::new()?;
    let device = SigningKey::from_bytes(&[9u8; 32]);

    let response = handle(&backend, signed(&device, "POST", "/login", None, "")?).await;
    let tokens: TokenResponse = serde_json::from_str(response.body())?;
    println!("login: {} session {}", response.status(), tokens.session_id);

    let response = handle(
        &backend,
        signed(&device, "GET", "/me", Some(&tokens.access_token), "")?,
    )
    .await;
    println!("me: {} {}", response.status(), response.body());

    let body = json!({"refresh_token": tokens.refresh_token}).to_string();
    let response = handle(&backend, signed(&device, "POST", "/refresh", None, &body)?).await;
    println!("refresh: {}", response.status());

    // Without the access token's hash in the proof: refused with the DPoP challenge.
    let mut request = signed(&device, "GET", "/me", None, "")?;
    let at = format!("DPoP {}", tokens.access_token);
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, at.parse()?);
    let response = handle(&backend, request).await;
    println!(
        "me without ath: {} {}",
        response.status(),
        response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .ok_or("a challenge")?
            .to_str()?
    );
    Ok(())
}
