//! The few pieces of HTTP Structured Fields (RFC 9651) DBSC headers need: writing an
//! sf-string, and reading the request headers Chromium sends either as an sf-string
//! (the spec's form) or bare (Chromium 156's form).

use super::DbscError;
#[allow(unused_imports)]
use crate::prelude::*;

/// Writes `value` as an sf-string: printable ASCII only (RFC 9651 §4.1.6), with `"` and
/// `\` escaped.
pub(crate) fn write_string(
    out: &mut String,
    value: &str,
    what: &'static str,
) -> Result<(), DbscError> {
    if let Some(b) = value.bytes().find(|b| !(0x20..=0x7e).contains(b)) {
        let reason = if b.is_ascii_control() {
            "control characters are not allowed"
        } else {
            "only printable ASCII is allowed"
        };
        return Err(DbscError::Unencodable { what, reason });
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(())
}

/// Reads a request header that carries one string: an sf-string item whose parameters
/// are ignored (the spec), or the bare value (Chromium 156 sends
/// `Secure-Session-Response` and `Sec-Secure-Session-Id` unquoted). A value that starts
/// with `"` is read as an sf-string; otherwise the whole value, without surrounding
/// spaces, is the string and must be printable ASCII. Empty values are refused.
pub(crate) fn read_string_or_bare(value: &[u8], name: &'static str) -> Result<String, DbscError> {
    let invalid = |reason| DbscError::InvalidHeader { name, reason };
    let value = trim(value);
    if value.is_empty() {
        return Err(invalid("empty"));
    }
    let text = if value[0] == b'"' {
        let (text, rest) = read_quoted(value).ok_or(invalid("not a valid quoted string"))?;
        // Parameters (`;id="…"` and the like) are ignored, as the spec asks; anything
        // else after the string is not a single item.
        if !rest.is_empty() && rest[0] != b';' {
            return Err(invalid("more than one item"));
        }
        text
    } else {
        if value.iter().any(|b| !(0x20..=0x7e).contains(b)) {
            return Err(invalid("not printable ASCII"));
        }
        String::from_utf8_lossy(value).into_owned()
    };
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    Ok(text)
}

/// Parses an sf-string at the start of `input` (which begins with `"`), returning the
/// unescaped string and the rest of the input.
fn read_quoted(input: &[u8]) -> Option<(String, &[u8])> {
    let mut out = String::new();
    let mut i = 1;
    while i < input.len() {
        match input[i] {
            b'\\' => {
                let next = *input.get(i + 1)?;
                if next != b'"' && next != b'\\' {
                    return None;
                }
                out.push(char::from(next));
                i += 2;
            }
            b'"' => return Some((out, &input[i + 1..])),
            b @ 0x20..=0x7e => {
                out.push(char::from(b));
                i += 1;
            }
            _ => return None,
        }
    }
    None
}

fn trim(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &str) -> Result<String, DbscError> {
        let mut out = String::new();
        write_string(&mut out, value, "value").map(|()| out)
    }

    #[test]
    fn writes_escaped_strings() {
        assert_eq!(written("abc").unwrap(), r#""abc""#);
        assert_eq!(written(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(written("").unwrap(), r#""""#);
        assert_eq!(written("a\nb").unwrap_err().code(), "unencodable_value");
        assert_eq!(written("é").unwrap_err().code(), "unencodable_value");
    }

    #[test]
    fn reads_quoted_and_bare_forms() {
        let read = |v: &str| read_string_or_bare(v.as_bytes(), "Sec-Secure-Session-Id");
        assert_eq!(read("abc").unwrap(), "abc");
        assert_eq!(read(" abc\t").unwrap(), "abc");
        assert_eq!(read(r#""abc""#).unwrap(), "abc");
        assert_eq!(read(r#""abc";foo=1"#).unwrap(), "abc");
        assert_eq!(read(r#""a\"b\\c""#).unwrap(), r#"a"b\c"#);
        // Chromium sends ids bare even when they hold spaces or quotes.
        assert_eq!(read(r#"odd id "q" \ x"#).unwrap(), r#"odd id "q" \ x"#);
        for bad in [
            "",
            "  ",
            r#""""#,
            r#""abc"#,
            r#""a\b""#,
            r#""abc", "d""#,
            r#""abc"x"#,
            "a\u{1}b",
            "ä",
        ] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_header", "{bad:?}");
        }
    }

    #[test]
    fn round_trips() {
        for value in ["x", r#"q"uo\te"#, "with space ,;="] {
            let header = written(value).unwrap();
            assert_eq!(read_string_or_bare(header.as_bytes(), "h").unwrap(), value);
        }
    }
}
