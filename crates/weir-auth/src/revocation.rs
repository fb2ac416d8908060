//! Revocation of tokens by `jti`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use crate::error::Result;

/// A set of revoked token ids.
///
/// # Contract
///
/// - After `revoke(jti, until)` returns `Ok`, `is_revoked(jti)` returns `true`
///   at least until the Unix time `until`. Callers pass an `until` no earlier
///   than the token's `exp` plus the verifier's leeway (see
///   [`StageVerifier::revoke`](crate::StageVerifier::revoke)), after which the
///   token is refused as expired anyway and the entry may be forgotten.
/// - A backend that cannot answer `is_revoked` returns `true`: it fails closed.
///
/// # Errors
///
/// `revoke` returns [`Error::Revocation`](crate::Error::Revocation) when the
/// revocation could not be recorded; the caller must not assume it took
/// effect.
pub trait RevocationList: Send + Sync + Debug {
    /// Records that the token with this `jti` is revoked until `until`.
    fn revoke(&self, jti: &str, until: i64) -> Result<()>;

    /// Whether the token with this `jti` is revoked.
    fn is_revoked(&self, jti: &str) -> bool;
}

/// An in-process [`RevocationList`] (the embedded default).
#[derive(Debug, Default)]
pub struct InMemoryRevocationList {
    entries: Mutex<HashMap<String, i64>>,
}

impl InMemoryRevocationList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets revocations whose `until` is before `now`; returns how many.
    pub fn purge_expired(&self, now: i64) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|_, until| *until >= now);
        before - entries.len()
    }

    /// Number of revocations held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no revocation is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RevocationList for InMemoryRevocationList {
    fn revoke(&self, jti: &str, until: i64) -> Result<()> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = entries.entry(jti.to_owned()).or_insert(until);
        *slot = (*slot).max(until);
        Ok(())
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(jti)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_then_query_then_purge() {
        let list = InMemoryRevocationList::new();
        assert!(!list.is_revoked("a"));
        list.revoke("a", 100).unwrap();
        list.revoke("b", 200).unwrap();
        assert!(list.is_revoked("a"));
        assert!(!list.is_revoked("c"));
        assert_eq!(list.purge_expired(150), 1);
        assert!(!list.is_revoked("a"));
        assert!(list.is_revoked("b"));
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn revoking_twice_keeps_the_later_until() {
        let list = InMemoryRevocationList::new();
        list.revoke("a", 300).unwrap();
        list.revoke("a", 100).unwrap();
        assert_eq!(list.purge_expired(200), 0);
        assert!(list.is_revoked("a"));
    }
}
