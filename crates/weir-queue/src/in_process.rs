//! [`InProcessQueue`]: the [`WorkQueue`] contract in memory, for a single
//! process and for tests.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{MAX_BATCH, MAX_WAIT, QueueConfig, check_consumer};
use crate::error::{QueueError, Result};
use crate::task::{DeadLetter, Delivery, QueueDepth, TaskId};
use crate::work_queue::WorkQueue;

/// A [`WorkQueue`] in memory, with the same semantics as
/// [`RedisQueue`](crate::RedisQueue).
///
/// Idle time is measured with [`tokio::time::Instant`], so tests under
/// `#[tokio::test(start_paused = true)]` run visibility timeouts without
/// waiting. A blocked `receive` wakes as soon as a task is enqueued.
/// Nothing survives the process; share the queue between tasks with an
/// `Arc`.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use weir_queue::{InProcessQueue, QueueConfig, WorkQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> weir_queue::Result<()> {
/// let queue = InProcessQueue::new(QueueConfig::default())?;
/// let id = queue.enqueue(Bytes::from_static(b"stage 3 of run 01J0")).await?;
/// let got = queue.receive("worker-1", 10, Duration::from_secs(1)).await?;
/// assert_eq!((got[0].id, got[0].deliveries), (id, 1));
/// queue.ack(&id).await?;
/// assert_eq!(queue.len().await?.pending, 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InProcessQueue {
    config: QueueConfig,
    state: Mutex<State>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct State {
    last_id: u64,
    /// Never delivered, by id.
    ready: BTreeMap<u64, Bytes>,
    /// Delivered and not acked, by id.
    held: BTreeMap<u64, Held>,
    /// `(visible again at, id)` for every held task.
    expiry: BTreeSet<(Instant, u64)>,
    dead: VecDeque<DeadLetter>,
}

#[derive(Debug)]
struct Held {
    payload: Bytes,
    consumer: String,
    deliveries: u32,
    visible_at: Instant,
}

impl InProcessQueue {
    /// An empty queue.
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidArgument`] if `config` is out of range
    /// ([`QueueConfig::validate`]).
    pub fn new(config: QueueConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
        })
    }

    /// The configuration this queue was built with.
    #[must_use]
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; recover if one did.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, state: &mut State, payload: Bytes) -> TaskId {
        state.last_id += 1;
        state.ready.insert(state.last_id, payload);
        TaskId::new(state.last_id, 0)
    }

    /// Reclaims idle tasks, then takes new ones; never waits.
    fn take(&self, state: &mut State, consumer: &str, max: usize) -> Vec<Delivery> {
        let now = Instant::now();
        let visible_at = now + self.config.visibility_timeout;
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(at, id)) = state.expiry.first() else {
                break;
            };
            if at > now {
                break;
            }
            state.expiry.remove(&(at, id));
            let Some(held) = state.held.get_mut(&id) else {
                continue;
            };
            if held.deliveries >= self.config.max_deliveries {
                if let Some(held) = state.held.remove(&id) {
                    state.dead.push_back(DeadLetter {
                        id: TaskId::new(id, 0),
                        payload: held.payload,
                        deliveries: held.deliveries,
                    });
                }
                continue;
            }
            held.deliveries += 1;
            held.visible_at = visible_at;
            consumer.clone_into(&mut held.consumer);
            state.expiry.insert((visible_at, id));
            out.push(Delivery {
                id: TaskId::new(id, 0),
                payload: held.payload.clone(),
                deliveries: held.deliveries,
            });
        }
        while out.len() < max {
            let Some((id, payload)) = state.ready.pop_first() else {
                break;
            };
            state.held.insert(
                id,
                Held {
                    payload: payload.clone(),
                    consumer: consumer.to_owned(),
                    deliveries: 1,
                    visible_at,
                },
            );
            state.expiry.insert((visible_at, id));
            out.push(Delivery {
                id: TaskId::new(id, 0),
                payload,
                deliveries: 1,
            });
        }
        out
    }

    fn remove(state: &mut State, id: &TaskId) {
        // Ids this queue issued have seq 0; anything else is unknown here.
        let Some(n) = Self::local(id) else { return };
        state.ready.remove(&n);
        if let Some(held) = state.held.remove(&n) {
            state.expiry.remove(&(held.visible_at, n));
        }
    }

    fn local(id: &TaskId) -> Option<u64> {
        match id.parts() {
            (n, 0) => Some(n),
            _ => None,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl WorkQueue for InProcessQueue {
    async fn enqueue(&self, payload: Bytes) -> Result<TaskId> {
        self.config.check_payload(payload.len())?;
        let id = self.push(&mut self.state(), payload);
        self.arrived.notify_waiters();
        Ok(id)
    }

    async fn enqueue_many(&self, payloads: Vec<Bytes>) -> Result<Vec<TaskId>> {
        for p in &payloads {
            self.config.check_payload(p.len())?;
        }
        let ids = {
            let mut state = self.state();
            payloads
                .into_iter()
                .map(|p| self.push(&mut state, p))
                .collect()
        };
        self.arrived.notify_waiters();
        Ok(ids)
    }

    async fn receive(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        check_consumer(consumer)?;
        let max = max.min(MAX_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        loop {
            // Registered before looking, so an enqueue right after the
            // look still wakes this receive.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let got = self.take(&mut self.state(), consumer, max);
            if !got.is_empty() {
                return Ok(got);
            }
            if Instant::now() >= deadline
                || tokio::time::timeout_at(deadline, arrived).await.is_err()
            {
                return Ok(got);
            }
        }
    }

    async fn ack(&self, id: &TaskId) -> Result<()> {
        Self::remove(&mut self.state(), id);
        Ok(())
    }

    async fn ack_many(&self, ids: &[TaskId]) -> Result<()> {
        let mut state = self.state();
        for id in ids {
            Self::remove(&mut state, id);
        }
        Ok(())
    }

    async fn extend(&self, consumer: &str, id: &TaskId) -> Result<()> {
        check_consumer(consumer)?;
        let mut state = self.state();
        let state = &mut *state;
        let held = Self::local(id).and_then(|n| Some((n, state.held.get_mut(&n)?)));
        match held {
            Some((n, held)) if held.consumer == consumer => {
                state.expiry.remove(&(held.visible_at, n));
                held.visible_at = Instant::now() + self.config.visibility_timeout;
                state.expiry.insert((held.visible_at, n));
                Ok(())
            }
            _ => Err(QueueError::NotOwner { id: *id }),
        }
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>> {
        Ok(self.state().dead.iter().take(max).cloned().collect())
    }

    async fn len(&self) -> Result<QueueDepth> {
        let state = self.state();
        let n = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
        Ok(QueueDepth {
            ready: n(state.ready.len()),
            pending: n(state.held.len()),
            dead: n(state.dead.len()),
        })
    }

    async fn delete(&self) -> Result<()> {
        let mut state = self.state();
        let last_id = state.last_id;
        *state = State {
            last_id,
            ..State::default()
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(vt_ms: u64, max_deliveries: u32) -> InProcessQueue {
        InProcessQueue::new(QueueConfig {
            visibility_timeout: Duration::from_millis(vt_ms),
            max_deliveries,
            ..QueueConfig::default()
        })
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn reclaim_happens_exactly_at_the_visibility_timeout() {
        let q = queue(1000, 5);
        let id = q.enqueue(Bytes::from_static(b"x")).await.unwrap();
        q.receive("a", 1, Duration::ZERO).await.unwrap();
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(q.receive("b", 1, Duration::ZERO).await.unwrap().is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        let got = q.receive("b", 1, Duration::ZERO).await.unwrap();
        assert_eq!((got[0].id, got[0].deliveries), (id, 2));
        assert!(matches!(
            q.extend("a", &id).await,
            Err(QueueError::NotOwner { .. })
        ));
        q.extend("b", &id).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn max_deliveries_one_dead_letters_on_first_reclaim() {
        let q = queue(10, 1);
        q.enqueue(Bytes::from_static(b"x")).await.unwrap();
        q.receive("a", 1, Duration::ZERO).await.unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(q.receive("b", 1, Duration::ZERO).await.unwrap().is_empty());
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].deliveries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ack_of_a_foreign_id_is_a_no_op() {
        let q = queue(10, 1);
        q.enqueue(Bytes::from_static(b"x")).await.unwrap();
        q.ack(&"1-1".parse().unwrap()).await.unwrap();
        assert_eq!(q.len().await.unwrap().ready, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ids_keep_growing_after_delete() {
        let q = queue(10, 1);
        let a = q.enqueue(Bytes::new()).await.unwrap();
        q.delete().await.unwrap();
        let b = q.enqueue(Bytes::new()).await.unwrap();
        assert!(b > a);
    }
}
