//! Group commit: one writer task per sink turns many concurrent appends into
//! few transactions.
//!
//! Appends queue on a bounded channel. The writer takes the first waiting
//! message, drains whatever else is queued (up to `max_batch`, yielding a
//! few times so appenders that are runnable can queue too), writes the
//! whole batch in one transaction through a [`Store`], and answers each
//! waiter, in order, only once the batch is durable. While one batch commits
//! the next one accumulates, so the cost of a durable commit (an `fsync`) is
//! shared by every append that arrived meanwhile. If the transaction fails,
//! every append in it fails and nothing of it was written.
//!
//! # Durability
//!
//! A store says how its commits become durable ([`Durability`]):
//! - [`Durability::AtCommit`] (PostgreSQL with `synchronous_commit = on`):
//!   the batch is answered as soon as its commit returns.
//! - [`Durability::AfterSync`] (the SQLite log): the commit returns before
//!   its bytes are on disk, and the [sync stage](sync) answers the batch
//!   only after an `fsync` that *began after the commit returned* has
//!   completed. The `fsync` never holds the write lock. By default the
//!   writer meanwhile commits the next batch, so one batch's `fsync`
//!   overlaps the next one's transaction; given a gather window, it instead
//!   gathers the next batch until the `fsync` is done (see
//!   [`fill_while_syncing`]).
//!
//! Either way, **no append is answered `Ok` before its event is durable**,
//! and batches are answered in commit order. Checkpoints are copied to the
//! mirror file only once durable, so the mirror never names an event a
//! power loss could take back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, NewEvent};
use crate::mirror::Mirror;
use crate::sealer::{Sealed, Sealer};

mod sync;

pub(crate) use sync::{Durability, WalFile};

/// A backend's write transaction.
#[async_trait]
pub(crate) trait Store: Send + 'static {
    /// In one transaction: lock and read the chain head, seal `batch` with
    /// `sealer`, insert the events and any checkpoint, store the new head,
    /// commit. Returns what was committed.
    async fn commit(
        &mut self,
        sealer: &Sealer,
        batch: Vec<NewEvent>,
        force_checkpoint: bool,
    ) -> Result<Sealed>;

    /// How a returned commit becomes durable.
    fn durability(&self) -> Durability {
        Durability::AtCommit
    }

    /// Whether the writer should run on a thread of its own (see
    /// [`spawn_on_own_thread`]): required by a store whose commit blocks;
    /// only for stores whose I/O is not bound to the caller's runtime.
    fn own_thread(&self) -> bool {
        false
    }
}

/// Runs the writer on a single-threaded runtime on its own OS thread.
///
/// The SQLite store's commit is a blocking call into SQLite on this
/// thread, which must not be one of the caller's runtime threads. It also
/// keeps the one task everyone waits for from queueing behind every
/// runnable request task (measured in the HTTP API, when the writer was a
/// task there: about 90 µs per database round trip under load); on its own
/// thread the operating system's scheduler wakes it.
fn spawn_on_own_thread(task: impl Future<Output = ()> + Send + 'static) {
    let started = std::thread::Builder::new()
        .name("weir-audit-writer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(task),
                Err(e) => tracing::error!(error = %e, "cannot start the audit writer's runtime"),
            }
        });
    if let Err(e) = started {
        // Appends then fail with `Error::Closed`.
        tracing::error!(error = %e, "cannot start the audit writer's thread");
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// How many times the writer yields to let more appends queue before it
/// commits a batch (it stops early once a yield brings nothing new).
const COALESCE_ROUNDS: usize = 8;

/// The gather window used in this module's tests (see [`gather`]).
#[cfg(test)]
const GATHER_WINDOW: Duration = crate::sink::NETWORK_GATHER_WINDOW;

// Appends are nearly every message: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append(NewEvent, Reply<AuditEvent>),
    Checkpoint(Reply<Option<Checkpoint>>),
    Close(Reply<()>),
}

/// The sink's handle on its writer task.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    /// Resolves when the writer task has ended; an error if it panicked.
    done: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Writer {
    pub(crate) fn spawn<S: Store>(
        store: S,
        sealer: Sealer,
        mirror: Option<Mirror>,
        max_batch: usize,
        queue_capacity: usize,
        gather_window: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue_capacity);
        let own_thread = store.own_thread();
        let task = async move {
            let (settle, gather_window, sync_wait) = match store.durability() {
                Durability::AtCommit => (Settle::Inline(mirror), gather_window, Duration::ZERO),
                // The window bounds the wait for a pending fsync instead:
                // waiting for the last batch's appenders, who wait for that
                // fsync, would put it in series with the next commit.
                Durability::AfterSync(target) => (
                    Settle::Staged(sync::Stage::spawn(target, mirror)),
                    Duration::ZERO,
                    gather_window,
                ),
            };
            Loop {
                store,
                sealer,
                settle,
                max_batch,
                gather_window,
                sync_wait,
                dirty: true,
                last_batch: 0,
            }
            .run(rx)
            .await;
        };
        let (done_tx, done) = oneshot::channel();
        let task = async move {
            task.await;
            // Not sent if the task panicked.
            let _ = done_tx.send(());
        };
        if own_thread {
            spawn_on_own_thread(task);
        } else {
            tokio::spawn(task);
        }
        Self {
            tx,
            done: Mutex::new(Some(done)),
        }
    }

    pub(crate) async fn append(&self, event: NewEvent) -> Result<AuditEvent> {
        event.validate()?;
        self.request(|reply| Msg::Append(event, reply)).await
    }

    pub(crate) async fn checkpoint_now(&self) -> Result<Option<Checkpoint>> {
        self.request(Msg::Checkpoint).await
    }

    /// Commits what is queued, signs a final checkpoint and stops the task.
    pub(crate) async fn close(&self) -> Result<()> {
        let result = self.request(Msg::Close).await;
        if let Some(done) = self.done.lock().await.take() {
            done.await.map_err(|_| Error::Internal {
                reason: "audit writer task panicked",
            })?;
        }
        match result {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    async fn request<T>(&self, msg: impl FnOnce(Reply<T>) -> Msg) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(msg(reply)).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// Who waits on one batch.
#[derive(Default)]
struct Waiters {
    appends: Vec<Reply<AuditEvent>>,
    checkpoints: Vec<Reply<Option<Checkpoint>>>,
    close: Option<Reply<()>>,
}

impl Waiters {
    /// Answers everyone with what `sealed` committed. Only call once
    /// `sealed` is durable.
    fn answer(self, sealed: Sealed) {
        for (waiter, event) in self.appends.into_iter().zip(sealed.events) {
            let _ = waiter.send(Ok(event));
        }
        for waiter in self.checkpoints {
            let _ = waiter.send(Ok(sealed.checkpoint.clone()));
        }
        if let Some(waiter) = self.close {
            let _ = waiter.send(Ok(()));
        }
    }

    /// Answers everyone with `error()`.
    fn fail(self, error: impl Fn() -> Error) {
        for waiter in self.appends {
            let _ = waiter.send(Err(error()));
        }
        for waiter in self.checkpoints {
            let _ = waiter.send(Err(error()));
        }
        if let Some(waiter) = self.close {
            let _ = waiter.send(Err(error()));
        }
    }
}

/// Messages of one batch, sorted by kind.
#[derive(Default)]
struct Batch {
    events: Vec<NewEvent>,
    waiters: Waiters,
}

impl Batch {
    fn full(&self, max_batch: usize) -> bool {
        self.events.len() >= max_batch || self.waiters.close.is_some()
    }

    fn add(&mut self, msg: Msg) {
        match msg {
            Msg::Append(event, reply) => {
                self.events.push(event);
                self.waiters.appends.push(reply);
            }
            Msg::Checkpoint(reply) => self.waiters.checkpoints.push(reply),
            Msg::Close(reply) => self.waiters.close = Some(reply),
        }
    }
}

/// What happens to a committed batch.
enum Settle {
    /// Durable at commit: mirror its checkpoint, answer its waiters.
    Inline(Option<Mirror>),
    /// Handed to the sync stage, which does both after an `fsync`.
    Staged(sync::Stage),
}

/// Copies `sealed`'s checkpoint, if any, to the mirror. Only call once
/// `sealed` is durable.
async fn mirror_checkpoint(mirror: Option<&Mirror>, sealed: &Sealed) {
    if let (Some(mirror), Some(cp)) = (mirror, &sealed.checkpoint) {
        // The checkpoint is already durable in the database; a mirror
        // failure weakens truncation evidence but loses no event.
        if let Err(e) = mirror.append(cp).await {
            tracing::warn!(error = %e, "audit checkpoint mirror write failed");
        }
    }
}

struct Loop<S> {
    store: S,
    sealer: Sealer,
    settle: Settle,
    max_batch: usize,
    /// See [`gather`]; zero never waits.
    gather_window: Duration,
    /// See [`fill_while_syncing`]; zero never waits.
    sync_wait: Duration,
    /// Whether events may be uncovered by a checkpoint (true at start: a
    /// previous process may have left some).
    dirty: bool,
    /// Events in the last committed batch: how many appenders were waiting
    /// on the last commit, so how many are likely to append again.
    last_batch: usize,
}

impl<S: Store> Loop<S> {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let period = self.sealer.policy().every().max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                msg = rx.recv() => msg,
                _ = tick.tick(), if self.dirty => {
                    // Commits a checkpoint only if the interval has passed.
                    self.process(Batch::default(), false).await;
                    continue;
                }
            };
            let Some(first) = first else {
                // Every handle dropped without close(): still cover the tail.
                if self.dirty {
                    self.process(Batch::default(), true).await;
                }
                break;
            };
            let mut batch = Batch::default();
            batch.add(first);
            self.drain(&mut batch, &mut rx);
            // Appenders answered by the last commit are usually runnable but
            // not yet queued again: let them run before committing, or the
            // next fsync carries only the first few of them.
            for _ in 0..COALESCE_ROUNDS {
                if batch.full(self.max_batch) {
                    break;
                }
                tokio::task::yield_now().await;
                if self.drain(&mut batch, &mut rx) == 0 {
                    break;
                }
            }
            gather(
                self.last_batch,
                self.max_batch,
                self.gather_window,
                &mut batch,
                &mut rx,
            )
            .await;
            if let Settle::Staged(stage) = &self.settle
                && !self.sync_wait.is_zero()
            {
                fill_while_syncing(stage, self.max_batch, self.sync_wait, &mut batch, &mut rx)
                    .await;
            }
            self.last_batch = batch.events.len();
            if batch.waiters.close.is_some() {
                self.process(batch, true).await;
                break;
            }
            self.process(batch, false).await;
        }
        if let Settle::Staged(stage) = self.settle {
            // Every committed batch is answered before the task ends.
            stage.finish().await;
        }
    }

    /// Moves queued messages into `batch` until it is full; returns how many.
    fn drain(&self, batch: &mut Batch, rx: &mut mpsc::Receiver<Msg>) -> usize {
        drain(self.max_batch, batch, rx)
    }

    /// Commits one batch (with a checkpoint if `force`, if anyone asked for
    /// one, or if the policy's interval has passed) and settles it.
    async fn process(&mut self, batch: Batch, force: bool) {
        let Batch { events, waiters } = batch;
        let force = force || !waiters.checkpoints.is_empty();
        if let Settle::Staged(stage) = &self.settle
            && let Some(source) = stage.failed()
        {
            // A sync failed: nothing more is written.
            waiters.fail(|| Error::SyncFailed {
                source: Arc::clone(&source),
            });
            return;
        }
        match self.store.commit(&self.sealer, events, force).await {
            Ok(sealed) => {
                self.dirty = sealed.head.seq > sealed.head.checkpoint_seq;
                match &self.settle {
                    Settle::Inline(mirror) => {
                        mirror_checkpoint(mirror.as_ref(), &sealed).await;
                        waiters.answer(sealed);
                    }
                    Settle::Staged(stage) => stage.submit(sealed, waiters).await,
                }
            }
            Err(e) => {
                let source = Arc::new(e);
                waiters.fail(|| Error::CommitFailed {
                    source: Arc::clone(&source),
                });
            }
        }
    }
}

/// Moves queued messages into `batch` until it holds `max_batch` events (or
/// a close); returns how many.
fn drain(max_batch: usize, batch: &mut Batch, rx: &mut mpsc::Receiver<Msg>) -> usize {
    let mut taken = 0;
    while !batch.full(max_batch) {
        match rx.try_recv() {
            Ok(msg) => {
                batch.add(msg);
                taken += 1;
            }
            Err(_) => break,
        }
    }
    taken
}

/// While the sync stage is still making earlier batches durable, keeps
/// adding queued appends to `batch` until the sync is done, `batch` is
/// full, or `window` has passed.
///
/// One commit per `fsync` instead of several: each commit has a fixed cost
/// (the write lock, the head row, rewriting the last, partly filled B-tree
/// pages into the WAL), which matters when the appenders' own work keeps
/// the cores busy, as the HTTP API's requests do. There, measured at 64
/// connections, events per commit rose from about 6 to 13 and requests per
/// second by 6 to 25% (docs/benchmarks.md). When the cores are idle and the
/// writer is the bottleneck it costs throughput (the commit waits for the
/// `fsync` instead of overlapping it), hence off by default. A lone
/// appender never waits (nothing is pending), a full batch goes at once,
/// and the window bounds the wait should a sync stall.
async fn fill_while_syncing(
    stage: &sync::Stage,
    max_batch: usize,
    window: Duration,
    batch: &mut Batch,
    rx: &mut mpsc::Receiver<Msg>,
) {
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    while !batch.full(max_batch) {
        tokio::select! {
            biased;
            () = stage.idle() => break,
            () = &mut deadline => break,
            msg = rx.recv() => match msg {
                Some(msg) => {
                    batch.add(msg);
                    drain(max_batch, batch, rx);
                }
                // Every sender is gone: commit what there is.
                None => break,
            },
        }
    }
}

/// Under load, waits up to `window` for `batch` to reach the size of the
/// last one (`last_batch`): the appenders that last commit answered are
/// likely coming back, and one fsync for all of them beats one each.
/// Adapts both ways: a lone appender (last batch of 1) never waits, and a
/// batch that falls short because load dropped sets a lower target for the
/// next one. A zero window never waits (the default: see
/// [`SinkConfig::with_gather_window`](crate::SinkConfig::with_gather_window)).
async fn gather(
    last_batch: usize,
    max_batch: usize,
    window: Duration,
    batch: &mut Batch,
    rx: &mut mpsc::Receiver<Msg>,
) {
    let target = last_batch.min(max_batch);
    let deadline = tokio::time::Instant::now() + window;
    while !window.is_zero() && target > 1 && batch.events.len() < target && !batch.full(max_batch) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(msg)) => {
                batch.add(msg);
                drain(max_batch, batch, rx);
            }
            // Deadline passed, or every sender is gone: commit now.
            Ok(None) | Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests;
