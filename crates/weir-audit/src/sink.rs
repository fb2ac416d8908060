//! The [`AuditSink`] trait and the configuration every backend shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::chain_id::ChainId;
use crate::checkpoint::{Checkpoint, CheckpointPolicy};
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, NewEvent};
use crate::filter::{Filter, Page};
use crate::record::Link;
use crate::signer::CheckpointSigner;

/// Where audit events go.
///
/// # Contract
///
/// - **Append-only.** There is no method to change or remove an event or a
///   checkpoint.
/// - **Chains.** A sink writes one chain ([`chain`](Self::chain)). Events of
///   a chain get `seq` 1, 2, 3, ... with no gaps and no duplicates, even under
///   concurrent appends and with several sinks writing the same chain;
///   each event's `prev_hash` is its predecessor's `hash`
///   ([`EventHash::GENESIS`](crate::EventHash::GENESIS) for seq 1).
/// - **Durable on return.** When [`append`](Self::append) returns `Ok`, the
///   event is committed to stable storage and will be read back after a
///   crash or power loss. When it returns `Err`, the event was not written
///   (a caller guarding data access must then deny the access).
/// - **Order.** [`events`](Self::events) returns a chain in `seq` order;
///   [`query`](Self::query) returns `(chain, seq)` order.
/// - **Checkpoints.** The sink signs checkpoints per its
///   [`CheckpointPolicy`] and on [`checkpoint_now`](Self::checkpoint_now).
///
/// # Errors
///
/// [`Error::InvalidEvent`] for an event refused by
/// [`NewEvent::validate`]; [`Error::InvalidQuery`] for a bad filter or
/// page; [`Error::Database`] / [`Error::CommitFailed`] when storage fails;
/// [`Error::CorruptRow`] when a stored row was edited into something that no
/// longer decodes; [`Error::Closed`] after the writer stopped.
///
/// # Security
///
/// Every SQL statement is static text with bound parameters. Events are
/// screened for credentials before they are queued, and token ids only
/// enter as HMACs. Read methods return stored rows as they are: run
/// [`verify`](crate::verify) to know whether they were tampered with.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// The chain this sink appends to.
    fn chain(&self) -> &ChainId;

    /// Validates, seals and durably stores one event; returns it as stored.
    async fn append(&self, event: NewEvent) -> Result<AuditEvent>;

    /// Events matching `filter`, in `(chain, seq)` order, one page at a time.
    async fn query(&self, filter: &Filter, page: Page) -> Result<Vec<AuditEvent>>;

    /// Up to `limit` events of `chain` with `seq >= from_seq`, in seq order.
    async fn events(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>>;

    /// What [`verify`](crate::verify) needs of up to `limit` events of
    /// `chain` with `seq >= from_seq`, in seq order.
    ///
    /// The default decodes [`events`](Self::events) and recomputes each
    /// hash; a backend that stores the hashed bytes themselves hashes them
    /// without building events.
    async fn links(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<Link>> {
        let events = self.events(chain, from_seq, limit).await?;
        Ok(Link::of_events(chain, &events))
    }

    /// The stored tip of `chain`: the seq and hash of its last event as the
    /// writer recorded them, if the backend keeps one. Verification treats
    /// it as an unsigned checkpoint read before the walk.
    async fn head(&self, _chain: &ChainId) -> Result<Option<(u64, EventHash)>> {
        Ok(None)
    }

    /// Why the storage's own definition cannot be trusted, if it was
    /// altered (e.g. a column redefined so that queries could show values
    /// other than the hashed ones); `None` when it is as the sink made it.
    async fn structure_damage(&self) -> Result<Option<&'static str>> {
        Ok(None)
    }

    /// Every chain that has events or checkpoints.
    async fn chains(&self) -> Result<Vec<ChainId>>;

    /// Every checkpoint of `chain`, in seq order.
    async fn checkpoints(&self, chain: &ChainId) -> Result<Vec<Checkpoint>>;

    /// Signs a checkpoint of this sink's chain now, if any event is not yet
    /// covered by one; returns it (or `None` if there was nothing new).
    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>>;
}

/// Default number of events one group-commit transaction may hold.
pub const DEFAULT_MAX_BATCH: usize = 4096;
/// Default number of appends that may wait for the writer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;

/// What every backend needs besides its connection.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// The chain this sink writes.
    pub chain: ChainId,
    /// Signs checkpoints.
    pub signer: Arc<CheckpointSigner>,
    /// When to sign checkpoints.
    pub checkpoints: CheckpointPolicy,
    /// Also append every checkpoint to this file (created 0600).
    pub mirror: Option<PathBuf>,
    /// Most events per group-commit transaction.
    pub max_batch: usize,
    /// Most appends waiting for the writer (back-pressure beyond it).
    pub queue_capacity: usize,
    /// How long a batch may wait for the appenders of the last one (zero:
    /// never); see [`with_gather_window`](Self::with_gather_window).
    pub gather_window: Duration,
}

/// The gather window for appends that come back over a network, as the
/// HTTP API's do (one event per request): about one network round trip,
/// and the resolution of tokio's timers.
pub const NETWORK_GATHER_WINDOW: Duration = Duration::from_millis(1);

/// The longest gather window a sink accepts.
pub const MAX_GATHER_WINDOW: Duration = Duration::from_millis(10);

impl SinkConfig {
    /// Defaults: [`CheckpointPolicy::default`], no mirror,
    /// [`DEFAULT_MAX_BATCH`], [`DEFAULT_QUEUE_CAPACITY`].
    #[must_use]
    pub fn new(chain: ChainId, signer: Arc<CheckpointSigner>) -> Self {
        Self {
            chain,
            signer,
            checkpoints: CheckpointPolicy::default(),
            mirror: None,
            max_batch: DEFAULT_MAX_BATCH,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            gather_window: Duration::ZERO,
        }
    }

    /// Lets a batch wait up to `window` for the appenders of the last batch
    /// to append again, when that batch held more than one event.
    ///
    /// Worth it when appends come back over a network
    /// ([`NETWORK_GATHER_WINDOW`]): each commit's fsync then carries all of
    /// them instead of the first few (measured: 1.7x the throughput of 64
    /// concurrent appenders, 1.2x the API's requests per second). Not worth
    /// it for bursty in-process appenders, which it delays (measured: about
    /// 10% fewer distributed stages per second), hence off by default. A lone
    /// appender never waits.
    ///
    /// A [`SqliteSink`](crate::SqliteSink) uses it differently: its fsync
    /// runs on a stage of its own, and with a window the next batch gathers
    /// until that fsync is done (at most `window`; at once when full)
    /// instead of committing beside it. One commit per fsync costs less CPU
    /// when the appenders' own work keeps the cores busy (measured in the
    /// HTTP API at 64 connections: events per commit from about 6 to 13,
    /// 6 to 25% more requests per second), but when the cores are idle the
    /// commit no longer overlaps the fsync (measured: 15 to 30% fewer
    /// appends per second from 64 in-process appenders).
    #[must_use]
    pub fn with_gather_window(mut self, window: Duration) -> Self {
        self.gather_window = window;
        self
    }

    /// Sets the checkpoint policy.
    #[must_use]
    pub fn with_checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoints = policy;
        self
    }

    /// Mirrors checkpoints to `path`.
    #[must_use]
    pub fn with_mirror(mut self, path: impl Into<PathBuf>) -> Self {
        self.mirror = Some(path.into());
        self
    }

    /// Sets the largest group-commit batch.
    #[must_use]
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_batch == 0 || self.max_batch > 65_536 {
            return Err(Error::InvalidConfig {
                reason: "max_batch must be 1 to 65536",
            });
        }
        if self.gather_window > MAX_GATHER_WINDOW {
            return Err(Error::InvalidConfig {
                reason: "gather_window must be at most 10 ms",
            });
        }
        if self.queue_capacity == 0 {
            return Err(Error::InvalidConfig {
                reason: "queue_capacity must be at least 1",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bounds_are_checked() {
        let signer = Arc::new(CheckpointSigner::generate().unwrap());
        let c = SinkConfig::new(ChainId::parse("cli").unwrap(), signer);
        assert!(c.validate().is_ok());
        assert!(c.clone().with_max_batch(0).validate().is_err());
        assert!(c.clone().with_max_batch(1 << 20).validate().is_err());
        assert!(
            c.clone()
                .with_gather_window(NETWORK_GATHER_WINDOW)
                .validate()
                .is_ok()
        );
        assert!(
            c.with_gather_window(MAX_GATHER_WINDOW + Duration::from_millis(1))
                .validate()
                .is_err()
        );
    }
}
