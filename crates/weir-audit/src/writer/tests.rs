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
    let commits = Arc::new(AtomicUsize::new(0));
    let target = Arc::new(MemSync {
        stored: Arc::clone(&events),
        durable: std::sync::atomic::AtomicU64::new(0),
        fail: std::sync::atomic::AtomicBool::new(false),
        syncs: AtomicUsize::new(0),
    });
    let store = MemStore {
        head: Head::empty(Utc::now().timestamp_micros()),
        events,
        commits: Arc::clone(&commits),
        fail_commit: None,
        sync: Some(Arc::clone(&target) as _),
    };
    let sealer = Sealer::new(
        crate::event::EventFormat::V2,
        ChainId::parse("w").unwrap(),
        Arc::new(CheckpointSigner::generate().unwrap()),
        CheckpointPolicy::default(),
    );
    let writer = Writer::spawn(store, sealer, None, 64, 1024, Duration::ZERO);
    (writer, target, commits)
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
