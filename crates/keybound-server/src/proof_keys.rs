//! Decoded proof keys of returning clients.
//!
//! Every proof carries its device key as a JWK; turning those 32 bytes into a curve
//! point (and checking it is not of small order) costs about a tenth of a signature
//! check. A client signs every request with the same key, so the verifier remembers
//! the keys it decoded. Decoding is a pure function of the bytes: a remembered key is
//! exactly what decoding again would give, so the checks are unchanged.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::sync::{Mutex, PoisonError};

use ed25519_dalek::VerifyingKey;
use keybound_proto::{DecodeEveryTime, KeyDecoder, ProtoError};

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<[u8; 32], VerifyingKey, RandomState>>;

/// A bounded map from a key's bytes to its decoded form. Only keys that decoded
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
    fn decode(&self, x: &[u8; 32]) -> Result<VerifyingKey, ProtoError> {
        if self.shard_capacity == 0 {
            return DecodeEveryTime.decode(x);
        }
        // The map is only ever changed by single operations: a poisoned lock is fine.
        let shard = &self.shards[usize::from(x[31]) % SHARDS];
        if let Some(key) = shard.lock().unwrap_or_else(PoisonError::into_inner).get(x) {
            return Ok(*key);
        }
        let key = DecodeEveryTime.decode(x)?;
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.shard_capacity {
            if let Some(old) = map.keys().next().copied() {
                map.remove(&old);
            }
        }
        map.insert(*x, key);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_good_keys_only() {
        let cache = ProofKeyCache::new(SHARDS);
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]).verifying_key();
        assert_eq!(cache.decode(key.as_bytes()), Ok(key));
        assert_eq!(cache.decode(key.as_bytes()), Ok(key));
        assert_eq!(cache.len(), 1);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(cache.decode(&identity), Err(ProtoError::WeakKey));
        assert_eq!(cache.decode(&identity), Err(ProtoError::WeakKey));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stays_bounded() {
        let cache = ProofKeyCache::new(SHARDS * 2);
        for seed in 0..200u8 {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
            assert_eq!(cache.decode(key.as_bytes()), Ok(key));
        }
        assert!(cache.len() <= SHARDS * 2);
    }

    #[test]
    fn disabled_cache_decodes_every_time() {
        let cache = ProofKeyCache::new(0);
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]).verifying_key();
        assert_eq!(cache.decode(key.as_bytes()), Ok(key));
        assert_eq!(cache.len(), 0);
    }
}
