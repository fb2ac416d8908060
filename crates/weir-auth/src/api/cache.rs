//! A bounded cache of verified API tokens (moka), keyed by SHA-256 of the
//! token bytes.
//!
//! # Invariants
//!
//! - Only identities whose token passed every check are inserted, and only
//!   while `now < exp`.
//! - An entry is never returned once the verifier's clock reads `exp` or
//!   later: moka drops it `exp - now` seconds after insertion (wall time),
//!   and every hit re-checks `exp > now` against the verifier's clock too,
//!   so a controlled or jumping clock cannot keep an entry alive. Leeway
//!   never extends a cached entry.
//! - Revocation is not cached: the verifier consults it on every hit, and
//!   re-checks the token's time claims too.
//! - The token is not stored, only its digest.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::api::role::Identity;
use crate::times::Validity;

type Digest = [u8; 32];

struct Entry {
    identity: Identity,
    /// The token's time claims, re-checked on every hit.
    validity: Validity,
    /// Time to live from insertion, so that moka expires it at `exp`.
    ttl: Duration,
}

/// Expires each entry at its token's `exp`.
struct UntilExp;

impl Expiry<Digest, Arc<Entry>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub(crate) struct IdentityCache {
    entries: Cache<Digest, Arc<Entry>>,
    capacity: u64,
}

impl IdentityCache {
    /// A cache holding at most `capacity` identities.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
            capacity,
        }
    }

    /// The identity cached for `key` and its token's time claims, if the
    /// token has not expired at `now`.
    pub(crate) fn get(&self, key: &Digest, now: i64) -> Option<(Identity, Validity)> {
        let entry = self.entries.get(key)?;
        if entry.identity.exp <= now {
            self.entries.invalidate(key);
            return None;
        }
        Some((entry.identity.clone(), entry.validity))
    }

    /// Caches `identity` (already fully verified) until its `exp`.
    pub(crate) fn insert(&self, key: Digest, identity: &Identity, validity: Validity, now: i64) {
        let Some(ttl) = identity
            .exp
            .checked_sub(now)
            .filter(|&secs| secs > 0)
            .and_then(|secs| u64::try_from(secs).ok())
        else {
            return;
        };
        let entry = Entry {
            identity: identity.clone(),
            validity,
            ttl: Duration::from_secs(ttl),
        };
        self.entries.insert(key, Arc::new(entry));
    }

    /// Forgets the entry for `key`, if any.
    pub(crate) fn remove(&self, key: &Digest) {
        self.entries.invalidate(key);
    }

    /// Forgets every entry (the trusted keys changed).
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Entries held, after applying pending evictions.
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

impl fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityCache")
            .field("capacity", &self.capacity)
            .field("len", &self.entries.entry_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validity(exp: i64) -> Validity {
        Validity {
            iat: None,
            nbf: None,
            exp,
        }
    }

    fn identity(exp: i64) -> Identity {
        Identity {
            sub: "s".into(),
            roles: Default::default(),
            jti: Some("j".into()),
            exp,
            issuer: "i".into(),
            external: false,
        }
    }

    #[test]
    fn hit_until_exp_then_dropped() {
        let cache = IdentityCache::new(8);
        cache.insert([1; 32], &identity(100), validity(100), 10);
        assert_eq!(cache.get(&[1; 32], 99).unwrap().0.exp, 100);
        assert!(cache.get(&[1; 32], 100).is_none());
        assert_eq!(cache.len(), 0, "expired entry dropped on lookup");
        cache.insert([1; 32], &identity(100), validity(100), 100);
        assert_eq!(cache.len(), 0, "expired identity not inserted");
    }

    #[test]
    fn moka_expires_entries_at_exp_in_wall_time() {
        let cache = IdentityCache::new(8);
        cache.insert([2; 32], &identity(11), validity(11), 10);
        assert_eq!(cache.len(), 1);
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(cache.entries.get(&[2; 32]).is_none());
    }

    #[test]
    fn bounded() {
        let cache = IdentityCache::new(16);
        for i in 0..200u8 {
            cache.insert([i; 32], &identity(1_000), validity(1_000), 0);
        }
        assert!(cache.len() <= 16, "{}", cache.len());
        assert_eq!(cache.capacity, 16);
    }
}
