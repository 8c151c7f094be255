//! Strict unpadded base64url, as JOSE requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ProtoError;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
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
    let bytes = decode(text, part)?;
    bytes
        .try_into()
        .map_err(|_| ProtoError::InvalidBase64 { part })
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
