//! Coordination primitives for workers sharing a store: exclusive
//! [`Leases`], a replay cache ([`OnceSet`]) and monotonic [`Fences`].
//!
//! Every key lives until its ttl runs out; nothing needs cleaning up.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::check_name;
use crate::error::{QueueError, Result};

/// The longest lease, once-set or fence key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The longest lease holder name, in bytes.
pub const MAX_HOLDER_BYTES: usize = 256;

/// What [`Leases::acquire`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease for the requested ttl.
    Acquired,
    /// Someone else holds it.
    HeldBy {
        /// The current holder.
        holder: String,
        /// How long until it expires unless renewed.
        remaining: Duration,
    },
}

/// Exclusive, expiring leases: at most one holder per key at any time
/// (e.g. the single writer of a stage's output).
///
/// # Contract
///
/// - While a lease is held and unexpired, `acquire` by anyone else returns
///   [`LeaseOutcome::HeldBy`] naming the holder.
/// - `acquire` by the current holder renews it to the new ttl.
/// - Only the holder can [`renew`](Self::renew) or
///   [`release`](Self::release); each is atomic (compare-and-set), so a
///   holder whose lease expired and was taken over cannot touch the new
///   holder's lease.
/// - After the ttl the lease is free without any call.
///
/// Expiry is measured by the store's clock (Redis) or tokio's (in
/// process). A holder must renew well before the ttl and stop writing once
/// a renewal fails; pair leases with [`Fences`] where a paused holder could
/// write after expiry.
///
/// # Errors
///
/// [`QueueError::InvalidArgument`] for an empty or oversized key or holder
/// ([`MAX_KEY_BYTES`], [`MAX_HOLDER_BYTES`]) or a ttl under 1 ms; for the
/// Redis backend, connection errors as on [`WorkQueue`](crate::WorkQueue).
///
/// # Security
///
/// Holder names are labels, not secrets: `HeldBy` tells them to whoever
/// asks.
#[async_trait]
pub trait Leases: Send + Sync + Debug {
    /// Takes the lease on `key` for `holder` for `ttl`, or reports who
    /// holds it.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn acquire(&self, key: &str, holder: &str, ttl: Duration) -> Result<LeaseOutcome>;

    /// Extends the lease to `ttl` from now if `holder` holds it; `false`
    /// (and no change) otherwise.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn renew(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool>;

    /// Frees the lease if `holder` holds it; `false` (and no change)
    /// otherwise.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn release(&self, key: &str, holder: &str) -> Result<bool>;
}

/// A replay cache: remembers keys (e.g. nonces) for a while.
///
/// # Contract
///
/// [`first`](Self::first) returns `true` for exactly one caller per key
/// within `ttl` of that call, across every handle on the same store;
/// `false` for every other call until the key expires.
///
/// # Errors
///
/// As for [`Leases`].
#[async_trait]
pub trait OnceSet: Send + Sync + Debug {
    /// Records `key` for `ttl`; `true` if it was not recorded already.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn first(&self, key: &str, ttl: Duration) -> Result<bool>;
}

/// Monotonic fencing tokens, one per key: the value never goes down while
/// the key lives, so a resource can refuse a writer carrying an older
/// token than one it has seen.
///
/// # Contract
///
/// - [`advance`](Self::advance) atomically sets the value to
///   `max(current, value)` and returns the value now in force; a
///   concurrent smaller advance can never undo a larger one. Full `u64`
///   range, exact.
/// - The key lives at least `ttl` after each advance (the longest ttl
///   given wins), then it is forgotten and [`current`](Self::current)
///   returns `None`. Pick a ttl longer than any holder can be paused.
///
/// # Errors
///
/// As for [`Leases`]; the Redis backend returns
/// [`QueueError::Protocol`] if the key holds something else than a
/// decimal `u64`.
#[async_trait]
pub trait Fences: Send + Sync + Debug {
    /// Raises the fence on `key` to `value` unless it is higher already;
    /// returns the value in force.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn advance(&self, key: &str, value: u64, ttl: Duration) -> Result<u64>;

    /// The value in force, `None` if the key was never advanced or has
    /// expired.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn current(&self, key: &str) -> Result<Option<u64>>;
}

pub(crate) fn check_key(key: &str) -> Result<()> {
    check_name("key", key, MAX_KEY_BYTES)
}

pub(crate) fn check_holder(holder: &str) -> Result<()> {
    check_name("holder", holder, MAX_HOLDER_BYTES)
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < Duration::from_millis(1) {
        return Err(QueueError::invalid("ttl", "must be at least 1 ms"));
    }
    Ok(())
}
