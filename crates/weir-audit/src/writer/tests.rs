//! The writer loop, gathering and the sync stage, against in-memory stores.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Utc;

use super::*;
use crate::chain_id::ChainId;
use crate::checkpoint::CheckpointPolicy;
use crate::event::{Action, Decision, Origin};
use crate::sealer::Head;
use crate::signer::CheckpointSigner;

/// An in-memory store that records batch sizes and can fail a batch.
struct MemStore {
    head: Head,
    events: Arc<std::sync::Mutex<Vec<AuditEvent>>>,
    commits: Arc<AtomicUsize>,
    /// Commits that carried events (the checkpoint timer also commits
    /// empty batches, at start and every interval).
    batches: Arc<AtomicUsize>,
    fail_commit: Option<usize>,
    sync: Option<Arc<dyn sync::SyncTarget>>,
}

#[async_trait]
impl Store for MemStore {
    async fn commit(
        &mut self,
        sealer: &Sealer,
        batch: Vec<NewEvent>,
        force: bool,
    ) -> Result<Sealed> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if !batch.is_empty() {
            self.batches.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        if self.fail_commit == Some(n) {
            return Err(Error::Internal { reason: "boom" });
        }
        let sealed = sealer.seal(&self.head, batch, Utc::now(), force)?;
        self.head = sealed.head.clone();
        self.events
            .lock()
            .unwrap()
            .extend(sealed.events.iter().cloned());
        Ok(sealed)
    }

    fn durability(&self) -> Durability {
        match &self.sync {
            Some(target) => Durability::AfterSync(Arc::clone(target)),
            None => Durability::AtCommit,
        }
    }
}

fn writer(
    fail_commit: Option<usize>,
) -> (
    Writer,
    Arc<std::sync::Mutex<Vec<AuditEvent>>>,
    Arc<AtomicUsize>,
) {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let commits = Arc::new(AtomicUsize::new(0));
    let store = MemStore {
        head: Head::empty(Utc::now().timestamp_micros()),
        events: Arc::clone(&events),
        commits: Arc::clone(&commits),
        batches: Arc::default(),
        fail_commit,
        sync: None,
    };
    let sealer = Sealer::new(
        crate::event::EventFormat::V1,
        ChainId::parse("w").unwrap(),
        Arc::new(CheckpointSigner::generate().unwrap()),
        CheckpointPolicy::default(),
    );
    (
        Writer::spawn(store, sealer, None, 64, 1024, GATHER_WINDOW),
        events,
        commits,
    )
}

fn ev() -> NewEvent {
    NewEvent::new("a", Action::Read, Decision::Allow, Origin::Cli)
}

#[tokio::test]
async fn concurrent_appends_share_commits_and_stay_gapless() {
    let (w, stored, commits) = writer(None);
    let results = futures_join(&w, 200).await;
    let mut seqs: Vec<u64> = results.iter().map(|r| r.as_ref().unwrap().seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    assert!(commits.load(Ordering::SeqCst) < 200, "appends were grouped");
    assert_eq!(stored.lock().unwrap().len(), 200);
    w.close().await.unwrap();
    assert!(matches!(w.append(ev()).await, Err(Error::Closed)));
}

fn append_msg() -> Msg {
    Msg::Append(ev(), oneshot::channel().0)
}

/// A batch of one, the last batch held `last`; `late` more appends
/// arrive after `after` (`None`: as soon as the gathering task yields,
/// as an appender on another thread would). Returns the batch size.
async fn gathered(last: usize, late: usize, after: Option<Duration>) -> usize {
    let (tx, mut rx) = mpsc::channel(16);
    let mut batch = Batch::default();
    batch.add(append_msg());
    tokio::spawn(async move {
        if let Some(after) = after {
            tokio::time::sleep(after).await;
        }
        for _ in 0..late {
            let _ = tx.send(append_msg()).await;
        }
    });
    gather(last, 1024, GATHER_WINDOW, &mut batch, &mut rx).await;
    batch.events.len()
}

#[tokio::test(start_paused = true)]
async fn under_load_a_batch_waits_for_the_appenders_of_the_last_one() {
    assert_eq!(gathered(3, 2, None).await, 3);
    // Whatever is queued when it wakes comes along too.
    assert_eq!(gathered(3, 5, None).await, 6);
}

#[tokio::test(start_paused = true)]
async fn a_batch_never_waits_longer_than_the_window() {
    let start = tokio::time::Instant::now();
    assert_eq!(gathered(3, 2, Some(GATHER_WINDOW * 5)).await, 1);
    assert!(start.elapsed() < GATHER_WINDOW * 5, "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn after_a_lone_append_nothing_waits() {
    let start = tokio::time::Instant::now();
    assert_eq!(gathered(1, 2, None).await, 1);
    assert_eq!(gathered(0, 2, None).await, 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_lone_appender_is_committed_without_waiting_for_others() {
    let (w, stored, _) = writer(None);
    w.append(ev()).await.unwrap();
    // From here on the last batch held one event: no gathering wait.
    let start = tokio::time::Instant::now();
    for _ in 0..5 {
        w.append(ev()).await.unwrap();
    }
    let took = start.elapsed();
    assert_eq!(stored.lock().unwrap().len(), 6);
    // Each commit of the test store takes 2 ms of virtual time (and a
    // checkpoint commit falls in between): had each append waited for
    // company, five would take at least 5 x (2 ms + GATHER_WINDOW).
    assert!(
        took < (Duration::from_millis(2) + GATHER_WINDOW) * 5,
        "five lone appends took {took:?}"
    );
}

#[tokio::test]
async fn failed_batch_fails_every_waiter_and_writes_nothing() {
    let (w, stored, _) = writer(Some(1));
    let err = w.append(ev()).await.unwrap_err();
    assert!(matches!(err, Error::CommitFailed { .. }));
    assert!(stored.lock().unwrap().is_empty());
    assert_eq!(
        w.append(ev()).await.unwrap().seq,
        1,
        "no gap after a failure"
    );
}

#[tokio::test]
async fn invalid_event_is_refused_before_queueing() {
    let (w, _, commits) = writer(None);
    let bad = NewEvent::new("", Action::Read, Decision::Allow, Origin::Cli);
    assert!(matches!(
        w.append(bad).await,
        Err(Error::InvalidEvent { .. })
    ));
    assert_eq!(commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn checkpoint_now_covers_the_tail() {
    let (w, _, _) = writer(None);
    let e = w.append(ev()).await.unwrap();
    let cp = w.checkpoint_now().await.unwrap().unwrap();
    assert_eq!((cp.seq, cp.hash), (e.seq, e.hash));
    assert!(w.checkpoint_now().await.unwrap().is_none());
}

async fn futures_join(w: &Writer, n: usize) -> Vec<Result<AuditEvent>> {
    futures::future::join_all((0..n).map(|_| w.append(ev()))).await
}

/// A sync target over a [`MemStore`]'s events: each sync notes how many
/// events were stored when it began and, once done, marks them durable.
struct MemSync {
    stored: Arc<std::sync::Mutex<Vec<AuditEvent>>>,
    durable: std::sync::atomic::AtomicU64,
    fail: std::sync::atomic::AtomicBool,
    syncs: AtomicUsize,
}

impl sync::SyncTarget for MemSync {
    fn path(&self) -> &std::path::Path {
        std::path::Path::new("mem-wal")
    }

    fn sync(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        let began_with = self.stored.lock().unwrap().len() as u64;
        std::thread::sleep(Duration::from_millis(3));
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("disk gone"));
        }
        self.durable.fetch_max(began_with, Ordering::SeqCst);
        Ok(())
    }
}

fn synced_writer() -> (Writer, Arc<MemSync>, Arc<AtomicUsize>) {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let target = Arc::new(MemSync {
        stored: Arc::clone(&events),
        durable: std::sync::atomic::AtomicU64::new(0),
        fail: std::sync::atomic::AtomicBool::new(false),
        syncs: AtomicUsize::new(0),
    });
    let (writer, commits, _) =
        writer_syncing_to(Arc::clone(&target) as _, events, 64, Duration::ZERO);
    (writer, target, commits)
}

/// A writer over a [`MemStore`] whose commits `target` makes durable,
/// waiting up to `window` for a pending sync, with its count of commits
/// and of commits that carried events.
fn writer_syncing_to(
    target: Arc<dyn sync::SyncTarget>,
    events: Arc<std::sync::Mutex<Vec<AuditEvent>>>,
    max_batch: usize,
    window: Duration,
) -> (Writer, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let commits = Arc::new(AtomicUsize::new(0));
    let batches = Arc::new(AtomicUsize::new(0));
    let store = MemStore {
        head: Head::empty(Utc::now().timestamp_micros()),
        events,
        commits: Arc::clone(&commits),
        batches: Arc::clone(&batches),
        fail_commit: None,
        sync: Some(target),
    };
    let sealer = Sealer::new(
        crate::event::EventFormat::V2,
        ChainId::parse("w").unwrap(),
        Arc::new(CheckpointSigner::generate().unwrap()),
        CheckpointPolicy::default(),
    );
    let writer = Writer::spawn(store, sealer, None, max_batch, 1024, window);
    (writer, commits, batches)
}

/// A sync target whose syncs block until the test opens its gate (or
/// panic, if told to).
#[derive(Default)]
struct GatedSync {
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    panic: std::sync::atomic::AtomicBool,
    syncs: AtomicUsize,
}

impl GatedSync {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn close(&self) {
        *self.open.lock().unwrap() = false;
    }
}

impl sync::SyncTarget for GatedSync {
    fn path(&self) -> &std::path::Path {
        std::path::Path::new("gated-wal")
    }

    fn sync(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        assert!(!self.panic.load(Ordering::SeqCst), "sync target panics");
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        Ok(())
    }
}

/// Polls `done` every millisecond for up to 10 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A window no test waits out.
const LONG: Duration = Duration::from_secs(60);

/// Commits one append and lets every earlier commit (the checkpoint
/// timer's first, empty one) and its sync finish, then closes the gate and
/// starts an append whose sync will block; returns once it is committed.
async fn block_a_sync(
    w: &Arc<Writer>,
    gate: &GatedSync,
    commits: &AtomicUsize,
    batches: &AtomicUsize,
) -> tokio::task::JoinHandle<Result<AuditEvent>> {
    gate.open();
    assert_eq!(w.append(ev()).await.unwrap().seq, 1);
    eventually("the timer's first commit", || {
        commits.load(Ordering::SeqCst) >= 2
    })
    .await;
    w.checkpoint_now().await.unwrap();
    gate.close();
    let first = tokio::spawn({
        let w = Arc::clone(w);
        async move { w.append(ev()).await }
    });
    // Its sync is pending from the moment its commit returns.
    eventually("the blocked batch is committed", || {
        batches.load(Ordering::SeqCst) == 2
    })
    .await;
    first
}

/// Starts `n` appends on `w`.
fn spawn_appends(w: &Arc<Writer>, n: usize) -> Vec<tokio::task::JoinHandle<Result<AuditEvent>>> {
    (0..n)
        .map(|_| {
            let w = Arc::clone(w);
            tokio::spawn(async move { w.append(ev()).await })
        })
        .collect()
}

/// A writer with one batch blocked in its sync and five appends started
/// after it.
struct BlockedSync {
    w: Arc<Writer>,
    gate: Arc<GatedSync>,
    batches: Arc<AtomicUsize>,
    first: tokio::task::JoinHandle<Result<AuditEvent>>,
    later: Vec<tokio::task::JoinHandle<Result<AuditEvent>>>,
}

impl BlockedSync {
    /// Blocks a sync of a writer waiting up to `window` for it, then
    /// starts the later appends.
    async fn start(window: Duration) -> Self {
        let gate = Arc::new(GatedSync::default());
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (w, commits, batches) = writer_syncing_to(Arc::clone(&gate) as _, events, 64, window);
        let w = Arc::new(w);
        let first = block_a_sync(&w, &gate, &commits, &batches).await;
        let later = spawn_appends(&w, 5);
        Self {
            w,
            gate,
            batches,
            first,
            later,
        }
    }

    /// Opens the gate; every append succeeds; closes the writer.
    async fn release(self) {
        self.gate.open();
        self.first.await.unwrap().unwrap();
        for append in self.later {
            append.await.unwrap().unwrap();
        }
        self.w.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_window_appends_commit_while_a_sync_runs() {
    let b = BlockedSync::start(Duration::ZERO).await;
    eventually("the later appends are committed", || {
        b.batches.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert!(!b.first.is_finished(), "answered before its sync");
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_bounds_the_wait_for_a_stalled_sync() {
    let b = BlockedSync::start(Duration::from_millis(20)).await;
    // The sync stays blocked; the window ends the wait.
    eventually("the later appends are committed", || {
        b.batches.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert!(
        b.later.iter().all(|a| !a.is_finished()),
        "answered unsynced"
    );
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_that_queue_during_a_sync_are_committed_together_after_it() {
    let BlockedSync {
        w,
        gate,
        batches,
        first,
        later,
    } = BlockedSync::start(LONG).await;
    // Without the wait, these would commit (2 ms each here) while the
    // first batch's sync is still blocked.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(batches.load(Ordering::SeqCst), 2, "committed during a sync");
    gate.open();
    assert_eq!(first.await.unwrap().unwrap().seq, 2);
    let mut seqs = Vec::new();
    for append in later {
        seqs.push(append.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (3..=7).collect::<Vec<_>>());
    assert_eq!(
        batches.load(Ordering::SeqCst),
        3,
        "one commit after the sync"
    );
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_is_committed_without_waiting_for_the_sync() {
    let gate = Arc::new(GatedSync::default());
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (w, _, batches) = writer_syncing_to(Arc::clone(&gate) as _, Arc::clone(&events), 4, LONG);
    let w = Arc::new(w);
    let appends: Vec<_> = (0..12)
        .map(|_| {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.append(ev()).await })
        })
        .collect();
    // Batches of 4 are full: all 12 events are committed while the first
    // sync is still blocked, and none is answered before a sync.
    eventually("every event is committed", || {
        events.lock().unwrap().len() == 12
    })
    .await;
    assert!(batches.load(Ordering::SeqCst) >= 3);
    assert!(
        appends.iter().all(|a| !a.is_finished()),
        "answered unsynced"
    );
    gate.open();
    for append in appends {
        append.await.unwrap().unwrap();
    }
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_stage_that_panics_fails_appends_instead_of_hanging() {
    let gate = Arc::new(GatedSync::default());
    gate.open();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Only the stage's ending can wake the waiting writer within the
    // limit below, not the window.
    let (w, commits, _) = writer_syncing_to(Arc::clone(&gate) as _, events, 64, LONG);
    w.append(ev()).await.unwrap();
    gate.panic.store(true, Ordering::SeqCst);
    let limit = Duration::from_secs(10);
    for _ in 0..3 {
        let answer = tokio::time::timeout(limit, w.append(ev())).await;
        let err = answer.expect("an append hung").unwrap_err();
        assert!(
            matches!(err, Error::Closed | Error::SyncFailed { .. }),
            "{err:?}"
        );
    }
    // Fail stop: nothing is committed once the stage is gone.
    let committed = commits.load(Ordering::SeqCst);
    let err = tokio::time::timeout(limit, w.append(ev()))
        .await
        .expect("an append hung")
        .unwrap_err();
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    assert_eq!(commits.load(Ordering::SeqCst), committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_answered_only_once_a_later_sync_covers_it() {
    let (w, target, commits) = synced_writer();
    let appends = (0..300).map(|_| async {
        let event = w.append(ev()).await.unwrap();
        // The sync that made it durable began after it was stored.
        assert!(
            event.seq <= target.durable.load(Ordering::SeqCst),
            "seq {} answered before it was synced",
            event.seq
        );
        event.seq
    });
    let mut seqs = futures::future::join_all(appends).await;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    let syncs = target.syncs.load(Ordering::SeqCst);
    assert!(
        syncs <= commits.load(Ordering::SeqCst),
        "one sync covers one or more commits"
    );
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_its_appends_and_stops_all_later_commits() {
    let (w, target, commits) = synced_writer();
    w.append(ev()).await.unwrap();
    target.fail.store(true, Ordering::SeqCst);
    let err = w.append(ev()).await.unwrap_err();
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    // Even once the disk is back, nothing more is committed: after a
    // failed fsync only a restart can tell what is stored.
    target.fail.store(false, Ordering::SeqCst);
    let committed = commits.load(Ordering::SeqCst);
    for _ in 0..3 {
        let err = w.append(ev()).await.unwrap_err();
        assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    }
    assert!(matches!(
        w.checkpoint_now().await,
        Err(Error::SyncFailed { .. })
    ));
    assert_eq!(commits.load(Ordering::SeqCst), committed);
}
