//! Who may use the operator routes (`POST /api/admin/users/{user}/revoke`, `/metrics`).
//!
//! * With an admin token (`KEYBOUND_DEMO_ADMIN_TOKEN`): every caller must send
//!   `Authorization: Bearer <token>`, compared in constant time.
//! * Without one: only callers connecting from a loopback address, and never a request
//!   a browser sent on behalf of another site (an `Origin` other than the demo's own, or
//!   `Sec-Fetch-Site: cross-site`), so a web page cannot make the visitor's browser
//!   revoke sessions; and only for a `Host` that names this machine (`localhost`, a
//!   loopback address) or the demo's public origin, so a page on a name re-pointed at
//!   127.0.0.1 (DNS rebinding) cannot read `/metrics` as a same-origin page. Behind a
//!   reverse proxy on the same host every caller looks local: set a token there.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The operator-route policy.
#[derive(Clone)]
pub(crate) struct AdminGuard {
    token: Option<std::sync::Arc<Zeroizing<String>>>,
    public_origin: String,
    /// The public origin's `host[:port]`, lowercased.
    public_authority: String,
}

impl std::fmt::Debug for AdminGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminGuard")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// Why an operator request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminDenied {
    /// A token is configured and the request did not carry it.
    BadToken,
    /// No token is configured and the caller is not local.
    NotLocal,
    /// No token is configured and a browser sent the request for another site.
    CrossSite,
    /// No token is configured and the `Host` names neither this machine nor the demo
    /// (DNS rebinding).
    ForeignHost,
}

impl IntoResponse for AdminDenied {
    fn into_response(self) -> Response {
        let (status, code, description) = match self {
            Self::BadToken => (
                StatusCode::UNAUTHORIZED,
                "admin_unauthorized",
                "send Authorization: Bearer <KEYBOUND_DEMO_ADMIN_TOKEN>",
            ),
            Self::NotLocal => (
                StatusCode::FORBIDDEN,
                "admin_local_only",
                "without KEYBOUND_DEMO_ADMIN_TOKEN, operator routes answer loopback callers only",
            ),
            Self::CrossSite => (
                StatusCode::FORBIDDEN,
                "admin_cross_site",
                "operator routes refuse requests sent by a browser for another site",
            ),
            Self::ForeignHost => (
                StatusCode::FORBIDDEN,
                "admin_foreign_host",
                "without KEYBOUND_DEMO_ADMIN_TOKEN, operator routes answer only requests for localhost, a loopback address or the demo's public origin",
            ),
        };
        let mut response = (
            status,
            Json(json!({"error": code, "error_description": description, "error_code": code})),
        )
            .into_response();
        if self == Self::BadToken {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keybound-demo-admin\""),
            );
        }
        response
    }
}

impl AdminGuard {
    pub(crate) fn new(token: Option<Zeroizing<String>>, public_origin: &str) -> Self {
        Self {
            token: token
                .filter(|t| !t.trim().is_empty())
                .map(std::sync::Arc::new),
            public_origin: public_origin.trim_end_matches('/').to_owned(),
            public_authority: public_origin
                .split_once("://")
                .map_or("", |(_, rest)| rest)
                .split('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        }
    }

    /// Whether a `Host` value names this machine or the demo's public origin. A DNS
    /// rebinding page's requests carry the attacker's name.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if host == self.public_authority {
            return true;
        }
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host.as_str(), |(name, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    name
                } else {
                    ""
                }
            }),
        };
        name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Checks one request.
    pub(crate) fn check(&self, parts: &Parts) -> Result<(), AdminDenied> {
        if let Some(token) = &self.token {
            let presented = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let same: bool = token.as_bytes().ct_eq(presented.as_bytes()).into();
            return if same {
                Ok(())
            } else {
                Err(AdminDenied::BadToken)
            };
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr)
            .or_else(|| {
                parts
                    .extensions
                    .get::<MockConnectInfo<SocketAddr>>()
                    .map(|MockConnectInfo(addr)| *addr)
            });
        let local = peer.is_some_and(|addr| addr.ip().is_loopback());
        if !local {
            return Err(AdminDenied::NotLocal);
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let foreign_origin = header("origin").is_some_and(|o| o != self.public_origin);
        let cross_site = header("sec-fetch-site").is_some_and(|s| s == "cross-site");
        if foreign_origin || cross_site {
            return Err(AdminDenied::CrossSite);
        }
        // A browser always sends `Host` (HTTP/2: `:authority`, which becomes the URI's
        // authority); a request without either is not a browser's.
        let host = header("host").or_else(|| parts.uri.authority().map(|a| a.as_str()));
        if host.is_some_and(|host| !self.host_allowed(host)) {
            return Err(AdminDenied::ForeignHost);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().uri("/metrics");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        let addr: SocketAddr = peer.parse().unwrap();
        parts.extensions.insert(ConnectInfo(addr));
        parts
    }

    #[test]
    fn token_mode_needs_the_exact_token_from_anywhere() {
        let guard = AdminGuard::new(
            Some(Zeroizing::new("s3cret".into())),
            "http://127.0.0.1:8080",
        );
        let ok = [("authorization", "Bearer s3cret")];
        assert_eq!(guard.check(&parts("10.0.0.9:5000", &ok)), Ok(()));
        for bad in [
            vec![],
            vec![("authorization", "Bearer s3cre")],
            vec![("authorization", "Bearer s3cret ")],
            vec![("authorization", "Basic s3cret")],
        ] {
            assert_eq!(
                guard.check(&parts("127.0.0.1:5000", &bad)),
                Err(AdminDenied::BadToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn local_mode_refuses_remote_and_cross_site_callers() {
        let guard = AdminGuard::new(None, "http://127.0.0.1:8080/");
        assert_eq!(guard.check(&parts("127.0.0.1:5000", &[])), Ok(()));
        assert_eq!(guard.check(&parts("[::1]:5000", &[])), Ok(()));
        assert_eq!(
            guard.check(&parts(
                "127.0.0.1:5000",
                &[("origin", "http://127.0.0.1:8080")]
            )),
            Ok(())
        );
        assert_eq!(
            guard.check(&parts("192.168.1.20:5000", &[])),
            Err(AdminDenied::NotLocal)
        );
        assert_eq!(
            guard.check(&parts(
                "127.0.0.1:5000",
                &[("origin", "https://evil.example")]
            )),
            Err(AdminDenied::CrossSite)
        );
        assert_eq!(
            guard.check(&parts(
                "127.0.0.1:5000",
                &[("sec-fetch-site", "cross-site")]
            )),
            Err(AdminDenied::CrossSite)
        );
        // DNS rebinding: a page on a name re-pointed at 127.0.0.1 is same-origin with
        // itself, so only its Host gives it away.
        for host in [
            "rebind.evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil:80",
        ] {
            assert_eq!(
                guard.check(&parts(
                    "127.0.0.1:5000",
                    &[("host", host), ("sec-fetch-site", "same-origin")]
                )),
                Err(AdminDenied::ForeignHost),
                "{host}"
            );
        }
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.2",
        ] {
            assert_eq!(
                guard.check(&parts("127.0.0.1:5000", &[("host", host)])),
                Ok(()),
                "{host}"
            );
        }
        let public = AdminGuard::new(None, "https://demo.example");
        assert_eq!(
            public.check(&parts("127.0.0.1:5000", &[("host", "demo.example")])),
            Ok(())
        );
        // An empty token counts as none: local callers only.
        let empty = AdminGuard::new(Some(Zeroizing::new(" ".into())), "http://x");
        assert_eq!(empty.check(&parts("127.0.0.1:5000", &[])), Ok(()));
        assert_eq!(
            empty.check(&parts("10.0.0.1:5000", &[("authorization", "Bearer  ")])),
            Err(AdminDenied::NotLocal)
        );
    }
}
