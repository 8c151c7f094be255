//! The single-page app's files (built by Vite into `examples/demo/web/dist`) and the
//! security headers every response gets.

use std::path::Path;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::AppState;

/// The app may run its own scripts and WebAssembly, talk to its own origin, and nothing
/// else; no inline script or style, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the app's `index.html`, or a page saying how to build it.
pub(crate) async fn index(State(app): State<AppState>) -> Response {
    let dir = &app.web_dir;
    match tokio::fs::read(dir.join("index.html")).await {
        Ok(html) => {
            let mut response = Html(html).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Html(not_built(dir))).into_response(),
    }
}

fn not_built(dir: &Path) -> String {
    let dir = dir.display().to_string();
    let dir = dir
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>keybound demo</title>\
         <h1>The demo's web app is not built</h1>\
         <p>No <code>index.html</code> in <code>{dir}</code>. Run <code>scripts/demo.sh</code> \
         from the repository, or build the app: \
         <code>js/build.sh &amp;&amp; cd examples/demo/web &amp;&amp; npm install &amp;&amp; npm run build</code>.</p>"
    )
}

/// Adds the security headers, and long-lived caching for Vite's content-hashed assets.
pub(crate) async fn security_headers(request: Request<Body>, next: Next) -> Response {
    let hashed_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    if hashed_asset && response.status().is_success() {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    response
}
