//! The envelope keys in use by a process, swapped atomically on reload.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::envelope::keys::HmacKeySet;
use crate::error::Result;
use crate::kid::Kid;

/// Least time between two reloads triggered by an unknown key id.
pub const DEFAULT_MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The envelope keys a process uses, shared (`Arc<EnvelopeKeys>`) by its
/// [`Sealer`](crate::envelope::Sealer)s and
/// [`Opener`](crate::envelope::Opener)s and reloadable from disk while they
/// run.
///
/// # Guarantees
///
/// - **No torn reads.** The keys are one immutable snapshot behind an
///   atomic pointer swap: every seal or open uses one consistent set, never
///   a mix of the old and the new file.
/// - **Single-flight reload.** [`reload`](Self::reload) reads the file under
///   a mutex. A caller that had to wait while another read the file skips
///   its own read if that read began after the caller arrived (its result
///   is at least as fresh as the caller's would have been). So N concurrent
///   callers cause one read, or two if a read was already under way when
///   they arrived.
/// - **Bounded miss reloads.** An opener that meets an unknown (well-formed)
///   key id reloads once and looks again, so workers pick up a rotated key
///   without a restart; such reloads happen at most once per
///   [`DEFAULT_MISS_RELOAD_INTERVAL`] (configurable), so a flood of
///   envelopes with made-up key ids costs at most one file read per
///   interval. Concurrent misses wait for the one read and then use it.
/// - Reloading never creates or writes the key file, and a failed reload
///   leaves the keys in use unchanged.
/// - `Debug` shows key ids, never a secret.
///
/// # Limits
///
/// An envelope signed by a key created less than the interval after the
/// previous miss-triggered read can be refused as unknown; callers that
/// rotate often should also call [`reload`](Self::reload) periodically.
/// Reading the file is blocking I/O (one small file), done on the calling
/// thread.
pub struct EnvelopeKeys {
    dir: PathBuf,
    current: ArcSwap<HmacKeySet>,
    reload: Mutex<ReloadState>,
    /// Reads of the key file begun (incremented under `reload`).
    reads: AtomicU64,
    miss_interval: Duration,
    /// Callers that entered `reload`, so a test can line them up.
    #[cfg(test)]
    entered: AtomicU64,
}

#[derive(Default)]
struct ReloadState {
    /// Number (from `reads`) of the last read that completed successfully.
    last_completed: u64,
    /// When the last miss-triggered read began.
    last_miss_read: Option<Instant>,
}

impl EnvelopeKeys {
    /// Serves `set`; reloads re-read the file in `set`'s directory.
    #[must_use]
    pub fn from_set(set: HmacKeySet) -> Self {
        Self {
            dir: set.dir().to_path_buf(),
            current: ArcSwap::from_pointee(set),
            reload: Mutex::new(ReloadState::default()),
            reads: AtomicU64::new(0),
            miss_interval: DEFAULT_MISS_RELOAD_INTERVAL,
            #[cfg(test)]
            entered: AtomicU64::new(0),
        }
    }

    /// Loads the keys of `state_dir` with
    /// [`HmacKeySet::open_existing`] (never creates them): for workers.
    ///
    /// # Errors
    ///
    /// As [`HmacKeySet::open_existing`]; a missing key set is an
    /// [`Error::InvalidKeyStore`](crate::Error::InvalidKeyStore) naming the
    /// command that creates it.
    pub fn load(state_dir: &Path, now: i64) -> Result<Self> {
        let keys = Self::from_set(HmacKeySet::open_existing(state_dir, now)?);
        keys.reads.store(1, Ordering::SeqCst);
        Ok(keys)
    }

    /// Sets the least time between two reloads triggered by an unknown key
    /// id (default [`DEFAULT_MISS_RELOAD_INTERVAL`]).
    #[must_use]
    pub fn with_miss_reload_interval(mut self, interval: Duration) -> Self {
        self.miss_interval = interval;
        self
    }

    /// Re-reads the key file and, if it differs from the keys in use, swaps
    /// it in. Single-flight: see the type's guarantees. Returns whether the
    /// keys in use changed while the call ran (by its own read or by the
    /// concurrent one it relied on).
    ///
    /// # Errors
    ///
    /// As [`HmacKeySet::open_existing`]. The keys in use are then unchanged.
    pub fn reload(&self) -> Result<bool> {
        let ticket = self.reads.load(Ordering::SeqCst);
        let before = self.current.load_full();
        #[cfg(test)]
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut state = self.lock();
        if state.last_completed > ticket {
            return Ok(!Arc::ptr_eq(&before, &self.current.load()));
        }
        self.read_locked(&mut state)
    }

    /// The reload an opener makes on an unknown key id: at most one per
    /// interval; a caller that waited for another's read uses it.
    pub(crate) fn reload_after_miss(&self) -> Result<bool> {
        let mut state = self.lock();
        if state
            .last_miss_read
            .is_some_and(|t| t.elapsed() < self.miss_interval)
        {
            return Ok(false);
        }
        state.last_miss_read = Some(Instant::now());
        self.read_locked(&mut state)
    }

    /// Replaces the keys in use with `set` (e.g. right after the
    /// coordinator rotated it), without reading the file. Later reloads
    /// still read the directory this value was created with.
    pub fn install(&self, set: HmacKeySet) {
        self.current.store(Arc::new(set));
    }

    /// The keys in use: one consistent snapshot.
    pub(crate) fn snapshot(&self) -> Arc<HmacKeySet> {
        self.current.load_full()
    }

    /// The id of the key that signs new envelopes.
    #[must_use]
    pub fn active_kid(&self) -> Kid {
        self.current.load().active_kid().clone()
    }

    /// Every key id in use, the active one first.
    #[must_use]
    pub fn kids(&self) -> Vec<Kid> {
        self.current.load().kids().cloned().collect()
    }

    /// How many times the key file was read (begun), counting the initial
    /// read of [`load`](Self::load): for metrics and tests.
    #[must_use]
    pub fn disk_reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// The directory reloads read.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, ReloadState> {
        // The state is two plain values updated after the read; a panic
        // elsewhere cannot leave it half-written.
        self.reload.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_locked(&self, state: &mut ReloadState) -> Result<bool> {
        let number = self.reads.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        let fresh = HmacKeySet::read(&self.dir)?;
        let changed = !fresh.same_keys(&self.current.load());
        if changed {
            self.current.store(Arc::new(fresh));
        }
        state.last_completed = number;
        Ok(changed)
    }
}

impl fmt::Debug for EnvelopeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeKeys")
            .field("keys", &*self.current.load())
            .field("disk_reads", &self.disk_reads())
            .field("miss_interval", &self.miss_interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_reloads_read_the_file_once() {
        let state = tempfile::tempdir().unwrap();
        let mut set = HmacKeySet::open(state.path(), 0).unwrap();
        let keys = Arc::new(EnvelopeKeys::load(state.path(), 0).unwrap());
        assert_eq!(keys.disk_reads(), 1);
        set.rotate(10, Duration::from_secs(100)).unwrap();

        const N: u64 = 16;
        // Hold the reload lock until every caller is queued behind it, so
        // the test does not depend on thread scheduling.
        let guard = keys.lock();
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let keys = Arc::clone(&keys);
                std::thread::spawn(move || keys.reload().unwrap())
            })
            .collect();
        while keys.entered.load(Ordering::SeqCst) < N {
            std::thread::yield_now();
        }
        drop(guard);
        let changed: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(keys.disk_reads(), 2, "one read for {N} callers");
        assert!(changed.iter().all(|c| *c), "every caller saw the change");
        assert_eq!(keys.active_kid(), *set.active_kid());
        // Nothing changed on disk since: a new call reads, finds no change.
        assert!(!keys.reload().unwrap());
        assert_eq!(keys.disk_reads(), 3);
    }

    #[test]
    fn a_read_already_under_way_does_not_satisfy_a_later_caller() {
        let state = tempfile::tempdir().unwrap();
        HmacKeySet::open(state.path(), 0).unwrap();
        let keys = EnvelopeKeys::load(state.path(), 0).unwrap();
        // Read number 5 began before this caller arrived (its ticket is 5)
        // and has completed: it may predate a rotation the caller wants to
        // see, so the caller reads again.
        keys.reads.store(5, Ordering::SeqCst);
        keys.lock().last_completed = 5;
        assert!(!keys.reload().unwrap());
        assert_eq!(keys.disk_reads(), 6);
    }

    #[test]
    fn miss_reloads_are_rate_limited() {
        let state = tempfile::tempdir().unwrap();
        HmacKeySet::open(state.path(), 0).unwrap();
        let keys = EnvelopeKeys::load(state.path(), 0)
            .unwrap()
            .with_miss_reload_interval(Duration::from_secs(3600));
        keys.reload_after_miss().unwrap();
        keys.reload_after_miss().unwrap();
        keys.reload_after_miss().unwrap();
        assert_eq!(keys.disk_reads(), 2, "initial load + one miss reload");
        let eager = EnvelopeKeys::load(state.path(), 0)
            .unwrap()
            .with_miss_reload_interval(Duration::ZERO);
        eager.reload_after_miss().unwrap();
        eager.reload_after_miss().unwrap();
        assert_eq!(eager.disk_reads(), 3);
    }

    #[test]
    fn a_failed_reload_keeps_the_keys() {
        let state = tempfile::tempdir().unwrap();
        let set = HmacKeySet::open(state.path(), 0).unwrap();
        let keys = EnvelopeKeys::from_set(set.clone());
        assert_eq!(keys.disk_reads(), 0);
        std::fs::remove_file(set.dir().join(crate::envelope::HMAC_KEYS_FILE)).unwrap();
        assert!(keys.reload().is_err());
        assert_eq!(keys.active_kid(), *set.active_kid());
        // A failed read does not count as completed for waiters.
        assert_eq!(keys.lock().last_completed, 0);
    }
}
