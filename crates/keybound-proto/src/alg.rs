//! The signature algorithms of DPoP proofs, and sets of them (what a server accepts and
//! advertises in `WWW-Authenticate: DPoP algs="…"`, RFC 9449 §7.1).

use core::fmt;

use crate::prelude::*;

/// A JWS algorithm keybound accepts for DPoP proofs. The key kind follows from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ProofAlg {
    /// `EdDSA` with an Ed25519 `OKP` key (RFC 8037); its RFC 9864 name `Ed25519` is
    /// accepted as the same algorithm.
    EdDSA,
    /// `ES256`: ECDSA on P-256 with SHA-256, an `EC` key, the signature the 64-byte
    /// `r || s` (RFC 7518 §3.4).
    ES256,
}

impl ProofAlg {
    /// Every proof algorithm, in the order keybound lists them.
    pub const ALL: [Self; 2] = [Self::EdDSA, Self::ES256];

    /// The JWS `alg` name keybound writes (`EdDSA`, `ES256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
        }
    }

    /// The algorithm a JWS `alg` header names, exactly (names are case-sensitive);
    /// `Ed25519` (RFC 9864) is [`EdDSA`](Self::EdDSA).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" | "Ed25519" => Some(Self::EdDSA),
            "ES256" => Some(Self::ES256),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::EdDSA => 1,
            Self::ES256 => 2,
        }
    }
}

impl fmt::Display for ProofAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`ProofAlg`]s: the proof algorithms a verifier accepts. The default is
/// every algorithm ([`ProofAlgs::ALL`]).
///
/// ```
/// use keybound_proto::{ProofAlg, ProofAlgs};
/// let algs: ProofAlgs = "ES256".parse().unwrap();
/// assert!(algs.contains(ProofAlg::ES256) && !algs.contains(ProofAlg::EdDSA));
/// assert_eq!(ProofAlgs::ALL.to_string(), "EdDSA ES256");
/// assert_eq!("EdDSA, ES256".parse::<ProofAlgs>().unwrap(), ProofAlgs::ALL);
/// assert!("RS256".parse::<ProofAlgs>().is_err() && "".parse::<ProofAlgs>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProofAlgs(u8);

impl ProofAlgs {
    /// `EdDSA` and `ES256`.
    pub const ALL: Self = Self(3);

    /// The set of just `alg`.
    pub fn only(alg: ProofAlg) -> Self {
        Self(alg.bit())
    }

    /// This set plus `alg`.
    #[must_use]
    pub fn with(self, alg: ProofAlg) -> Self {
        Self(self.0 | alg.bit())
    }

    /// Whether `alg` is in the set.
    pub fn contains(self, alg: ProofAlg) -> bool {
        self.0 & alg.bit() != 0
    }

    /// The algorithms in the set, in [`ProofAlg::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = ProofAlg> {
        ProofAlg::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl Default for ProofAlgs {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Debug for ProofAlgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Space-separated names, as the `algs` parameter of a DPoP challenge lists them.
impl fmt::Display for ProofAlgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, alg) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(alg.name())?;
        }
        Ok(())
    }
}

/// Why a list of algorithm names is not a usable [`ProofAlgs`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofAlgsError {
    /// A name is not a proof algorithm keybound knows.
    #[error("unknown proof algorithm {0:?} (known: EdDSA, ES256)")]
    Unknown(String),
    /// The list names no algorithm: nothing could ever verify.
    #[error("no proof algorithm given (known: EdDSA, ES256)")]
    Empty,
}

/// Parses names separated by commas and/or spaces (`EdDSA,ES256`, `ES256`).
impl core::str::FromStr for ProofAlgs {
    type Err = ProofAlgsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut set = Self(0);
        for name in text.split([',', ' ']).filter(|n| !n.is_empty()) {
            let alg = ProofAlg::from_name(name)
                .ok_or_else(|| ProofAlgsError::Unknown(name.to_owned()))?;
            set = set.with(alg);
        }
        if set.0 == 0 {
            return Err(ProofAlgsError::Empty);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in ProofAlg::ALL {
            assert_eq!(ProofAlg::from_name(alg.name()), Some(alg));
        }
        assert_eq!(ProofAlg::from_name("Ed25519"), Some(ProofAlg::EdDSA));
        assert_eq!(ProofAlg::from_name("es256"), None);
        assert_eq!(ProofAlg::from_name("none"), None);
    }

    #[test]
    fn sets() {
        let es = ProofAlgs::only(ProofAlg::ES256);
        assert_eq!(es.to_string(), "ES256");
        assert_eq!(es.with(ProofAlg::EdDSA), ProofAlgs::ALL);
        assert_eq!(ProofAlgs::default(), ProofAlgs::ALL);
        assert_eq!(format!("{:?}", ProofAlgs::ALL), "{EdDSA, ES256}");
        assert_eq!(" ES256 ,".parse::<ProofAlgs>(), Ok(es));
        assert_eq!(
            "ES256,PS256".parse::<ProofAlgs>(),
            Err(ProofAlgsError::Unknown("PS256".into()))
        );
        assert_eq!(",".parse::<ProofAlgs>(), Err(ProofAlgsError::Empty));
    }
}
