//! Failed authentications per client over a sliding minute, for the
//! [`Caller`](crate::auth::Caller) extractor's rate limit.
//!
//! # Invariants
//! - A client's count is forgotten [`WINDOW`] after its first failure in
//!   the window (moka's time to live counts from the entry's creation).
//! - [`FailureCounter::of`] never reports fewer failures than the cache
//!   holds: it skips the cache lookup only when no failure at all, from any
//!   client, was counted within the last [`WINDOW`], and then every entry
//!   has expired (each was created at or before the last failure).
//!
//! The skip matters because `of` runs on every authenticated request and
//! almost every request comes when nobody has failed for a minute.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// [`WINDOW`] in milliseconds, the unit of the counter's clock.
const WINDOW_MS: u64 = 60_000;

/// How long a client's failures count against it.
pub(crate) const WINDOW: Duration = Duration::from_millis(WINDOW_MS);

/// Clients tracked at once; beyond this moka evicts the least used.
const CAPACITY: u64 = 100_000;

/// Failed authentications per client in the last [`WINDOW`].
pub(crate) struct FailureCounter {
    per_client: moka::sync::Cache<IpAddr, Arc<AtomicU32>>,
    /// The counter's own start, the origin of `last_failure`.
    started: Instant,
    /// The [`stamp`] of the latest failure counted; zero before any.
    last_failure: AtomicU64,
}

impl FailureCounter {
    pub(crate) fn new() -> Self {
        Self {
            per_client: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(WINDOW)
                .build(),
            started: Instant::now(),
            last_failure: AtomicU64::new(0),
        }
    }

    /// Failures of `client` in the window.
    pub(crate) fn of(&self, client: IpAddr) -> u32 {
        self.of_at(client, self.elapsed_ms())
    }

    /// [`Self::of`] at `now_ms` from the counter's start.
    fn of_at(&self, client: IpAddr, now_ms: u64) -> u32 {
        if !self.any_within_window(now_ms) {
            return 0;
        }
        self.per_client
            .get(&client)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Adds one failure for `client`.
    pub(crate) fn count(&self, client: IpAddr) {
        // Published before the entry is created or bumped, so a reader that
        // sees the entry also sees a recent failure time.
        self.last_failure
            .fetch_max(stamp(self.elapsed_ms()), Ordering::SeqCst);
        self.per_client
            .get_with(client, || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether any failure was counted less than [`WINDOW`] before
    /// `now_ms`.
    fn any_within_window(&self, now_ms: u64) -> bool {
        let last = self.last_failure.load(Ordering::SeqCst);
        last != 0 && stamp(now_ms).saturating_sub(last) < WINDOW_MS
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A time `ms` from the counter's start as stored: one more, so that zero
/// can mean "no failure yet".
fn stamp(ms: u64) -> u64 {
    ms.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn counts_per_client() {
        let failures = FailureCounter::new();
        assert_eq!(failures.of(ip(1)), 0);
        failures.count(ip(1));
        failures.count(ip(1));
        failures.count(ip(2));
        assert_eq!(failures.of(ip(1)), 2);
        assert_eq!(failures.of(ip(2)), 1);
        assert_eq!(failures.of(ip(3)), 0);
    }

    #[test]
    fn the_lookup_is_skipped_only_when_the_last_failure_left_the_window() {
        let failures = FailureCounter::new();
        // No failure yet: nothing to look up, even at the very start.
        assert!(!failures.any_within_window(0));
        failures.count(ip(1));
        let at = failures.last_failure.load(Ordering::SeqCst) - 1;
        assert_eq!(failures.of_at(ip(1), at), 1);
        assert_eq!(failures.of_at(ip(1), at + WINDOW_MS - 1), 1);
        // A window after the last failure every entry has expired, and the
        // counter no longer looks.
        assert_eq!(failures.of_at(ip(1), at + WINDOW_MS), 0);
        // A new failure, from anyone, makes it look again.
        failures.count(ip(2));
        assert_eq!(failures.of(ip(1)), 1);
    }

    #[test]
    fn a_later_failure_is_never_overwritten_by_an_earlier_time() {
        let failures = FailureCounter::new();
        failures.last_failure.store(u64::MAX - 2, Ordering::SeqCst);
        failures.count(ip(1));
        assert_eq!(failures.last_failure.load(Ordering::SeqCst), u64::MAX - 2);
    }
}
