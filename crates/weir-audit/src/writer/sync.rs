//! The sync stage: makes committed batches durable, then answers them.
//!
//! Used by stores whose commit returns before its bytes are on disk (the
//! SQLite log runs its writer connection with `synchronous = NORMAL` and
//! lets this stage `fsync` the WAL). The stage takes every batch committed
//! so far, runs one `fsync`, and only then mirrors their checkpoints and
//! answers their waiters, in commit order. While it syncs, the writer
//! commits the next batch, which the next `fsync` covers, or, given a
//! window, gathers it until this sync is done ([`Stage::idle`]).
//!
//! # Invariants
//! - **Sync after commit:** a batch is answered `Ok` only after an `fsync`
//!   that began after the batch's commit had returned (every batch of a
//!   group is received, so committed, before that group's sync starts).
//! - **Order:** groups are synced one after another and answered in the
//!   order they were committed.
//! - **Fail stop:** once a sync fails, that group and every later batch is
//!   answered [`Error::SyncFailed`], never `Ok`. The writer commits nothing
//!   once it has seen the failure (a batch it was already committing is
//!   answered `SyncFailed` too, without a sync).
//! - **No hang:** [`Stage::idle`] returns once nothing submitted is
//!   unanswered, or once the stage has failed or its thread has ended (a
//!   panic there fail-stops the writer, as a failed sync does).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, mpsc, oneshot};

use super::Waiters;
use crate::error::Error;
use crate::mirror::Mirror;
use crate::sealer::Sealed;

/// Committed batches that may wait for the sync stage before the writer
/// itself waits (back-pressure).
const QUEUE: usize = 64;

/// How a store's returned commit becomes durable.
pub(crate) enum Durability {
    /// It already is.
    AtCommit,
    /// Once `target` has been synced after the commit returned.
    AfterSync(Arc<dyn SyncTarget>),
}

/// A file whose sync makes every returned commit durable.
pub(crate) trait SyncTarget: Send + Sync + 'static {
    /// Where it is (for error messages).
    fn path(&self) -> &Path;
    /// Flushes it to stable storage (`fdatasync`).
    fn sync(&self) -> std::io::Result<()>;
}

/// A SQLite database's write-ahead log (`<database>-wal`).
///
/// Opened afresh for each sync, so that a log SQLite has recreated is the
/// one synced; `fdatasync` through any descriptor flushes the file's
/// pages, including those written by SQLite's own descriptor.
pub(crate) struct WalFile {
    path: PathBuf,
}

impl WalFile {
    /// The WAL of the database file `db_file`.
    pub(crate) fn of_database(db_file: &Path) -> Self {
        let mut path = db_file.as_os_str().to_owned();
        path.push("-wal");
        Self { path: path.into() }
    }
}

impl SyncTarget for WalFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn sync(&self) -> std::io::Result<()> {
        // A WAL exists from the first commit for as long as a connection
        // is open: a missing one is an error, never a silent success.
        File::open(&self.path)?.sync_data()
    }
}

/// The writer's handle on the sync stage.
pub(super) struct Stage {
    tx: mpsc::Sender<(Sealed, Waiters)>,
    /// Resolves when the stage's thread has answered everything; an error
    /// if it panicked or never started.
    done: oneshot::Receiver<()>,
    failed: Arc<OnceLock<Arc<Error>>>,
    pending: Arc<Pending>,
}

/// Batches submitted to the stage and not yet answered.
#[derive(Default)]
struct Pending {
    batches: AtomicUsize,
    /// Notified whenever `batches` drops, `failed` is set or the stage's
    /// thread ends.
    changed: Notify,
}

impl Stage {
    pub(super) fn spawn(target: Arc<dyn SyncTarget>, mirror: Option<Mirror>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (done_tx, done) = oneshot::channel();
        let failed = Arc::new(OnceLock::new());
        let pending = Arc::new(Pending::default());
        let syncer = Syncer {
            target,
            mirror,
            failed: Arc::clone(&failed),
            pending: Arc::clone(&pending),
        };
        let started = std::thread::Builder::new()
            .name("weir-audit-sync".into())
            .spawn(move || {
                syncer.run(rx);
                // Not sent if the stage panicked.
                let _ = done_tx.send(());
            });
        if let Err(e) = started {
            // Nothing can be made durable: fail stop, as after a failed
            // sync, so the writer commits nothing (and `rx` is gone, so a
            // submit fails its waiters).
            tracing::error!(error = %e, "cannot start the audit sync stage's thread");
            let _ = failed.set(Arc::new(Error::Internal {
                reason: "audit sync stage did not start",
            }));
        }
        Self {
            tx,
            done,
            failed,
            pending,
        }
    }

    /// The first sync failure, if any: from then on nothing is committed.
    pub(super) fn failed(&self) -> Option<Arc<Error>> {
        self.failed.get().cloned()
    }

    /// Waits until every batch submitted so far has been answered, or the
    /// stage has failed or stopped (the writer then commits nothing more).
    pub(super) async fn idle(&self) {
        loop {
            // Registered before the check, so a change between the check
            // and the wait still wakes it.
            let changed = self.pending.changed.notified();
            if self.pending.batches.load(Ordering::Acquire) == 0 || self.failed.get().is_some() {
                return;
            }
            changed.await;
        }
    }

    /// Hands over a committed batch; its waiters are answered once durable.
    pub(super) async fn submit(&self, sealed: Sealed, waiters: Waiters) {
        self.pending.batches.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError((_, waiters))) = self.tx.send((sealed, waiters)).await {
            self.pending.batches.fetch_sub(1, Ordering::AcqRel);
            // The stage's thread is gone (it did not start, or panicked):
            // never answer Ok, and commit nothing more.
            let source = Arc::clone(self.failed.get_or_init(|| {
                Arc::new(Error::Internal {
                    reason: "audit sync stage stopped",
                })
            }));
            waiters.fail(|| Error::SyncFailed {
                source: Arc::clone(&source),
            });
        }
    }

    /// Waits until every submitted batch has been answered.
    pub(super) async fn finish(self) {
        drop(self.tx);
        if self.done.await.is_err() {
            tracing::error!("audit sync stage panicked or never started");
        }
    }
}

struct Syncer {
    target: Arc<dyn SyncTarget>,
    mirror: Option<Mirror>,
    failed: Arc<OnceLock<Arc<Error>>>,
    pending: Arc<Pending>,
}

impl Drop for Syncer {
    /// The stage's thread is ending: after a panic, fail stop (its batches
    /// are never answered `Ok`); either way wake a writer waiting in
    /// [`Stage::idle`].
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.failed.set(Arc::new(Error::Internal {
                reason: "audit sync stage stopped",
            }));
        }
        self.pending.changed.notify_waiters();
    }
}

impl Syncer {
    /// Until the writer drops its handle: takes every batch committed so
    /// far, syncs once, answers them in order.
    fn run(self, mut rx: mpsc::Receiver<(Sealed, Waiters)>) {
        let mut group = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            while let Ok(next) = rx.try_recv() {
                group.push(next);
            }
            // Every batch in `group` was committed before this sync starts.
            let batches = group.len();
            match self.sync() {
                Ok(()) => {
                    for (sealed, waiters) in group.drain(..) {
                        self.mirror_checkpoint(&sealed);
                        waiters.answer(sealed);
                    }
                }
                Err(source) => {
                    for (_, waiters) in group.drain(..) {
                        waiters.fail(|| Error::SyncFailed {
                            source: Arc::clone(&source),
                        });
                    }
                }
            }
            self.pending.batches.fetch_sub(batches, Ordering::AcqRel);
            self.pending.changed.notify_waiters();
        }
    }

    /// One `fsync` of the target; fails at once, without syncing, once a
    /// sync has failed.
    fn sync(&self) -> Result<(), Arc<Error>> {
        if let Some(source) = self.failed.get() {
            return Err(Arc::clone(source));
        }
        let error = match self.target.sync() {
            Ok(()) => return Ok(()),
            Err(e) => Error::io(self.target.path(), e),
        };
        tracing::error!(error = %error, "audit log sync failed; refusing further appends");
        let error = Arc::new(error);
        Err(Arc::clone(self.failed.get_or_init(|| error)))
    }

    /// Copies `sealed`'s checkpoint, if any, to the mirror (`sealed` is
    /// durable).
    fn mirror_checkpoint(&self, sealed: &Sealed) {
        if let (Some(mirror), Some(cp)) = (&self.mirror, &sealed.checkpoint) {
            // As in the writer: the checkpoint is durable in the database;
            // a mirror failure weakens truncation evidence, loses no event.
            if let Err(e) = mirror.append_now(cp) {
                tracing::warn!(error = %e, "audit checkpoint mirror write failed");
            }
        }
    }
}
