//! The session configuration JSON a registration (and optionally a refresh) answers
//! with, the answer that ends a session, and the bound cookie it describes.

#[allow(unused_imports)]
use crate::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::DbscError;

/// The JSON session instructions: which session, where it refreshes, which URLs it
/// covers and which cookie it keeps alive.
///
/// ```
/// use keybound_proto::dbsc::{BoundCookie, SessionConfig};
/// let cookie = BoundCookie::new("kb_dbsc", "/");
/// let config = SessionConfig::new("s-1", "/session/dbsc/refresh", &cookie);
/// let json = serde_json::to_value(&config).unwrap();
/// assert_eq!(json["credentials"][0]["attributes"], "Path=/; Secure; HttpOnly; SameSite=Lax");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// The session's identifier (keybound's session id).
    pub session_identifier: String,
    /// The refresh endpoint, absolute or relative to the registration URL.
    pub refresh_url: String,
    /// The URLs the session covers.
    pub scope: Scope,
    /// The cookies the session keeps alive.
    pub credentials: Vec<CookieCredential>,
    /// Hosts other than the scope's own that may trigger a refresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_refresh_initiators: Vec<String>,
}

impl SessionConfig {
    /// A session covering the registration URL's whole origin, refreshed at
    /// `refresh_url`, keeping `cookie` alive.
    pub fn new(
        session_identifier: impl Into<String>,
        refresh_url: impl Into<String>,
        cookie: &BoundCookie,
    ) -> Self {
        Self {
            session_identifier: session_identifier.into(),
            refresh_url: refresh_url.into(),
            scope: Scope::default(),
            credentials: vec![cookie.credential()],
            allowed_refresh_initiators: Vec::new(),
        }
    }
}

/// Which URLs a session covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The origin (or site) covered; by default the origin of the URL that served the
    /// configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Whether the whole site is covered rather than one origin.
    pub include_site: bool,
    /// Rules narrowing or widening the default scope, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope_specification: Vec<ScopeRule>,
}

/// One scope rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRule {
    /// Whether matching URLs are in or out.
    #[serde(rename = "type")]
    pub kind: ScopeRuleKind,
    /// Host pattern (`example.com`, `*.example.com`); all hosts when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Path prefix; `/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Whether a scope rule includes or excludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeRuleKind {
    /// Matching URLs are covered.
    Include,
    /// Matching URLs are not covered.
    Exclude,
}

/// A cookie a session keeps alive (`{"type":"cookie","name","attributes"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookieCredential {
    /// Always `cookie`.
    #[serde(rename = "type")]
    pub kind: CredentialKind,
    /// The cookie's name.
    pub name: String,
    /// The cookie's attributes, exactly as the `Set-Cookie` line sets them (without
    /// `Max-Age`/`Expires`).
    pub attributes: String,
}

/// The kind of a session credential (DBSC knows only cookies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    /// A cookie.
    Cookie,
}

/// The answer that ends a session: `{"session_identifier":…,"continue":false}`.
///
/// The identifier matters: Chromium 156 ends the session on `{"continue":false}` alone
/// too, but reports it as an invalid session identifier rather than as the server's
/// request.
pub fn termination(session_identifier: &str) -> serde_json::Value {
    json!({"session_identifier": session_identifier, "continue": false})
}

/// The SameSite attribute of the bound cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax` (the default: top-level navigations from other sites keep the
    /// session, cross-site subresource requests do not carry it).
    Lax,
}

/// The cookie a DBSC session binds: always `Secure` and `HttpOnly`, with a `Path`, a
/// `SameSite` and optionally a `Domain`. It writes both the `Set-Cookie` line and the
/// `attributes` of the session configuration, so the two cannot drift apart (Chromium
/// refreshes on every request when the cookie it holds differs from the configured
/// attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundCookie {
    name: String,
    path: String,
    domain: Option<String>,
    same_site: SameSite,
}

impl BoundCookie {
    /// A `SameSite=Lax` host-only cookie called `name` for `path`.
    pub fn new(name: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            domain: None,
            same_site: SameSite::Lax,
        }
    }

    /// Sets the `SameSite` attribute.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets a `Domain` attribute (the cookie then covers subdomains).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The attributes, in the order the `Set-Cookie` line uses:
    /// `[Domain=…; ]Path=…; Secure; HttpOnly; SameSite=…`.
    pub fn attributes(&self) -> String {
        let same_site = match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
        };
        let domain = self
            .domain
            .as_ref()
            .map(|d| format!("Domain={d}; "))
            .unwrap_or_default();
        format!(
            "{domain}Path={}; Secure; HttpOnly; SameSite={same_site}",
            self.path
        )
    }

    /// The configuration's `credentials` entry for this cookie.
    pub fn credential(&self) -> CookieCredential {
        CookieCredential {
            kind: CredentialKind::Cookie,
            name: self.name.clone(),
            attributes: self.attributes(),
        }
    }

    /// The `Set-Cookie` value giving the cookie `value` for `max_age_secs` seconds.
    /// `value` must be a cookie-octet string (RFC 6265: printable ASCII without space,
    /// `"`, `,`, `;` and `\`); keybound's values are base64url.
    pub fn set_cookie(&self, value: &str, max_age_secs: u64) -> Result<String, DbscError> {
        self.check()?;
        let cookie_octet =
            |b: &u8| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
        if value.is_empty() || !value.bytes().all(|b| cookie_octet(&b)) {
            return Err(DbscError::Unencodable {
                what: "cookie value",
                reason: "not a non-empty cookie-octet string",
            });
        }
        Ok(format!(
            "{}={value}; Max-Age={max_age_secs}; {}",
            self.name,
            self.attributes()
        ))
    }

    /// The `Set-Cookie` value that deletes the cookie.
    pub fn clear(&self) -> Result<String, DbscError> {
        self.check()?;
        Ok(format!("{}=; Max-Age=0; {}", self.name, self.attributes()))
    }

    fn check(&self) -> Result<(), DbscError> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(&self.name) {
            return Err(DbscError::Unencodable {
                what: "cookie name",
                reason: "not an HTTP token",
            });
        }
        let attribute = |s: &str| s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b';');
        if !self.path.starts_with('/') || !attribute(&self.path) {
            return Err(DbscError::Unencodable {
                what: "cookie path",
                reason: "must start with / and hold no space, control character or ;",
            });
        }
        if self
            .domain
            .as_deref()
            .is_some_and(|d| d.is_empty() || !attribute(d))
        {
            return Err(DbscError::Unencodable {
                what: "cookie domain",
                reason: "empty or holds a space, control character or ;",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_has_the_spec_shape() {
        let cookie = BoundCookie::new("kb_dbsc", "/");
        let config = SessionConfig::new("s-1", "/session/dbsc/refresh", &cookie);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            json,
            json!({
                "session_identifier": "s-1",
                "refresh_url": "/session/dbsc/refresh",
                "scope": {"include_site": false},
                "credentials": [{"type": "cookie", "name": "kb_dbsc",
                                 "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax"}],
            })
        );
        let back: SessionConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn reads_a_full_spec_example() {
        let config: SessionConfig = serde_json::from_value(json!({
            "session_identifier": "session_id",
            "refresh_url": "/RefreshEndpoint",
            "scope": {"origin": "https://example.com", "include_site": true,
                      "scope_specification": [
                          {"type": "include", "domain": "trusted.example.com", "path": "/only_trusted_path"},
                          {"type": "exclude", "domain": "*.example.com", "path": "/static"}]},
            "credentials": [{"type": "cookie", "name": "auth_cookie",
                             "attributes": "Domain=example.com; Path=/; Secure; HttpOnly; SameSite=None"}],
            "allowed_refresh_initiators": ["example.com", "*.example.com"]
        }))
        .unwrap();
        assert_eq!(
            config.scope.scope_specification[1].kind,
            ScopeRuleKind::Exclude
        );
        assert_eq!(config.allowed_refresh_initiators.len(), 2);
    }

    #[test]
    fn termination_names_the_session() {
        assert_eq!(
            termination("s-1"),
            json!({"session_identifier": "s-1", "continue": false})
        );
    }

    #[test]
    fn cookie_lines_match_the_configured_attributes() {
        let cookie = BoundCookie::new("kb_dbsc", "/app")
            .same_site(SameSite::Strict)
            .domain("example.com");
        let attributes = "Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=Strict";
        assert_eq!(cookie.credential().attributes, attributes);
        assert_eq!(
            cookie.set_cookie("abc-_", 300).unwrap(),
            format!("kb_dbsc=abc-_; Max-Age=300; {attributes}")
        );
        assert_eq!(
            cookie.clear().unwrap(),
            format!("kb_dbsc=; Max-Age=0; {attributes}")
        );
    }

    #[test]
    fn cookie_refusals() {
        let ok = BoundCookie::new("kb", "/");
        for bad in ["", "a b", "a;b", "a\"b", "a,b", "a\\b", "é"] {
            assert_eq!(
                ok.set_cookie(bad, 1).unwrap_err().code(),
                "unencodable_value",
                "{bad:?}"
            );
        }
        for cookie in [
            BoundCookie::new("", "/"),
            BoundCookie::new("a=b", "/"),
            BoundCookie::new("kb", "app"),
            BoundCookie::new("kb", "/a;b"),
            BoundCookie::new("kb", "/").domain(""),
            BoundCookie::new("kb", "/").domain("a b"),
        ] {
            assert_eq!(
                cookie.clear().unwrap_err().code(),
                "unencodable_value",
                "{cookie:?}"
            );
        }
    }
}
