//! [`RedisQueue`]: the [`WorkQueue`] contract on a Redis stream and
//! consumer group, shared by any number of processes.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::config::{MAX_BATCH, MAX_WAIT, QueueConfig, check_consumer, millis_ceil};
use crate::connection::{REDIS_TIMEOUT, Redis, Retry};
use crate::error::{QueueError, Result};
use crate::reply;
use crate::script::{DEPTH, EXTEND, GROUP, RECEIVE};
use crate::task::{DeadLetter, Delivery, QueueDepth, TaskId};
use crate::work_queue::WorkQueue;

/// The longest queue name, in bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 128;

/// Idle dedicated connections kept for blocking receives.
const MAX_IDLE_READERS: usize = 8;

/// A [`WorkQueue`] on Redis Streams.
///
/// Keys: the stream `weir:q:<name>` (one entry per task, field `p` holding
/// the payload), its consumer group `weir`, and the dead-letter stream
/// `weir:q:<name>:dead` (fields `id`, `p`, `n`). Every handle on the same
/// Redis and name is the same queue.
///
/// # Round trips
///
/// `enqueue`, `ack`, `extend`, `len`, `dead_letters`, `delete` take one
/// each, `enqueue_many`/`ack_many` one per batch, `receive` one when tasks
/// are there (a Lua script reclaims, dead-letters and reads atomically),
/// plus a blocking `XREADGROUP` when none are. That blocking read runs on a
/// dedicated connection (pooled, one per concurrent receive) so it does not
/// delay the shared multiplexed connection every other call uses; the
/// shared one reconnects on its own after Redis restarts or drops it.
///
/// Redis ends blocking reads on its timer tick (every 100 ms at the
/// default `hz 10`), so an empty `receive` may return up to about 100 ms
/// after its `wait`; a task that arrives ends the wait at once. The
/// connection speaks RESP3 (needs Redis 6.2 or later; the scripts rely on
/// `XAUTOCLAIM`) so that a dropped connection is noticed and replaced
/// before the next call.
///
/// # Non-goals
///
/// Redis Cluster (the scripts touch two keys without a hash tag), and
/// durability beyond what the server's persistence settings give.
/// Consumer names are kept in the group until the queue is deleted, so
/// use stable names (one per worker slot), not one per process start.
pub struct RedisQueue {
    redis: Redis,
    name: String,
    stream: String,
    dead: String,
    config: QueueConfig,
    readers: Mutex<Vec<MultiplexedConnection>>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// Connects to `url` (`redis://host:6379/`, `rediss://` for TLS is not
    /// compiled in) and opens the queue `name`, creating its stream and
    /// group if needed (concurrent creators are fine).
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidArgument`] for a malformed URL (not quoted: it
    /// may hold a password), a name that is empty, longer than
    /// [`MAX_QUEUE_NAME_BYTES`] or not `[A-Za-z0-9._-]`, or an invalid
    /// `config`; [`QueueError::Unavailable`] or [`QueueError::Timeout`]
    /// if Redis does not answer within [`REDIS_TIMEOUT`];
    /// [`QueueError::Refused`] if the key exists and is not a stream.
    pub async fn connect(url: &str, name: &str, config: QueueConfig) -> Result<Self> {
        config.validate()?;
        check_queue_name(name)?;
        let redis = Redis::connect(url).await?;
        let queue = Self {
            redis,
            name: name.to_owned(),
            stream: format!("weir:q:{name}"),
            dead: format!("weir:q:{name}:dead"),
            config,
            readers: Mutex::new(Vec::new()),
        };
        queue.create_group().await?;
        Ok(queue)
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration this handle applies.
    #[must_use]
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    async fn create_group(&self) -> Result<()> {
        let created = self
            .redis
            .run("create group", Retry::Idempotent, |mut c| async move {
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        match created {
            Err(QueueError::Refused { code, .. }) if code == "BUSYGROUP" => Ok(()),
            other => other,
        }
    }

    /// Reclaims, dead-letters and reads new tasks in one script; never
    /// blocks.
    async fn take(&self, consumer: &str, max: usize) -> Result<Vec<Delivery>> {
        match self.take_once(consumer, max).await {
            // Deleted since (and maybe enqueued to again): recreate the
            // group from id 0, so no task enqueued since is skipped.
            Err(QueueError::Refused { code, .. }) if code == "NOGROUP" => {
                self.create_group().await?;
                self.take_once(consumer, max).await
            }
            other => other,
        }
    }

    async fn take_once(&self, consumer: &str, max: usize) -> Result<Vec<Delivery>> {
        let reply = self
            .redis
            .run("receive", Retry::Idempotent, |mut c| async move {
                RECEIVE
                    .key(&self.stream)
                    .key(&self.dead)
                    .arg(consumer)
                    .arg(self.config.visibility_ms())
                    .arg(max)
                    .arg(self.config.max_deliveries)
                    .invoke_async::<Value>(&mut c)
                    .await
            })
            .await?;
        reply::deliveries_flat("receive", reply)
    }

    /// Waits up to `wait` for new tasks on a dedicated connection (no
    /// time limit of its own: `receive` bounds it).
    async fn wait_for_new(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max)
            // BLOCK 0 would wait forever.
            .arg("BLOCK")
            .arg(millis_ceil(wait).max(1))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">");
        for attempt in 0..2 {
            let (mut conn, pooled) = match self.pooled_reader() {
                Some(conn) => (conn, true),
                None => (self.redis.dedicated().await?, false),
            };
            // If `receive` times out or is dropped here, so is the
            // connection, not pooled: a reply may still be on its way.
            match cmd.query_async::<Value>(&mut conn).await {
                Ok(v) => {
                    self.return_reader(conn);
                    return reply::read_group("receive", v);
                }
                // A pooled connection may have died while idle (Redis
                // restarted, or killed it): try once more on a fresh one.
                Err(e) if attempt == 0 && pooled && e.is_unrecoverable_error() => {}
                Err(e) => {
                    return match QueueError::redis("receive", e) {
                        // The queue was deleted under the wait; the next
                        // receive recreates the group.
                        QueueError::Refused { code, .. }
                            if code == "NOGROUP" || code == "UNBLOCKED" =>
                        {
                            self.return_reader(conn);
                            Ok(Vec::new())
                        }
                        other => Err(other),
                    };
                }
            }
        }
        Ok(Vec::new())
    }

    fn pooled_reader(&self) -> Option<MultiplexedConnection> {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn return_reader(&self, conn: MultiplexedConnection) {
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
    }

    fn xadd(&self, pipe: &mut redis::Pipeline, payload: &Bytes) {
        pipe.cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("p")
            .arg(payload.as_ref());
    }

    async fn ack_ids(&self, ids: &[TaskId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let ids = &ids;
        let acked = self
            .redis
            .run("ack", Retry::Idempotent, |mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("XACK")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(ids)
                    .ignore()
                    .cmd("XDEL")
                    .arg(&self.stream)
                    .arg(ids)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        match acked {
            // The queue was deleted: nothing left to redeliver.
            Err(QueueError::Refused { code, .. }) if code == "NOGROUP" => Ok(()),
            other => other,
        }
    }
}

/// `[A-Za-z0-9._-]{1,128}`: no `:`, so no name's keys collide with
/// another's (`a:dead` would).
fn check_queue_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_QUEUE_NAME_BYTES {
        return Err(QueueError::invalid("queue name", "must be 1 to 128 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(QueueError::invalid(
            "queue name",
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl WorkQueue for RedisQueue {
    async fn enqueue(&self, payload: Bytes) -> Result<TaskId> {
        self.config.check_payload(payload.len())?;
        let payload = &payload;
        let id = self
            .redis
            .run("enqueue", Retry::Never, |mut c| async move {
                redis::cmd("XADD")
                    .arg(&self.stream)
                    .arg("*")
                    .arg("p")
                    .arg(payload.as_ref())
                    .query_async::<Value>(&mut c)
                    .await
            })
            .await?;
        reply::task_id("enqueue", &id)
    }

    async fn enqueue_many(&self, payloads: Vec<Bytes>) -> Result<Vec<TaskId>> {
        for p in &payloads {
            self.config.check_payload(p.len())?;
        }
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for p in &payloads {
            self.xadd(&mut pipe, p);
        }
        let pipe = &pipe;
        let ids = self
            .redis
            .run("enqueue", Retry::Never, |mut c| async move {
                pipe.query_async::<Vec<Value>>(&mut c).await
            })
            .await?;
        if ids.len() != payloads.len() {
            return Err(QueueError::protocol("enqueue", "wrong number of replies"));
        }
        ids.iter().map(|id| reply::task_id("enqueue", id)).collect()
    }

    async fn receive(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        check_consumer(consumer)?;
        let max = max.min(MAX_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let wait = wait.min(MAX_WAIT);
        let limit = wait.saturating_add(REDIS_TIMEOUT);
        let steps = async {
            let got = self.take(consumer, max).await?;
            if !got.is_empty() || wait.is_zero() {
                return Ok(got);
            }
            self.wait_for_new(consumer, max, wait).await
        };
        tokio::time::timeout(limit, steps)
            .await
            .map_err(|_| QueueError::Timeout {
                operation: "receive",
                after: limit,
            })?
    }

    async fn ack(&self, id: &TaskId) -> Result<()> {
        self.ack_ids(std::slice::from_ref(id)).await
    }

    async fn ack_many(&self, ids: &[TaskId]) -> Result<()> {
        self.ack_ids(ids).await
    }

    async fn extend(&self, consumer: &str, id: &TaskId) -> Result<()> {
        check_consumer(consumer)?;
        let text = id.to_string();
        let text = &text;
        let held = self
            .redis
            .run("extend", Retry::Idempotent, |mut c| async move {
                EXTEND
                    .key(&self.stream)
                    .arg(consumer)
                    .arg(text)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
        if held == 1 {
            Ok(())
        } else {
            Err(QueueError::NotOwner { id: *id })
        }
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .redis
            .run("dead letters", Retry::Idempotent, |mut c| async move {
                redis::cmd("XRANGE")
                    .arg(&self.dead)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(max)
                    .query_async::<Value>(&mut c)
                    .await
            })
            .await?;
        reply::dead_letters("dead letters", reply)
    }

    async fn len(&self) -> Result<QueueDepth> {
        let reply = self
            .redis
            .run("len", Retry::Idempotent, |mut c| async move {
                DEPTH
                    .key(&self.stream)
                    .key(&self.dead)
                    .invoke_async::<Value>(&mut c)
                    .await
            })
            .await?;
        let items = reply::items("len", reply)?;
        let [ready, pending, dead] = items.as_slice() else {
            return Err(QueueError::protocol("len", "expected three counts"));
        };
        Ok(QueueDepth {
            ready: reply::count("len", ready)?,
            pending: reply::count("len", pending)?,
            dead: reply::count("len", dead)?,
        })
    }

    async fn delete(&self) -> Result<()> {
        self.redis
            .run("delete", Retry::Idempotent, |mut c| async move {
                redis::cmd("DEL")
                    .arg(&self.stream)
                    .arg(&self.dead)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked() {
        for ok in ["results", "run-01J0.stage_3", "a"] {
            assert!(check_queue_name(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(MAX_QUEUE_NAME_BYTES + 1);
        for bad in ["", "a:dead", "a b", "a/b", "é", "a*", long.as_str()] {
            assert!(check_queue_name(bad).is_err(), "{bad}");
        }
    }
}
