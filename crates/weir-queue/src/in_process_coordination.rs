//! [`InProcessCoordination`]: [`Leases`], [`OnceSet`] and [`Fences`] in
//! memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::coordination::{
    Fences, LeaseOutcome, Leases, OnceSet, check_holder, check_key, check_ttl,
};
use crate::error::Result;

/// [`Leases`], [`OnceSet`] and [`Fences`] for one process, with the same
/// semantics as [`RedisCoordination`](crate::RedisCoordination).
///
/// Clones share state. Expiry uses [`tokio::time::Instant`] (so paused
/// test clocks apply); expired entries are dropped lazily, keeping memory
/// proportional to the live keys.
///
/// ```
/// use std::time::Duration;
/// use weir_queue::{Fences, InProcessCoordination, LeaseOutcome, Leases};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> weir_queue::Result<()> {
/// let c = InProcessCoordination::default();
/// let ttl = Duration::from_secs(30);
/// assert_eq!(c.acquire("out/run-7", "worker-a", ttl).await?, LeaseOutcome::Acquired);
/// assert!(matches!(c.acquire("out/run-7", "worker-b", ttl).await?,
///     LeaseOutcome::HeldBy { holder, .. } if holder == "worker-a"));
/// assert_eq!(c.advance("out/run-7", 5, ttl).await?, 5);
/// assert_eq!(c.advance("out/run-7", 3, ttl).await?, 5);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct InProcessCoordination {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    leases: Mutex<Expiring<String>>,
    once: Mutex<Expiring<()>>,
    fences: Mutex<Expiring<u64>>,
}

/// Values with deadlines; expired ones are purged when the map has doubled
/// since the last purge.
#[derive(Debug)]
struct Expiring<V> {
    map: HashMap<String, (V, Instant)>,
    purge_at: usize,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            purge_at: 64,
        }
    }
}

impl<V> Expiring<V> {
    fn get(&self, key: &str, now: Instant) -> Option<(&V, Instant)> {
        self.map
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, until)| (v, *until))
    }

    fn insert(&mut self, key: &str, value: V, until: Instant, now: Instant) {
        self.map.insert(key.to_owned(), (value, until));
        if self.map.len() >= self.purge_at {
            self.map.retain(|_, (_, until)| *until > now);
            self.purge_at = (self.map.len() * 2).max(64);
        }
    }

    fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code path panics while holding these locks; recover if one did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn deadline(now: Instant, ttl: Duration) -> Instant {
    // Far enough for any practical ttl, without overflowing.
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Leases for InProcessCoordination {
    async fn acquire(&self, key: &str, holder: &str, ttl: Duration) -> Result<LeaseOutcome> {
        check_key(key)?;
        check_holder(holder)?;
        check_ttl(ttl)?;
        let now = Instant::now();
        let mut leases = lock(&self.inner.leases);
        if let Some((current, until)) = leases.get(key, now)
            && current != holder
        {
            return Ok(LeaseOutcome::HeldBy {
                holder: current.clone(),
                remaining: until - now,
            });
        }
        leases.insert(key, holder.to_owned(), deadline(now, ttl), now);
        Ok(LeaseOutcome::Acquired)
    }

    async fn renew(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool> {
        check_key(key)?;
        check_holder(holder)?;
        check_ttl(ttl)?;
        let now = Instant::now();
        let mut leases = lock(&self.inner.leases);
        let held = matches!(leases.get(key, now), Some((h, _)) if h == holder);
        if held {
            leases.insert(key, holder.to_owned(), deadline(now, ttl), now);
        }
        Ok(held)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<bool> {
        check_key(key)?;
        check_holder(holder)?;
        let mut leases = lock(&self.inner.leases);
        let held = matches!(leases.get(key, Instant::now()), Some((h, _)) if h == holder);
        if held {
            leases.remove(key);
        }
        Ok(held)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl OnceSet for InProcessCoordination {
    async fn first(&self, key: &str, ttl: Duration) -> Result<bool> {
        check_key(key)?;
        check_ttl(ttl)?;
        let now = Instant::now();
        let mut once = lock(&self.inner.once);
        if once.get(key, now).is_some() {
            return Ok(false);
        }
        once.insert(key, (), deadline(now, ttl), now);
        Ok(true)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Fences for InProcessCoordination {
    async fn advance(&self, key: &str, value: u64, ttl: Duration) -> Result<u64> {
        check_key(key)?;
        check_ttl(ttl)?;
        let now = Instant::now();
        let mut fences = lock(&self.inner.fences);
        let (value, until) = match fences.get(key, now) {
            Some((&current, until)) => (current.max(value), until.max(deadline(now, ttl))),
            None => (value, deadline(now, ttl)),
        };
        fences.insert(key, value, until, now);
        Ok(value)
    }

    async fn current(&self, key: &str) -> Result<Option<u64>> {
        check_key(key)?;
        Ok(lock(&self.inner.fences)
            .get(key, Instant::now())
            .map(|(&v, _)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_purged() {
        let c = InProcessCoordination::default();
        for i in 0..1000 {
            c.first(&format!("n{i}"), Duration::from_millis(10))
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_millis(20)).await;
        for i in 0..100 {
            c.first(&format!("m{i}"), Duration::from_secs(10))
                .await
                .unwrap();
        }
        assert!(lock(&c.inner.once).map.len() <= 200);
    }

    #[tokio::test(start_paused = true)]
    async fn fence_keeps_the_longer_ttl() {
        let c = InProcessCoordination::default();
        c.advance("f", 1, Duration::from_secs(60)).await.unwrap();
        c.advance("f", 2, Duration::from_millis(1)).await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(c.current("f").await.unwrap(), Some(2));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(c.current("f").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn huge_ttls_do_not_overflow() {
        let c = InProcessCoordination::default();
        assert!(c.first("k", Duration::MAX).await.unwrap());
        assert!(!c.first("k", Duration::MAX).await.unwrap());
    }
}
