//! Decoded proof keys of returning clients.
//!
//! Every proof carries its device key as a JWK; turning those 32 bytes into a curve
//! point (and checking it is not of small order) costs about a tenth of a signature
//! check. A client signs every request with the same key, so the verifier remembers
//! the keys it decoded. Decoding is a pure function of the bytes: a remembered key is
//! exactly what decoding again would give, so the checks are unchanged.

use std::cell::Cell;
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

impl ProofKeyCache {
    fn shard(&self, x: &[u8; 32]) -> &Shard {
        &self.shards[usize::from(x[31]) % SHARDS]
    }

    /// The remembered decoded form of `x`, if any.
    fn get(&self, x: &[u8; 32]) -> Option<VerifyingKey> {
        // The map is only ever changed by single operations: a poisoned lock is fine.
        self.shard(x)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(x)
            .copied()
    }

    /// Remembers a decoded key. Called only once the proof it came with verified, so
    /// nothing an unverified request sends is written.
    pub(crate) fn remember(&self, x: [u8; 32], key: VerifyingKey) {
        if self.shard_capacity == 0 {
            return;
        }
        let mut map = self
            .shard(&x)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.shard_capacity {
            if let Some(old) = map.keys().next().copied() {
                map.remove(&old);
            }
        }
        map.insert(x, key);
    }

    /// A decoder for one request: remembered keys come from the cache, a key decoded
    /// afresh is held in [`Decoding::fresh`] until the caller knows the proof verified.
    pub(crate) fn decoding(&self) -> Decoding<'_> {
        Decoding {
            cache: self,
            fresh: Cell::new(None),
        }
    }
}

/// The [`KeyDecoder`] of one request (see [`ProofKeyCache::decoding`]).
pub(crate) struct Decoding<'c> {
    cache: &'c ProofKeyCache,
    fresh: Cell<Option<([u8; 32], VerifyingKey)>>,
}

impl Decoding<'_> {
    /// Writes the key decoded for this request to the cache: call once every check
    /// passed.
    pub(crate) fn remember(&self) {
        if let Some((x, key)) = self.fresh.take() {
            self.cache.remember(x, key);
        }
    }
}

impl KeyDecoder for Decoding<'_> {
    fn decode(&self, x: &[u8; 32]) -> Result<VerifyingKey, ProtoError> {
        if let Some(key) = self.cache.get(x) {
            return Ok(key);
        }
        let key = DecodeEveryTime.decode(x)?;
        if self.cache.shard_capacity > 0 {
            self.fresh.set(Some((*x, key)));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `x` for one request and, when `verified`, remembers it.
    fn decode(
        cache: &ProofKeyCache,
        x: &[u8; 32],
        verified: bool,
    ) -> Result<VerifyingKey, ProtoError> {
        let decoding = cache.decoding();
        let key = decoding.decode(x);
        if verified {
            decoding.remember();
        }
        key
    }

    #[test]
    fn remembers_good_keys_of_verified_proofs_only() {
        let cache = ProofKeyCache::new(SHARDS);
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]).verifying_key();
        // A proof that then failed its checks leaves nothing behind.
        assert_eq!(decode(&cache, key.as_bytes(), false), Ok(key));
        assert_eq!(cache.len(), 0);
        assert_eq!(decode(&cache, key.as_bytes(), true), Ok(key));
        assert_eq!(decode(&cache, key.as_bytes(), true), Ok(key));
        assert_eq!(cache.len(), 1);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(decode(&cache, &identity, true), Err(ProtoError::WeakKey));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stays_bounded() {
        let cache = ProofKeyCache::new(SHARDS * 2);
        for seed in 0..200u8 {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
            assert_eq!(decode(&cache, key.as_bytes(), true), Ok(key));
        }
        assert!(cache.len() <= SHARDS * 2);
    }

    #[test]
    fn disabled_cache_decodes_every_time() {
        let cache = ProofKeyCache::new(0);
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]).verifying_key();
        assert_eq!(decode(&cache, key.as_bytes(), true), Ok(key));
        assert_eq!(cache.len(), 0);
    }
}
