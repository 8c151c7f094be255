//! Strict unpadded base64url, as JOSE requires.

#[allow(unused_imports)]
use crate::prelude::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ProtoError;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Encodes `bytes` as unpadded base64url into `out`, returning the length written
/// (0 if `out` is too small).
pub(crate) fn encode_into(bytes: &[u8], out: &mut [u8]) -> usize {
    URL_SAFE_NO_PAD.encode_slice(bytes, out).unwrap_or(0)
}

/// Decodes canonical unpadded base64url: padding, characters outside the URL-safe
/// alphabet and non-zero trailing bits are all rejected, so every value has exactly
/// one accepted encoding.
pub fn decode(text: &str, part: &'static str) -> Result<Vec<u8>, ProtoError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ProtoError::InvalidBase64 { part })
}

/// Decodes canonical base64url into exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str, part: &'static str) -> Result<[u8; N], ProtoError> {
    // Exactly `N` bytes take exactly this many characters; anything else is rejected
    // like `decode` then a length check would (same error).
    if text.len() != (N * 4).div_ceil(3) {
        return Err(ProtoError::InvalidBase64 { part });
    }
    let mut out = [0u8; N];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
        Ok(n) if n == N => Ok(out),
        _ => Err(ProtoError::InvalidBase64 { part }),
    }
}

/// Decodes canonical base64url into `stack` when it fits, else into `heap`.
pub(crate) fn decode_into<'b>(
    text: &str,
    part: &'static str,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], ProtoError> {
    if base64::decoded_len_estimate(text.len()) <= stack.len() {
        let n = URL_SAFE_NO_PAD
            .decode_slice(text, stack)
            .map_err(|_| ProtoError::InvalidBase64 { part })?;
        return Ok(&stack[..n]);
    }
    *heap = decode(text, part)?;
    Ok(heap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_padding_and_standard_alphabet() {
        assert_eq!(decode("YQ", "x").unwrap(), b"a");
        assert!(decode("YQ==", "x").is_err());
        assert!(decode("+/8", "x").is_err());
        assert_eq!(decode("-_8", "x").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "YR" decodes to "a" only if trailing bits are ignored.
        assert!(decode("YR", "x").is_err());
    }
}
