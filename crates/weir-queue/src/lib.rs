//! `weir-queue`: the work queue and coordination primitives weir's workers
//! share, with an in-process backend (one process, tests) and a Redis
//! Streams backend (many machines).
//!
//! - [`WorkQueue`]: at-least-once delivery of opaque payloads to
//!   competing, named consumers, with visibility timeouts, heartbeats
//!   ([`WorkQueue::extend`]), bounded redelivery and dead letters.
//!   Backends: [`InProcessQueue`], [`RedisQueue`].
//! - [`Leases`] (exclusive, expiring), [`OnceSet`] (replay cache for
//!   nonces) and [`Fences`] (monotonic fencing tokens). Backends:
//!   [`InProcessCoordination`], [`RedisCoordination`].
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use weir_queue::{InProcessQueue, QueueConfig, QueueError, WorkQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> weir_queue::Result<()> {
//! let queue = InProcessQueue::new(QueueConfig {
//!     visibility_timeout: Duration::from_secs(60),
//!     ..QueueConfig::default()
//! })?;
//! queue.enqueue_many(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]).await?;
//!
//! // A worker: take a batch, keep each task alive while working, ack it.
//! for task in queue.receive("worker-1", 16, Duration::from_secs(5)).await? {
//!     match queue.extend("worker-1", &task.id).await {
//!         Ok(()) => { /* ... work on task.payload ... */ }
//!         Err(QueueError::NotOwner { .. }) => continue, // reclaimed: drop it
//!         Err(e) => return Err(e),
//!     }
//!     queue.ack(&task.id).await?;
//! }
//! assert_eq!(queue.len().await?.ready + queue.len().await?.pending, 0);
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - **Same semantics on both backends**: one conformance suite
//!   (`weir_testkit::queue`) runs against each.
//! - **No lost task**: a task leaves the queue only by [`WorkQueue::ack`],
//!   by moving to the dead letters after `max_deliveries`, or by
//!   [`WorkQueue::delete`]. **No task held twice at once**: concurrent
//!   consumers never receive the same task within one visibility timeout.
//! - **Atomic steps on Redis**: reclaim + dead-letter + read, heartbeat,
//!   lease compare-and-set and fence max are Lua scripts.
//! - **Bounded waits**: every Redis call ends within [`REDIS_TIMEOUT`]
//!   (a `receive` within its own `wait` plus [`REDIS_TIMEOUT`]), and the
//!   shared connection reconnects after Redis restarts or drops it.
//! - **Few round trips**: one per call, batched variants
//!   ([`WorkQueue::enqueue_many`], [`WorkQueue::ack_many`]) and
//!   multi-task receives; blocking reads use dedicated connections so they
//!   never stall other calls.
//! - **Nothing secret in errors**: no payload bytes, no Redis URL, no
//!   Redis error message (only its code). Payload size is capped
//!   ([`QueueConfig::max_payload`]). No `unsafe`; malformed replies are
//!   errors, never panics.
//!
//! # Non-goals
//!
//! - Exactly-once processing: delivery is at least once, so task handlers
//!   must be idempotent (or fenced with [`Fences`]).
//! - Confidentiality or integrity of payloads in Redis, and access control
//!   to it: sign/encrypt payloads above this layer and protect Redis with
//!   ACLs and TLS as needed.
//! - Redis Cluster, priorities, delayed tasks, strict FIFO across
//!   redeliveries.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod config;
mod connection;
mod coordination;
mod error;
mod in_process;
mod in_process_coordination;
mod redis_coordination;
mod redis_queue;
mod reply;
mod script;
mod task;
mod work_queue;

pub use config::{MAX_BATCH, MAX_CONSUMER_BYTES, MAX_PAYLOAD_LIMIT, MAX_WAIT, QueueConfig};
pub use connection::REDIS_TIMEOUT;
pub use coordination::{Fences, LeaseOutcome, Leases, MAX_HOLDER_BYTES, MAX_KEY_BYTES, OnceSet};
pub use error::{QueueError, Result};
pub use in_process::InProcessQueue;
pub use in_process_coordination::InProcessCoordination;
pub use redis_coordination::RedisCoordination;
pub use redis_queue::{MAX_QUEUE_NAME_BYTES, RedisQueue};
pub use task::{DeadLetter, Delivery, QueueDepth, TaskId};
pub use work_queue::WorkQueue;
