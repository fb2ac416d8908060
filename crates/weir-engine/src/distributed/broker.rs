//! Where tasks, results, leases, fences and nonces live: in this process
//! (the embedded default) or in Redis (many machines).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use weir_auth::envelope::{NonceStore, NonceStoreError};
use weir_queue::{
    Fences, InProcessCoordination, InProcessQueue, Leases, OnceSet, QueueConfig, RedisCoordination,
    RedisQueue, WorkQueue,
};

use crate::dataset::CommitFence;
use crate::error::{Error, Result};

/// Name of the shared task queue.
pub const TASKS: &str = "tasks";

/// The reply queue of one run.
pub fn results_queue(run_id: &str) -> String {
    format!("results.{run_id}")
}

/// The task queue, per-run reply queues and the coordination tables.
#[async_trait::async_trait]
pub trait Broker: Send + Sync + fmt::Debug {
    /// The queue every worker takes tasks from.
    fn tasks(&self) -> Arc<dyn WorkQueue>;
    /// A reply queue by name, created on first use.
    ///
    /// # Errors
    /// [`Error::Queue`] if it cannot be opened.
    async fn queue(&self, name: &str) -> Result<Arc<dyn WorkQueue>>;
    /// Output leases.
    fn leases(&self) -> Arc<dyn Leases>;
    /// Fencing numbers.
    fn fences(&self) -> Arc<dyn Fences>;
    /// The replay cache for envelope nonces.
    fn once(&self) -> Arc<dyn OnceSet>;
}

/// Everything in this process.
#[derive(Debug)]
pub struct InProcessBroker {
    config: QueueConfig,
    tasks: Arc<InProcessQueue>,
    queues: std::sync::Mutex<HashMap<String, Arc<InProcessQueue>>>,
    coordination: Arc<InProcessCoordination>,
}

impl InProcessBroker {
    /// An empty broker whose queues use `config`.
    ///
    /// # Errors
    /// [`Error::Queue`] if `config` is out of range.
    pub fn new(config: QueueConfig) -> Result<Self> {
        Ok(Self {
            tasks: Arc::new(InProcessQueue::new(config.clone()).map_err(queue_error)?),
            config,
            queues: std::sync::Mutex::default(),
            coordination: Arc::new(InProcessCoordination::default()),
        })
    }
}

#[async_trait::async_trait]
impl Broker for InProcessBroker {
    fn tasks(&self) -> Arc<dyn WorkQueue> {
        self.tasks.clone()
    }

    async fn queue(&self, name: &str) -> Result<Arc<dyn WorkQueue>> {
        let mut queues = self.queues.lock().map_err(|_| Error::Internal {
            message: "queue table poisoned".into(),
        })?;
        if let Some(queue) = queues.get(name) {
            return Ok(queue.clone());
        }
        let queue = Arc::new(InProcessQueue::new(self.config.clone()).map_err(queue_error)?);
        queues.insert(name.to_owned(), queue.clone());
        Ok(queue)
    }

    fn leases(&self) -> Arc<dyn Leases> {
        self.coordination.clone()
    }

    fn fences(&self) -> Arc<dyn Fences> {
        self.coordination.clone()
    }

    fn once(&self) -> Arc<dyn OnceSet> {
        self.coordination.clone()
    }
}

/// Everything in one Redis server (Streams for queues).
pub struct RedisBroker {
    url: String,
    config: QueueConfig,
    tasks: Arc<RedisQueue>,
    queues: tokio::sync::Mutex<HashMap<String, Arc<RedisQueue>>>,
    coordination: Arc<RedisCoordination>,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisBroker").finish_non_exhaustive()
    }
}

/// Most reply queues kept open at once by one process.
const MAX_OPEN_QUEUES: usize = 256;

impl RedisBroker {
    /// Connects to the Redis server at `url` (`redis://host:port[/db]`).
    ///
    /// # Errors
    /// [`Error::Queue`] if the server is unreachable.
    pub async fn connect(url: &str, config: QueueConfig) -> Result<Self> {
        Self::connect_to(url, TASKS, config).await
    }

    /// As [`connect`](Self::connect), with the task queue named `tasks`
    /// (separate worker pools on one Redis, or isolated tests).
    ///
    /// # Errors
    /// [`Error::Queue`] if the server is unreachable or the name is invalid.
    pub async fn connect_to(url: &str, tasks: &str, config: QueueConfig) -> Result<Self> {
        let tasks = RedisQueue::connect(url, tasks, config.clone())
            .await
            .map_err(queue_error)?;
        let coordination = RedisCoordination::connect(url).await.map_err(queue_error)?;
        Ok(Self {
            url: url.to_owned(),
            config,
            tasks: Arc::new(tasks),
            queues: tokio::sync::Mutex::default(),
            coordination: Arc::new(coordination),
        })
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    fn tasks(&self) -> Arc<dyn WorkQueue> {
        self.tasks.clone()
    }

    async fn queue(&self, name: &str) -> Result<Arc<dyn WorkQueue>> {
        let mut queues = self.queues.lock().await;
        if let Some(q) = queues.get(name) {
            return Ok(q.clone());
        }
        if queues.len() >= MAX_OPEN_QUEUES {
            queues.clear();
        }
        let queue = Arc::new(
            RedisQueue::connect(&self.url, name, self.config.clone())
                .await
                .map_err(queue_error)?,
        );
        queues.insert(name.to_owned(), queue.clone());
        Ok(queue)
    }

    fn leases(&self) -> Arc<dyn Leases> {
        self.coordination.clone()
    }

    fn fences(&self) -> Arc<dyn Fences> {
        self.coordination.clone()
    }

    fn once(&self) -> Arc<dyn OnceSet> {
        self.coordination.clone()
    }
}

pub(crate) fn queue_error(e: weir_queue::QueueError) -> Error {
    Error::Queue {
        message: e.to_string(),
    }
}

/// The fence key of one stage of one run.
pub(crate) fn fence_key(run_id: &str, stage: &str) -> String {
    format!("{run_id}/{stage}")
}

/// How long a fence outlives its stage: long enough for any zombie attempt
/// to give up (its token has expired by then).
pub(crate) fn fence_ttl(stage_timeout: Duration) -> Duration {
    stage_timeout.saturating_add(Duration::from_secs(24 * 3600))
}

/// The distributed commit fence: attempt `n` may commit only while `n` is
/// the newest attempt the dispatcher has issued for its stage.
pub(crate) struct BrokerFence {
    pub(crate) fences: Arc<dyn Fences>,
}

#[async_trait::async_trait]
impl CommitFence for BrokerFence {
    async fn check(&self, run_id: &str, stage: &str, attempt: u32) -> Result<()> {
        let current = self
            .fences
            .current(&fence_key(run_id, stage))
            .await
            .map_err(queue_error)?;
        match current {
            Some(newest) if newest == u64::from(attempt) => Ok(()),
            Some(newest) => Err(Error::Fenced {
                stage: stage.to_owned(),
                attempt,
                newer: u32::try_from(newest).unwrap_or(u32::MAX),
            }),
            // No fence: it expired or was never set, so nothing vouches for
            // this attempt.
            None => Err(Error::Queue {
                message: format!("no commit fence for stage `{stage}` of run {run_id}"),
            }),
        }
    }
}

/// Envelope nonces in the broker's replay cache.
pub(crate) struct BrokerNonces {
    pub(crate) once: Arc<dyn OnceSet>,
}

#[async_trait::async_trait]
impl NonceStore for BrokerNonces {
    async fn first_use(
        &self,
        nonce: &str,
        expires_at: i64,
    ) -> std::result::Result<bool, NonceStoreError> {
        let now = chrono::Utc::now().timestamp();
        // Keep the nonce a little past the envelope's expiry (clock skew).
        let secs = u64::try_from(expires_at.saturating_sub(now).max(0))
            .unwrap_or(0)
            .saturating_add(60);
        self.once
            .first(&format!("nonce:{nonce}"), Duration::from_secs(secs))
            .await
            .map_err(|e| NonceStoreError::Unavailable {
                reason: "the broker's replay cache failed",
                source: Some(Box::new(e)),
            })
    }
}
