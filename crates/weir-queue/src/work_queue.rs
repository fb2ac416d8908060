//! The [`WorkQueue`] trait: at-least-once task delivery to competing
//! consumers.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::task::{DeadLetter, Delivery, QueueDepth, TaskId};

/// A work queue: producers enqueue opaque payloads, consumers (named,
/// competing) receive, work, and ack them.
///
/// # Contract
///
/// - **At least once.** A task is delivered until it is acked or
///   dead-lettered. A consumer that dies (or stalls past the visibility
///   timeout without [`extend`](Self::extend)) loses its tasks to the next
///   `receive` of any consumer, so work must be idempotent: a slow consumer
///   and its successor may both finish the same task.
/// - **One holder at a time.** Between two visibility timeouts a task is
///   held by exactly one consumer: concurrent `receive`s never return the
///   same task, and a task is redelivered only after it was idle (not
///   extended) for the visibility timeout.
/// - **Acked is final.** After [`ack`](Self::ack) returns `Ok`, the task is
///   never delivered again, to anyone.
/// - **Bounded retries.** A task whose next delivery would exceed
///   [`QueueConfig::max_deliveries`](crate::QueueConfig::max_deliveries)
///   moves to the dead letters (payload kept) instead.
/// - **Byte-exact payloads**, in enqueue order for first deliveries
///   (reclaimed tasks come before new ones).
/// - **Cancellation.** Dropping a `receive` future before it completes may
///   leave tasks delivered but unseen; they are redelivered after the
///   visibility timeout (with a higher delivery count). Every other method
///   is safe to drop, and its effect may or may not have happened.
///
/// # Errors
///
/// Every method: [`QueueError::InvalidArgument`](crate::QueueError::InvalidArgument)
/// for a malformed consumer name, and for networked backends
/// [`Unavailable`](crate::QueueError::Unavailable) or
/// [`Timeout`](crate::QueueError::Timeout) when the store cannot be reached
/// within the backend's time limit (the call may or may not have taken
/// effect), [`Refused`](crate::QueueError::Refused) or
/// [`Protocol`](crate::QueueError::Protocol) when the store misbehaves.
/// Method-specific errors are listed on each method.
///
/// # Security
///
/// Payloads are stored as given (encrypt or sign them above this layer if
/// the store is shared); errors and logs never contain payload bytes.
/// Consumer names are trusted labels, not credentials.
#[async_trait]
#[allow(
    clippy::len_without_is_empty,
    reason = "len returns a three-part depth, not a size"
)]
pub trait WorkQueue: Send + Sync + Debug {
    /// Appends a task; it becomes visible to `receive` once this returns.
    ///
    /// # Errors
    ///
    /// [`PayloadTooLarge`](crate::QueueError::PayloadTooLarge) if `payload`
    /// exceeds `max_payload` (nothing is enqueued).
    async fn enqueue(&self, payload: Bytes) -> Result<TaskId>;

    /// Appends several tasks in one round trip, in order, returning their
    /// ids in the same order.
    ///
    /// # Errors
    ///
    /// [`PayloadTooLarge`](crate::QueueError::PayloadTooLarge) if any
    /// payload exceeds `max_payload`: then nothing is enqueued. On a store
    /// error, a prefix of the batch may have been enqueued.
    async fn enqueue_many(&self, payloads: Vec<Bytes>) -> Result<Vec<TaskId>>;

    /// Hands at most `max` tasks (clamped to [`MAX_BATCH`](crate::MAX_BATCH))
    /// to `consumer`.
    ///
    /// First, tasks held by any consumer and idle longer than the
    /// visibility timeout are reclaimed to `consumer`, their delivery count
    /// incremented; one whose count would exceed `max_deliveries` goes to
    /// the dead letters instead. Then never-delivered tasks are taken in
    /// enqueue order. If there are none at all, waits up to `wait`
    /// (clamped to [`MAX_WAIT`](crate::MAX_WAIT)) for new ones (not for
    /// reclaims) and returns an empty vector if none came. `max == 0`
    /// returns an empty vector at once.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn receive(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Marks the task done and deletes it. Idempotent: acking an unknown,
    /// already acked or dead-lettered id succeeds. Any consumer may ack
    /// (the holder normally does); acking a task not yet delivered deletes
    /// it unseen.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn ack(&self, id: &TaskId) -> Result<()>;

    /// [`ack`](Self::ack) for several tasks in one round trip.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn ack_many(&self, ids: &[TaskId]) -> Result<()>;

    /// Heartbeat: restarts the visibility timeout of a task `consumer`
    /// holds, without counting a delivery. Call it well within the
    /// visibility timeout (e.g. every third of it) while working.
    ///
    /// # Errors
    ///
    /// [`NotOwner`](crate::QueueError::NotOwner) if `consumer` does not hold
    /// the task any more (acked, dead-lettered, or reclaimed by another
    /// consumer): stop working on it.
    async fn extend(&self, consumer: &str, id: &TaskId) -> Result<()>;

    /// The oldest `max` dead letters, oldest first. They stay until
    /// [`delete`](Self::delete).
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>>;

    /// How many tasks are ready, pending and dead, read atomically.
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn len(&self) -> Result<QueueDepth>;

    /// Removes the queue, its tasks and its dead letters. The handle stays
    /// usable: a later `enqueue` starts an empty queue again. Tasks being
    /// worked on are lost (their `ack`s succeed, their `extend`s fail).
    ///
    /// # Errors
    ///
    /// See the trait.
    async fn delete(&self) -> Result<()>;
}
