//! Acknowledgements of handled tasks, sent together.
//!
//! Each task a worker handles ends with an acknowledgement (`XACK` + `XDEL`
//! in one transaction). Sent one by one, that is a Redis transaction per
//! task; the [`Acker`] instead takes every acknowledgement waiting at that
//! moment and sends them as one (`ack_many`), and the task's handler does
//! not wait for it.
//!
//! # Guarantees
//!
//! - An acknowledgement is sent only after the task's result was sent (the
//!   handler queues it last), so a crash before it is sent leaves the task
//!   pending: it is redelivered and answered `lost`, as when a worker dies
//!   between replying and acknowledging.
//! - [`Acker::finish`] sends everything still queued before the worker
//!   stops.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weir_queue::{TaskId, WorkQueue};

/// Most task ids acknowledged in one call.
const MAX_BATCH: usize = 256;

/// Queues acknowledgements for the task sending them.
pub(crate) struct Acker {
    ids: mpsc::UnboundedSender<TaskId>,
    sender: JoinHandle<()>,
}

impl Acker {
    /// Starts the sending task on the current runtime.
    pub(crate) fn start(tasks: Arc<dyn WorkQueue>) -> Self {
        let (ids, rx) = mpsc::unbounded_channel();
        let sender = tokio::spawn(send(rx, tasks));
        Self { ids, sender }
    }

    /// A handle that queues acknowledgements.
    pub(crate) fn handle(&self) -> AckHandle {
        AckHandle(self.ids.clone())
    }

    /// Sends what is still queued, once every [`AckHandle`] is dropped.
    pub(crate) async fn finish(self) {
        drop(self.ids);
        if let Err(e) = self.sender.await {
            tracing::warn!(error = %e, "the task acknowledgement sender failed");
        }
    }
}

/// Queues acknowledgements (cheap to clone, never waits).
#[derive(Clone)]
pub(crate) struct AckHandle(mpsc::UnboundedSender<TaskId>);

impl AckHandle {
    /// Queues the acknowledgement of `id`.
    pub(crate) fn ack(&self, id: TaskId) {
        if self.0.send(id).is_err() {
            tracing::warn!(
                "a task acknowledgement was dropped as the worker stopped; it will be redelivered and answered `lost`"
            );
        }
    }
}

async fn send(mut rx: mpsc::UnboundedReceiver<TaskId>, tasks: Arc<dyn WorkQueue>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(e) = tasks.ack_many(&batch).await {
            tracing::warn!(error = %e, tasks = batch.len(), "could not acknowledge tasks; they may be redelivered and answered `lost`");
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use weir_queue::{InProcessQueue, QueueConfig};

    use super::*;

    #[tokio::test]
    async fn every_queued_acknowledgement_is_sent_by_finish() {
        let queue: Arc<dyn WorkQueue> =
            Arc::new(InProcessQueue::new(QueueConfig::default()).unwrap());
        for i in 0..500u32 {
            queue.enqueue(Bytes::from(i.to_string())).await.unwrap();
        }
        let mut taken = Vec::new();
        while taken.len() < 500 {
            let got = queue
                .receive("w", 100, Duration::from_millis(10))
                .await
                .unwrap();
            assert!(!got.is_empty(), "queue ran dry at {}", taken.len());
            taken.extend(got);
        }
        assert_eq!(queue.len().await.unwrap().pending, 500);
        let acker = Acker::start(queue.clone());
        let handle = acker.handle();
        for d in &taken {
            handle.ack(d.id);
        }
        drop(handle);
        acker.finish().await;
        assert_eq!(queue.len().await.unwrap().pending, 0);
    }
}
