//! The wire vocabulary: every code is unique, has a meaning, and is documented in
//! `docs/codes.md` (which names no other code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use keybound_proto::wire::{Code, code, oauth, reason};

const DOCS: &str = include_str!("../../../docs/codes.md");

/// The codes named in the first column of the tables under `heading` in the docs.
fn documented(heading: &str) -> BTreeSet<String> {
    let section = DOCS.split(heading).nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(code, _)| code.to_owned())
        .filter(|code| !matches!(code.as_str(), "error" | "error_code" | "reason"))
        .collect()
}

fn check(all: &[Code], heading: &str) {
    let mut seen = BTreeSet::new();
    for entry in all {
        assert!(seen.insert(entry.code), "{} is defined twice", entry.code);
        assert!(
            !entry.code.is_empty()
                && entry.code.len() <= 64
                && entry
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{} is not snake_case ASCII",
            entry.code
        );
        assert!(
            entry.meaning.ends_with('.') && entry.meaning.len() > 10,
            "{} has no meaning",
            entry.code
        );
    }
    let documented = documented(heading);
    let defined: BTreeSet<String> = seen.iter().map(|c| (*c).to_owned()).collect();
    let missing: Vec<_> = defined.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&defined).collect();
    assert!(missing.is_empty(), "not in docs/codes.md: {missing:?}");
    assert!(
        unknown.is_empty(),
        "docs/codes.md names unknown codes: {unknown:?}"
    );
}

#[test]
fn error_codes_are_unique_and_documented() {
    check(code::ALL, "## `error_code`");
}

#[test]
fn oauth_errors_are_unique_and_documented() {
    check(oauth::ALL, "## `error`:");
}

#[test]
fn session_end_reasons_are_unique_and_documented() {
    check(reason::ALL, "## `reason`:");
}

#[test]
fn constants_are_their_table_entries() {
    assert!(code::ALL.iter().any(|c| c.code == code::IAT_TOO_OLD));
    assert!(oauth::ALL.iter().any(|c| c.code == oauth::INVALID_GRANT));
    assert_eq!(code::INVALID_JSON, "invalid_json");
    assert_ne!(code::INVALID_JSON, code::INVALID_JSON_BODY);
    assert_eq!(
        reason::DBSC_REGISTRATION_TIMEOUT,
        "dbsc_registration_timeout"
    );
}
