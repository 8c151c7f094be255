//! Server-provided DPoP nonces (RFC 9449 §8), remembered per origin.

#[allow(unused_imports)]
use crate::prelude::*;

/// How many origins' nonces are remembered; the oldest is forgotten first.
const CAPACITY: usize = 16;
/// Longest nonce accepted; servers send short ones.
const MAX_NONCE_LEN: usize = 512;

/// The latest nonce each origin gave. A server may hand out a new nonce on any answer
/// (`DPoP-Nonce` header), and the next proof to that origin carries it.
///
/// ```
/// use keybound_client::NonceJar;
/// let mut jar = NonceJar::default();
/// jar.remember("https://api.example/session/refresh", "n-1");
/// assert_eq!(jar.get("https://api.example/other"), Some("n-1"));
/// assert_eq!(jar.get("https://elsewhere.example/"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonceJar {
    entries: Vec<(String, String)>,
}

impl NonceJar {
    /// The nonce for `url`'s origin, if one was given.
    pub fn get(&self, url: &str) -> Option<&str> {
        let origin = origin_of(url)?;
        self.entries
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, n)| n.as_str())
    }

    /// Remembers `nonce` for `url`'s origin. Values that are not a valid nonce
    /// (`1*NQCHAR`, at most 512 characters) are ignored, so a broken header cannot make
    /// every later proof unusable. Returns whether it was kept.
    pub fn remember(&mut self, url: &str, nonce: &str) -> bool {
        let Some(origin) = origin_of(url) else {
            return false;
        };
        if !is_nonce(nonce) {
            return false;
        }
        self.entries.retain(|(o, _)| *o != origin);
        if self.entries.len() == CAPACITY {
            self.entries.remove(0);
        }
        self.entries.push((origin.to_owned(), nonce.to_owned()));
        true
    }
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR`, `NQCHAR = %x21 / %x23-5B / %x5D-7E`.
fn is_nonce(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NONCE_LEN
        && value
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// `scheme://host[:port]` of an http(s) URL as the browser's URL parser writes it
/// (`URL.href`, or `protocol + "//" + host + pathname`): lower-case scheme and host, no
/// default port, no user info. The driver hands the engine only such URLs, so the
/// engine compares origins as text and needs no URL parser of its own; anything else
/// (upper case, user info, a wildcard, another scheme) is no origin at all, and so
/// never an allowed one.
pub fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    let host_chars =
        |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b':' | b'[' | b']');
    if authority.is_empty() || !authority.bytes().all(host_chars) {
        return None;
    }
    url.get(..scheme.len() + 3 + end)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://localhost/a?b#c"),
            Some("http://localhost")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin_of("https://[::1]:8443/x"),
            Some("https://[::1]:8443")
        );
        assert_eq!(origin_of("https://a.example?q"), Some("https://a.example"));
        // Not as the browser's parser writes an http(s) URL: no origin.
        for url in [
            "/relative",
            "ftp://x/",
            "HTTPS://a.example/",
            "https://A.example/",
            "https://user@a.example/",
            "https://*.a.example/",
            "https:///x",
            "https:/a.example",
            "https://a.example\n/",
            "not a url",
        ] {
            assert_eq!(origin_of(url), None, "{url}");
        }
    }

    #[test]
    fn latest_nonce_per_origin() {
        let mut jar = NonceJar::default();
        assert!(jar.remember("http://a.test/x", "one"));
        assert!(jar.remember("http://a.test/y", "two"));
        assert!(jar.remember("http://b.test/", "three"));
        assert_eq!(jar.get("http://a.test/"), Some("two"));
        assert_eq!(jar.get("http://b.test/z"), Some("three"));
        assert_eq!(jar.get("http://c.test/"), None);
    }

    #[test]
    fn invalid_nonces_are_ignored() {
        let mut jar = NonceJar::default();
        jar.remember("http://a.test/", "good");
        for bad in [
            "",
            "with space",
            "quote\"",
            "back\\slash",
            "é",
            &"n".repeat(513),
        ] {
            assert!(!jar.remember("http://a.test/", bad), "{bad:?}");
        }
        assert_eq!(jar.get("http://a.test/"), Some("good"));
        assert!(!jar.remember("not a url", "good"));
    }

    #[test]
    fn capacity_forgets_the_oldest() {
        let mut jar = NonceJar::default();
        for i in 0..=CAPACITY {
            jar.remember(&format!("http://h{i}.test/"), "n");
        }
        assert_eq!(jar.get("http://h0.test/"), None);
        assert_eq!(jar.get(&format!("http://h{CAPACITY}.test/")), Some("n"));
    }
}
