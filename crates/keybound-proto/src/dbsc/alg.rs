//! The two signature algorithms DBSC uses.

#[allow(unused_imports)]
use crate::prelude::*;
use core::fmt;

use super::DbscError;

/// A DBSC signature algorithm (the spec allows exactly these two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DbscAlg {
    /// ECDSA P-256 with SHA-256; the JWS signature is the 64-byte `r || s`.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; keybound requires a modulus of at least 2048 bits.
    Rs256,
}

impl DbscAlg {
    /// Both, in keybound's order of preference (Chromium takes the first it supports).
    pub const ALL: [DbscAlg; 2] = [DbscAlg::Es256, DbscAlg::Rs256];

    /// The JOSE name: `ES256` or `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// Reads a JOSE name; anything but `ES256` or `RS256` (exact case) is refused.
    pub fn parse(name: &str) -> Result<Self, DbscError> {
        match name {
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            _ => Err(DbscError::UnsupportedAlg),
        }
    }
}

impl fmt::Display for DbscAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exact() {
        for alg in DbscAlg::ALL {
            assert_eq!(DbscAlg::parse(alg.as_str()).unwrap(), alg);
        }
        for bad in ["es256", "EdDSA", "none", "ES384", "PS256", ""] {
            assert_eq!(DbscAlg::parse(bad).unwrap_err().code(), "unsupported_alg");
        }
    }
}
