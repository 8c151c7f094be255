//! `htu` normalisation: idempotent, always an absolute http(s) URL without query,
//! fragment, default port or dot segments, with a port that exists, and the same as a WHATWG URL parser's
//! result wherever that parser and keybound must agree (plain ASCII hosts and paths).
#![no_main]

use keybound_proto::normalize_htu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let normal = match normalize_htu(input) {
        Ok(normal) => normal,
        Err(_) => {
            assert!(
                !is_plain(input) || url::Url::parse(input).is_err(),
                "refused {input:?}"
            );
            return;
        }
    };
    assert_eq!(
        normalize_htu(&normal).as_ref(),
        Ok(&normal),
        "not idempotent for {input:?}"
    );
    let (scheme, rest) = normal.split_once("://").unwrap_or_default();
    assert!(scheme == "http" || scheme == "https", "{normal:?}");
    assert!(!normal.contains(['?', '#']), "{normal:?}");
    let path_start = rest
        .find('/')
        .unwrap_or_else(|| panic!("no path in {normal:?}"));
    let (authority, path) = rest.split_at(path_start);
    assert!(!authority.is_empty());
    assert_eq!(authority, authority.to_ascii_lowercase());
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    assert!(!authority.ends_with(default_port), "{normal:?}");
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    if let Some((_, port)) = authority[host_end..].rsplit_once(':') {
        assert!(
            port.parse::<u16>().is_ok(),
            "port out of range in {normal:?}"
        );
    }
    assert!(
        !path
            .split('/')
            .any(|segment| segment == "." || segment == ".."),
        "dot segment left in {normal:?}"
    );
    if is_plain(input)
        && let Ok(mut url) = url::Url::parse(input)
    {
        url.set_query(None);
        url.set_fragment(None);
        assert_eq!(
            normal,
            url.as_str(),
            "differs from the URL parser for {input:?}"
        );
    }
});

/// Inputs where keybound and a WHATWG URL parser must agree: `http(s)://`, a host of
/// ASCII letter-led labels, an optional port, and a path, query and fragment of
/// unreserved characters (no percent-encoding, backslashes or IP literals, where the
/// two rightly differ).
fn is_plain(input: &str) -> bool {
    let Some((scheme, rest)) = input.split_once("://") else {
        return false;
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return false;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let label_ok = |label: &str| {
        label.starts_with(|c: char| c.is_ascii_alphabetic())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let port_ok = port.is_none_or(|p| {
        p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= 65535)
    });
    !host.is_empty()
        && host.split('.').all(label_ok)
        && port_ok
        && tail
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._~-?#=&".contains(&b))
}
