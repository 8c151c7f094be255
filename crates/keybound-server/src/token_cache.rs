//! A cache of access tokens whose signature verified, so a client's repeated requests
//! with the same token cost one signature check (the proof's) instead of two.
//!
//! Only the token's signature and parse are skipped on a hit: the cache keeps the
//! parsed token (parsing is a pure function of the text, and the text is compared in
//! full), and its binding, expiry and key (`kid` still in the ring, with the same
//! public key) are still checked; the request's proof is checked in full.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::sync::{Mutex, MutexGuard, PoisonError};

use keybound_proto::AccessToken;
use sha2::{Digest, Sha256};

/// Number of shards (a power of two).
const SHARDS: usize = 16;

/// Verified access tokens, keyed by the SHA-256 of the token text, each kept until the
/// token's `exp`. Bounded: when a shard is full, expired entries are dropped; if it is
/// still full, the new token is simply not cached. The verifier stores the parsed
/// token with each entry (about 1 KiB for a typical token), so a full cache of the
/// default capacity (16,384 tokens: the live tokens of that many active sessions with
/// the default 300 s lifetime) holds about 16 MiB.
///
/// ```
/// use keybound_server::TokenCache;
/// let cache = TokenCache::new(1024);
/// let hash = TokenCache::hash("header.payload.signature");
/// cache.insert(hash, 1_700_000_300, [9u8; 32], 1_700_000_000);
/// assert_eq!(cache.get(&hash, 1_700_000_100), Some([9u8; 32]));
/// assert_eq!(cache.get(&hash, 1_700_000_300), None); // expired
/// ```
pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .field("capacity", &(self.shard_capacity * SHARDS))
            .finish_non_exhaustive()
    }
}

struct Cached {
    /// The token's `exp`, seconds since the epoch.
    exp: i64,
    /// The public key that verified the token's signature.
    key: [u8; 32],
    /// The parsed token, when it was inserted with [`TokenCache::insert_token`].
    token: Option<AccessToken>,
}

struct Shard {
    map: HashMap<[u8; 32], Cached, RandomState>,
    /// A lower bound of the `exp` values in `map`.
    earliest: i64,
}

impl Shard {
    fn sweep(&mut self, now: i64) {
        if now < self.earliest {
            return;
        }
        let mut earliest = i64::MAX;
        self.map.retain(|_, cached| {
            let live = cached.exp > now;
            if live {
                earliest = earliest.min(cached.exp);
            }
            live
        });
        self.earliest = earliest;
    }
}

impl TokenCache {
    /// The default capacity of the verifier's cache, in tokens.
    pub const DEFAULT_CAPACITY: usize = 16_384;

    /// A cache holding about `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(RandomState::new()),
                    earliest: i64::MAX,
                })
            })
            .collect();
        Self {
            shards,
            shard_capacity: capacity.div_ceil(SHARDS),
        }
    }

    /// The cache key of a token: SHA-256 of its compact text.
    pub fn hash(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The public key that verified the token with this hash, if it is cached and not
    /// expired at `now` (seconds). An expired entry is dropped.
    pub fn get(&self, hash: &[u8; 32], now: i64) -> Option<[u8; 32]> {
        self.get_entry(hash, now).map(|(key, _)| key)
    }

    /// [`get`](Self::get), also returning the parsed token when it was inserted with
    /// [`insert_token`](Self::insert_token).
    pub fn get_token(&self, hash: &[u8; 32], now: i64) -> Option<([u8; 32], Option<AccessToken>)> {
        self.get_entry(hash, now)
    }

    fn get_entry(&self, hash: &[u8; 32], now: i64) -> Option<([u8; 32], Option<AccessToken>)> {
        if self.shard_capacity == 0 {
            return None;
        }
        let mut shard = self.lock(hash);
        let cached = shard.map.get(hash)?;
        if cached.exp <= now {
            shard.map.remove(hash);
            return None;
        }
        Some((cached.key, cached.token.clone()))
    }

    /// Remembers that the token with this hash, expiring at `exp`, was verified by
    /// `key`. Does nothing for a token already expired at `now` or when the shard is
    /// full of live tokens.
    pub fn insert(&self, hash: [u8; 32], exp: i64, key: [u8; 32], now: i64) {
        self.insert_entry(hash, exp, key, None, now);
    }

    /// [`insert`](Self::insert) for a parsed token (its `exp` from its claims), kept so
    /// a later request with the same token need not parse it again. `hash` must be
    /// [`TokenCache::hash`] of the token's text.
    pub fn insert_token(&self, hash: [u8; 32], token: &AccessToken, key: [u8; 32], now: i64) {
        self.insert_entry(hash, token.claims().exp, key, Some(token.clone()), now);
    }

    fn insert_entry(
        &self,
        hash: [u8; 32],
        exp: i64,
        key: [u8; 32],
        token: Option<AccessToken>,
        now: i64,
    ) {
        if self.shard_capacity == 0 || exp <= now {
            return;
        }
        let mut shard = self.lock(&hash);
        if shard.map.len() >= self.shard_capacity && !shard.map.contains_key(&hash) {
            shard.sweep(now);
            if shard.map.len() >= self.shard_capacity {
                return;
            }
        }
        shard.map.insert(hash, Cached { exp, key, token });
        shard.earliest = shard.earliest.min(exp);
    }

    /// Drops every cached token (for example after retiring a key in a hurry; the
    /// verifier also re-checks the key of every cached token on use).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.map.clear();
            shard.earliest = i64::MAX;
        }
    }

    /// Drops expired tokens now.
    pub fn sweep(&self, now: i64) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sweep(now);
        }
    }

    /// Whether the cache holds anything at all (capacity above 0).
    pub fn is_enabled(&self) -> bool {
        self.shard_capacity > 0
    }

    /// The number of cached tokens.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self, hash: &[u8; 32]) -> MutexGuard<'_, Shard> {
        // Every mutation is a single map operation: a poisoned shard is still consistent.
        self.shards[usize::from(hash[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_drops_expired_tokens_when_full() {
        let cache = TokenCache::new(SHARDS);
        // All of these land in one shard of capacity 1.
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        b[1] = 1;
        cache.insert(a, 100, [1; 32], 10);
        cache.insert(b, 200, [2; 32], 10);
        assert_eq!(cache.get(&b, 10), None, "shard full of live tokens");
        assert_eq!(cache.get(&a, 10), Some([1; 32]));
        cache.insert(b, 200, [2; 32], 100);
        assert_eq!(cache.get(&b, 100), Some([2; 32]), "expired entry made room");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let cache = TokenCache::new(0);
        cache.insert([0; 32], 100, [1; 32], 10);
        assert_eq!(cache.get(&[0; 32], 10), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn expired_tokens_are_not_inserted() {
        let cache = TokenCache::new(100);
        cache.insert([0; 32], 10, [1; 32], 10);
        assert!(cache.is_empty());
        cache.insert([0; 32], 11, [1; 32], 10);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn keeps_parsed_tokens() {
        let server = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
        let claims = keybound_proto::AccessTokenClaims {
            iss: "i".into(),
            sub: "s".into(),
            sid: "d".into(),
            jti: "j".into(),
            iat: 0,
            exp: 100,
            jkt: "k".into(),
        };
        let text = keybound_proto::sign_access_token(&claims, "kid", &server).unwrap();
        let token = AccessToken::parse(&text).unwrap();
        let cache = TokenCache::new(100);
        let hash = TokenCache::hash(&text);
        cache.insert_token(hash, &token, [7; 32], 10);
        let (key, cached) = cache.get_token(&hash, 10).unwrap();
        assert_eq!(key, [7; 32]);
        assert_eq!(cached.unwrap().as_str(), text);
        assert_eq!(cache.get(&hash, 10), Some([7; 32]));
        assert!(cache.get_token(&hash, 100).is_none(), "expired at exp");
        cache.insert(hash, 100, [7; 32], 10);
        let (key, token) = cache.get_token(&hash, 10).unwrap();
        assert_eq!(key, [7; 32]);
        assert!(token.is_none(), "inserted without the parsed token");
    }
}
