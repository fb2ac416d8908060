//! Replay protection: each envelope nonce is claimed once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::envelope::error::NonceStoreError;
use crate::envelope::header::MAX_NONCE_LEN;

/// Unexpired nonces an [`InMemoryNonces`] holds by default.
pub const DEFAULT_NONCE_CAPACITY: usize = 1_000_000;

/// Remembers which envelope nonces have been used, until they expire.
///
/// # Contract
///
/// - `first_use(nonce, expires_at)` returns `Ok(true)` exactly once per
///   nonce: for the first call that records it. Every later call with the
///   same nonce returns `Ok(false)` at least until `expires_at` (Unix
///   seconds) has passed; after that the store may forget the nonce.
/// - Check and record are one atomic step: of two concurrent calls with the
///   same new nonce, exactly one gets `Ok(true)`, also across processes
///   sharing a backend.
/// - When unsure (backend down, store full), return an error, never
///   `Ok(true)`: the caller refuses the envelope.
///
/// # Errors
///
/// [`NonceStoreError::Full`] if recording would require forgetting an
/// unexpired nonce; [`NonceStoreError::InvalidNonce`] for a nonce the store
/// cannot hold; [`NonceStoreError::Unavailable`] if the backend failed.
///
/// # Security
///
/// The [`Opener`](crate::envelope::Opener) calls this only after the
/// envelope's MAC and every other check passed, with
/// `expires_at = exp + leeway`, so an attacker cannot fill the store with
/// forged nonces, and a nonce is remembered as long as its envelope could
/// be accepted.
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Records `nonce` if it is new; `true` the first time it is seen.
    ///
    /// # Errors
    ///
    /// See the trait docs.
    async fn first_use(&self, nonce: &str, expires_at: i64) -> Result<bool, NonceStoreError>;
}

/// A bounded, in-process [`NonceStore`] for a single worker process or
/// tests.
///
/// # Guarantees
///
/// - Holds at most `capacity` nonces. Expired nonces (`expires_at` before
///   the clock's now) are purged on every call, oldest first, in amortized
///   `O(log n)`.
/// - When full of unexpired nonces it fails closed with
///   [`NonceStoreError::Full`] rather than forgetting a live nonce.
/// - Refuses nonces longer than 64 bytes, bounding memory to about
///   `capacity * 200` bytes.
///
/// # Non-goals
///
/// Sharing between processes (that is the Redis implementation's job) or
/// surviving a restart: after a restart an envelope seen before could be
/// opened once more.
pub struct InMemoryNonces {
    capacity: usize,
    clock: Arc<dyn Clock>,
    state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    expiry: HashMap<Arc<str>, i64>,
    /// Every key of `expiry` once, soonest expiry on top.
    queue: BinaryHeap<Reverse<(i64, Arc<str>)>>,
}

impl InMemoryNonces {
    /// An empty store holding at most `capacity` unexpired nonces, judging
    /// expiry by `clock`.
    #[must_use]
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            capacity,
            clock,
            state: Mutex::new(Seen::default()),
        }
    }

    /// Nonces held now (expired ones may still be counted until the next
    /// call purges them).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().expiry.len()
    }

    /// Whether no nonce is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic cannot leave `Seen` in a state that forgets a live nonce:
        // at worst an entry is in one collection and not the other, which
        // only delays its purge.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claim(&self, nonce: &str, expires_at: i64) -> Result<bool, NonceStoreError> {
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
            return Err(NonceStoreError::InvalidNonce {
                reason: "nonce must be 1 to 64 bytes",
            });
        }
        let now = self.clock.now();
        let mut seen = self.lock();
        seen.purge(now);
        if seen.expiry.contains_key(nonce) {
            return Ok(false);
        }
        if seen.expiry.len() >= self.capacity {
            return Err(NonceStoreError::Full {
                capacity: self.capacity,
            });
        }
        let key: Arc<str> = Arc::from(nonce);
        seen.expiry.insert(Arc::clone(&key), expires_at);
        seen.queue.push(Reverse((expires_at, key)));
        Ok(true)
    }
}

impl Seen {
    fn purge(&mut self, now: i64) {
        while let Some(Reverse((expires_at, _))) = self.queue.peek() {
            if *expires_at >= now {
                break;
            }
            if let Some(Reverse((_, key))) = self.queue.pop() {
                self.expiry.remove(&key);
            }
        }
    }
}

#[async_trait]
impl NonceStore for InMemoryNonces {
    async fn first_use(&self, nonce: &str, expires_at: i64) -> Result<bool, NonceStoreError> {
        self.claim(nonce, expires_at)
    }
}

impl fmt::Debug for InMemoryNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryNonces")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    #[test]
    fn first_use_is_true_once_until_expiry() {
        let clock = Arc::new(FixedClock::new(100));
        let store = InMemoryNonces::new(10, clock.clone());
        assert!(store.claim("a", 110).unwrap());
        assert!(!store.claim("a", 110).unwrap());
        clock.set(110);
        assert!(!store.claim("a", 999).unwrap(), "kept through expires_at");
        clock.set(111);
        assert!(store.claim("a", 200).unwrap(), "forgotten after expires_at");
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn full_of_live_nonces_fails_closed_and_expired_ones_make_room() {
        let clock = Arc::new(FixedClock::new(0));
        let store = InMemoryNonces::new(3, clock.clone());
        for (n, exp) in [("a", 10), ("b", 20), ("c", 30)] {
            assert!(store.claim(n, exp).unwrap());
        }
        assert!(matches!(
            store.claim("d", 40),
            Err(NonceStoreError::Full { capacity: 3 })
        ));
        assert!(!store.claim("a", 10).unwrap(), "a full store still knows a");
        clock.set(11);
        assert!(store.claim("d", 40).unwrap(), "a expired");
        assert_eq!(store.len(), 3);
        clock.set(31);
        assert!(store.claim("e", 50).unwrap());
        assert_eq!(store.len(), 2, "b and c purged");
    }

    #[test]
    fn refuses_unbounded_nonces() {
        let store = InMemoryNonces::new(3, Arc::new(FixedClock::new(0)));
        assert!(store.claim("", 1).is_err());
        assert!(store.claim(&"x".repeat(65), 1).is_err());
        assert!(store.is_empty());
    }

    #[test]
    fn concurrent_claims_of_one_nonce_succeed_once() {
        let store = Arc::new(InMemoryNonces::new(100, Arc::new(FixedClock::new(0))));
        let wins: usize = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || store.claim("same", 10).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(wins, 1);
    }
}
