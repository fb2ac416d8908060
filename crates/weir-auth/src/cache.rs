//! A bounded cache of already-verified stage tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::token::StageClaims;

/// Default number of tokens a [`VerifiedCache`] holds.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// A bounded map from SHA-256(token) to the claims it verified to, so that
/// verifying the same token again skips the signature check.
///
/// # Guarantees
///
/// - Holds at most `capacity` entries; when full it first drops expired
///   entries, then, if still full, the eighth of the entries closest to
///   expiry. Evicting in bulk keeps an insert O(1) amortized: a worker
///   verifies each task's token once, so its cache is always full.
/// - An entry is never returned at or after its token's `exp` (leeway does
///   not extend it), and is dropped when found expired.
/// - Only tokens that passed full verification are inserted; the verifier
///   still checks times and revocation on every hit.
/// - The token itself is not stored, only its digest.
pub struct VerifiedCache {
    entries: Mutex<HashMap<[u8; 32], StageClaims>>,
    capacity: usize,
}

/// The cache key of `token`.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedCache {
    /// An empty cache holding at most `capacity` tokens (0 caches nothing).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::with_capacity(capacity.min(DEFAULT_CACHE_CAPACITY))),
            capacity,
        }
    }

    /// The most tokens held at once.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of tokens held (some possibly expired, not yet dropped).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    // A poisoned lock only means another thread panicked mid-operation; every
    // value in the map is still a fully verified token, so keep using it.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], StageClaims>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &[u8; 32], now: i64) -> Option<StageClaims> {
        let mut entries = self.lock();
        let claims = entries.get(key)?;
        if now >= claims.exp {
            entries.remove(key);
            return None;
        }
        Some(claims.clone())
    }

    pub(crate) fn insert(&self, key: [u8; 32], claims: &StageClaims, now: i64) {
        if self.capacity == 0 || now >= claims.exp {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, c| now < c.exp);
            if entries.len() >= self.capacity {
                evict_soonest(&mut entries, (self.capacity / 8).max(1));
            }
        }
        entries.insert(key, claims.clone());
    }
}

/// Drops the `n` entries closest to expiry (ties broken arbitrarily).
fn evict_soonest(entries: &mut HashMap<[u8; 32], StageClaims>, n: usize) {
    let mut by_exp: Vec<(i64, [u8; 32])> = entries.iter().map(|(k, c)| (c.exp, *k)).collect();
    let n = n.min(by_exp.len());
    if n == 0 {
        return;
    }
    by_exp.select_nth_unstable(n - 1);
    for (_, key) in by_exp.iter().take(n) {
        entries.remove(key);
    }
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenType;
    use crate::{Action, ActionSet, PathKind, Scope, ScopeEntry, ScopePath};

    fn claims(exp: i64) -> StageClaims {
        StageClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "s".into(),
            run: "r".into(),
            stage: "st".into(),
            attempt: 0,
            scope: Scope::new(vec![ScopeEntry {
                store: "lake".into(),
                path: ScopePath::parse("x").unwrap(),
                kind: PathKind::Exact,
                actions: ActionSet::empty().with(Action::Read),
                columns: None,
            }])
            .unwrap(),
            iat: 0,
            nbf: 0,
            exp,
            jti: "j".into(),
            typ: TokenType::Stage,
        }
    }

    #[test]
    fn entry_never_outlives_exp() {
        let cache = VerifiedCache::new(4);
        let k = digest("t");
        cache.insert(k, &claims(100), 10);
        assert!(cache.get(&k, 99).is_some());
        assert!(cache.get(&k, 100).is_none());
        assert!(cache.is_empty(), "expired entry dropped on lookup");
        cache.insert(k, &claims(100), 100);
        assert!(cache.is_empty(), "already-expired token not inserted");
    }

    #[test]
    fn bounded_evicts_expired_then_soonest() {
        let cache = VerifiedCache::new(2);
        cache.insert(digest("a"), &claims(50), 0);
        cache.insert(digest("b"), &claims(500), 0);
        cache.insert(digest("c"), &claims(300), 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&digest("a"), 1).is_none(), "soonest evicted");
        cache.insert(digest("d"), &claims(900), 400);
        assert!(
            cache.get(&digest("c"), 400).is_none(),
            "expired purged first"
        );
        assert!(cache.get(&digest("b"), 400).is_some());
        assert!(cache.get(&digest("d"), 400).is_some());
    }

    #[test]
    fn a_full_cache_drops_the_eighth_closest_to_expiry_and_keeps_the_rest() {
        let cache = VerifiedCache::new(64);
        for i in 0..64 {
            cache.insert(digest(&format!("t{i}")), &claims(1_000 + i), 0);
        }
        assert_eq!(cache.len(), 64);
        cache.insert(digest("new"), &claims(5_000), 0);
        assert_eq!(cache.len(), 64 - 8 + 1);
        for i in 0..8 {
            assert!(
                cache.get(&digest(&format!("t{i}")), 0).is_none(),
                "t{i} kept"
            );
        }
        for i in 8..64 {
            assert!(
                cache.get(&digest(&format!("t{i}")), 0).is_some(),
                "t{i} dropped"
            );
        }
        assert!(cache.get(&digest("new"), 0).is_some());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = VerifiedCache::new(0);
        cache.insert(digest("a"), &claims(50), 0);
        assert!(cache.is_empty());
        assert_eq!(cache.capacity(), 0);
        cache.clear();
        assert!(format!("{cache:?}").contains("capacity"));
    }
}
