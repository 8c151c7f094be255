//! `htu` normalisation (RFC 9449 §4.3, RFC 3986 §6): the proof's URL and the request's
//! URL are compared after both went through [`normalize_htu`].

use crate::ProtoError;
#[allow(unused_imports)]
use crate::prelude::*;

/// Normalises an absolute http(s) URL for `htu` comparison: scheme and host lowercased,
/// the default port dropped, query and fragment removed, dot segments resolved, an empty
/// path made `/`. Userinfo is rejected (it has no place in a request target).
///
/// ```
/// use keybound_proto::normalize_htu;
/// assert_eq!(
///     normalize_htu("HTTPS://API.Example.com:443/a/./b/../c?x=1#f").unwrap(),
///     "https://api.example.com/a/c"
/// );
/// ```
pub fn normalize_htu(url: &str) -> Result<String, ProtoError> {
    // The scheme ends at the first ':' (RFC 3986 §3.1); searching for one character
    // rather than "://" keeps the SDK's WebAssembly free of the substring searcher.
    let (scheme, rest) = url
        .split_once(':')
        .and_then(|(scheme, rest)| Some((scheme, rest.strip_prefix("//")?)))
        .ok_or(ProtoError::InvalidUrl {
            reason: "not an absolute URL",
        })?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => {
            return Err(ProtoError::InvalidUrl {
                reason: "scheme must be http or https",
            });
        }
    };
    let rest = rest.split(['#']).next().unwrap_or_default();
    let rest = rest.split(['?']).next().unwrap_or_default();
    // Checked slicing (`get`): the SDK's WebAssembly then carries no string-slicing
    // panic and the formatting it brings.
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(ProtoError::InvalidUrl {
            reason: "host is missing",
        });
    }
    if authority.contains('@') {
        return Err(ProtoError::InvalidUrl {
            reason: "userinfo is not allowed",
        });
    }
    if authority
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(ProtoError::InvalidUrl {
            reason: "host contains whitespace",
        });
    }
    let (host, port) = split_host_port(authority)?;
    let host = host.to_ascii_lowercase();
    let mut out = String::with_capacity(url.len());
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host);
    if let Some(port) = port {
        if port != default_port {
            out.push(':');
            out.push_str(port);
        }
    }
    out.push_str(&remove_dot_segments(if path.is_empty() {
        "/"
    } else {
        path
    }));
    Ok(out)
}

/// Splits `host[:port]` (IPv6 literals in brackets), checking the port is numeric.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), ProtoError> {
    let (host, port) = if authority.starts_with('[') {
        let unterminated = ProtoError::InvalidUrl {
            reason: "unterminated IPv6 literal",
        };
        let end = authority.find(']').ok_or(unterminated.clone())? + 1;
        let (Some(host), Some(rest)) = (authority.get(..end), authority.get(end..)) else {
            return Err(unterminated);
        };
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => {
                return Err(ProtoError::InvalidUrl {
                    reason: "junk after IPv6 literal",
                });
            }
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(ProtoError::InvalidUrl {
            reason: "host is missing",
        });
    }
    // Only a bracketed IPv6 literal may contain ':'; otherwise `a:b:80` would become
    // `a:b`, which no longer parses the same way (normalising must be idempotent).
    if !host.starts_with('[') && host.contains(':') {
        return Err(ProtoError::InvalidUrl {
            reason: "host contains ':' outside an IPv6 literal",
        });
    }
    match port {
        Some("") => Ok((host, None)),
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            let trimmed = p.trim_start_matches('0');
            Ok((host, Some(if trimmed.is_empty() { "0" } else { trimmed })))
        }
        Some(_) => Err(ProtoError::InvalidUrl {
            reason: "port is not a number",
        }),
        None => Ok((host, None)),
    }
}

/// RFC 3986 §5.2.4 on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                stack.pop();
                trailing_slash = i == last;
            }
            s => {
                stack.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &stack {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases = [
            ("https://example.com", "https://example.com/"),
            ("HTTPS://EXAMPLE.com/Path", "https://example.com/Path"),
            ("http://example.com:80/a", "http://example.com/a"),
            ("https://example.com:443/a", "https://example.com/a"),
            ("https://example.com:8443/a", "https://example.com:8443/a"),
            ("http://example.com:443/a", "http://example.com:443/a"),
            ("https://example.com/a?b=c#d", "https://example.com/a"),
            ("https://example.com/a#d?x", "https://example.com/a"),
            ("https://example.com/a/./b/../c", "https://example.com/a/c"),
            ("https://example.com/a/b/..", "https://example.com/a/"),
            ("https://example.com/../../a", "https://example.com/a"),
            ("https://example.com/a/.", "https://example.com/a/"),
            ("http://[::1]:8080/x", "http://[::1]:8080/x"),
            ("http://[::1]:80/x", "http://[::1]/x"),
            ("http://127.0.0.1:08080/x", "http://127.0.0.1:8080/x"),
            ("http://h:/x", "http://h/x"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_htu(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "example.com/a",
            "ftp://example.com/",
            "https:///a",
            "https://user@example.com/",
            "https://example.com:abc/",
            "https://example.com:123456/",
            "https://[::1/",
            "https://ex ample.com/",
            "http://::",
            "http://a:b:80/",
            "http://::1/",
        ] {
            assert!(normalize_htu(bad).is_err(), "{bad}");
        }
    }
}
