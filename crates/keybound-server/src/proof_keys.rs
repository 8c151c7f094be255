//! Decoded proof keys of returning clients.
//!
//! Every proof carries its device key as a JWK; turning it into a curve point (and
//! checking it is usable: an Ed25519 point not of small order, a P-256 point on the
//! curve) costs a noticeable part of a signature check. A client signs every request
//! with the same key, so the verifier remembers the keys it decoded. Decoding is a pure
//! function of the JWK: a remembered key is exactly what decoding again would give, so
//! the checks are unchanged.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::sync::{Mutex, PoisonError};

use keybound_proto::{DecodeEveryTime, KeyDecoder, ProofKey, ProtoError, PublicJwk};

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<PublicJwk, ProofKey, RandomState>>;

/// A bounded map from a key's JWK to its decoded form. Only keys that decoded
/// successfully are kept; a full shard drops an arbitrary entry (hash order, so in
/// effect a random one) to make room.
pub(crate) struct ProofKeyCache {
    shards: Box<[Shard]>,
    shard_capacity: usize,
}

impl ProofKeyCache {
    /// A cache of about `capacity` keys (0: decode every time).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(RandomState::new())))
                .collect(),
            shard_capacity: capacity.div_ceil(SHARDS),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

impl KeyDecoder for ProofKeyCache {
    fn decode(&self, jwk: &PublicJwk) -> Result<ProofKey, ProtoError> {
        if self.shard_capacity == 0 {
            return DecodeEveryTime.decode(jwk);
        }
        // The map is only ever changed by single operations: a poisoned lock is fine.
        // The last byte of a public key picks the shard (any byte is as good as random).
        let last = match (jwk.ed25519_bytes(), jwk.p256_coordinates()) {
            (Some(x), _) => x[31],
            (None, Some((_, y))) => y[31],
            (None, None) => 0,
        };
        let shard = &self.shards[usize::from(last) % SHARDS];
        if let Some(key) = shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(jwk)
        {
            return Ok(key.clone());
        }
        let key = DecodeEveryTime.decode(jwk)?;
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.shard_capacity {
            if let Some(old) = map.keys().next().copied() {
                map.remove(&old);
            }
        }
        map.insert(*jwk, key.clone());
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed25519(seed: u8) -> PublicJwk {
        PublicJwk::from_verifying_key(
            &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key(),
        )
    }

    /// A P-256 public key (the generator point G).
    fn p256() -> PublicJwk {
        let hex = |s: &str| -> [u8; 32] {
            std::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        };
        PublicJwk::from_p256_coordinates(
            hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
            hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"),
        )
    }

    #[test]
    fn remembers_good_keys_only() {
        let cache = ProofKeyCache::new(SHARDS);
        for jwk in [ed25519(3), p256()] {
            assert_eq!(cache.decode(&jwk), jwk.decode());
            assert_eq!(cache.decode(&jwk).unwrap().jwk(), &jwk);
        }
        assert_eq!(cache.len(), 2);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let identity = PublicJwk::from_bytes(identity);
        assert_eq!(cache.decode(&identity), Err(ProtoError::WeakKey));
        assert_eq!(cache.decode(&identity), Err(ProtoError::WeakKey));
        let (x, y) = p256().p256_coordinates().map(|(x, y)| (*x, *y)).unwrap();
        let mut off_curve = y;
        off_curve[0] ^= 1;
        let off_curve = PublicJwk::from_p256_coordinates(x, off_curve);
        assert!(matches!(
            cache.decode(&off_curve),
            Err(ProtoError::InvalidJwk { .. })
        ));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn stays_bounded() {
        let cache = ProofKeyCache::new(SHARDS * 2);
        for seed in 0..200u8 {
            let jwk = ed25519(seed);
            assert_eq!(cache.decode(&jwk), jwk.decode());
        }
        assert!(cache.len() <= SHARDS * 2);
    }

    #[test]
    fn disabled_cache_decodes_every_time() {
        let cache = ProofKeyCache::new(0);
        assert_eq!(cache.decode(&ed25519(3)), ed25519(3).decode());
        assert_eq!(cache.len(), 0);
    }
}
