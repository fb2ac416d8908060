//! [`FailingSink`]: fault injection for tests of code that must deny an
//! access when its audit event cannot be written.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::chain_id::ChainId;
use crate::checkpoint::Checkpoint;
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, NewEvent};
use crate::filter::{Filter, Page};
use crate::record::Link;
use crate::sink::AuditSink;

/// Wraps a sink and fails chosen appends with [`Error::Injected`] (without
/// passing them on); everything else is delegated.
#[derive(Debug)]
pub struct FailingSink<S> {
    inner: S,
    fail_at: u64,
    sticky: bool,
    appends: AtomicU64,
}

impl<S> FailingSink<S> {
    /// Fails only the `k`-th append (1-based).
    #[must_use]
    pub fn new(inner: S, k: u64) -> Self {
        Self {
            inner,
            fail_at: k,
            sticky: false,
            appends: AtomicU64::new(0),
        }
    }

    /// Fails the `k`-th append and every one after it (a sink that died).
    #[must_use]
    pub fn from_kth(inner: S, k: u64) -> Self {
        Self {
            sticky: true,
            ..Self::new(inner, k)
        }
    }

    /// The wrapped sink.
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Appends attempted so far (failed ones included).
    #[must_use]
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: AuditSink> AuditSink for FailingSink<S> {
    fn chain(&self) -> &ChainId {
        self.inner.chain()
    }

    async fn append(&self, event: NewEvent) -> Result<AuditEvent> {
        let n = self
            .appends
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1);
        if n == self.fail_at || (self.sticky && n > self.fail_at) {
            return Err(Error::Injected { append: n });
        }
        self.inner.append(event).await
    }

    async fn query(&self, filter: &Filter, page: Page) -> Result<Vec<AuditEvent>> {
        self.inner.query(filter, page).await
    }

    async fn events(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>> {
        self.inner.events(chain, from_seq, limit).await
    }

    async fn links(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<Link>> {
        self.inner.links(chain, from_seq, limit).await
    }

    async fn head(&self, chain: &ChainId) -> Result<Option<(u64, EventHash)>> {
        self.inner.head(chain).await
    }

    async fn structure_damage(&self) -> Result<Option<&'static str>> {
        self.inner.structure_damage().await
    }

    async fn chains(&self) -> Result<Vec<ChainId>> {
        self.inner.chains().await
    }

    async fn checkpoints(&self, chain: &ChainId) -> Result<Vec<Checkpoint>> {
        self.inner.checkpoints(chain).await
    }

    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint_now().await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::digest::EventHash;
    use crate::event::{Action, Decision, Origin};

    /// Accepts every append; stores nothing.
    struct Accepting(ChainId);

    #[async_trait]
    impl AuditSink for Accepting {
        fn chain(&self) -> &ChainId {
            &self.0
        }
        async fn append(&self, event: NewEvent) -> Result<AuditEvent> {
            AuditEvent::seal(
                crate::event::EventFormat::V1,
                self.0.clone(),
                1,
                Utc::now(),
                EventHash::GENESIS,
                event,
            )
            .map(|(e, _)| e)
        }
        async fn query(&self, _: &Filter, _: Page) -> Result<Vec<AuditEvent>> {
            Ok(Vec::new())
        }
        async fn events(&self, _: &ChainId, _: u64, _: u32) -> Result<Vec<AuditEvent>> {
            Ok(Vec::new())
        }
        async fn chains(&self) -> Result<Vec<ChainId>> {
            Ok(vec![self.0.clone()])
        }
        async fn checkpoints(&self, _: &ChainId) -> Result<Vec<Checkpoint>> {
            Ok(Vec::new())
        }
        async fn checkpoint_now(&self) -> Result<Option<Checkpoint>> {
            Ok(None)
        }
    }

    fn ev() -> NewEvent {
        NewEvent::new("a", Action::Read, Decision::Allow, Origin::Cli)
    }

    #[tokio::test]
    async fn fails_exactly_the_kth_append() {
        let sink = FailingSink::new(Accepting(ChainId::parse("c").unwrap()), 3);
        let results: Vec<bool> = futures_seq(&sink, 5).await;
        assert_eq!(results, vec![true, true, false, true, true]);
        assert_eq!(sink.appends(), 5);
    }

    #[tokio::test]
    async fn from_kth_fails_every_later_append() {
        let sink = FailingSink::from_kth(Accepting(ChainId::parse("c").unwrap()), 2);
        assert_eq!(futures_seq(&sink, 4).await, vec![true, false, false, false]);
        assert_eq!(sink.chains().await.unwrap().len(), 1, "reads are delegated");
    }

    async fn futures_seq<S: AuditSink>(sink: &S, n: usize) -> Vec<bool> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(sink.append(ev()).await.is_ok());
        }
        out
    }
}
