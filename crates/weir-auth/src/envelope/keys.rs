//! The HMAC-SHA256 secrets that sign task envelopes, stored on disk.
//!
//! Layout: `<state_dir>/keys/hmac/hmac-keys.json` (directory 0700, file
//! 0600), one file so that a reader sees the whole set before or after a
//! rotation, never a mix:
//!
//! ```json
//! {"version": 1, "active": "<kid>", "keys": [
//!   {"kid": "<kid>", "secret": "<base64url>", "created_at": 1700000000,
//!    "retire_after": null}, ...]}
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::kid::Kid;
use crate::private_file::{decode_stored_secret, ensure_private_dir, read_private, write_private};
use crate::secret::SecretBytes;

/// File name of the envelope key set under `<state_dir>/keys/hmac/`.
pub const HMAC_KEYS_FILE: &str = "hmac-keys.json";

const VERSION: u32 = 1;
/// Most keys held (active + previous); the oldest previous keys are dropped
/// early only if an operator rotates more often than this per grace period.
const MAX_KEYS: usize = 64;
/// Length of a generated secret: 256 bits, the HMAC-SHA256 block-size-safe
/// minimum.
const SECRET_BYTES: usize = 32;
/// Random bytes in a generated key id (base64url: 22 characters).
const KID_RANDOM_BYTES: usize = 16;
/// What a worker is told when the keys are not there.
const MISSING: &str = "envelope keys not found; the coordinator creates them on first use \
                       (`weir run --queue ...` or `weir keys rotate --hmac` with this state \
                       directory); workers never create keys";

/// One secret and its id.
#[derive(Clone)]
struct HmacKey {
    kid: Kid,
    secret: SecretBytes,
    created_at: i64,
    /// `None` for the active key; otherwise the last second it verifies.
    retire_after: Option<i64>,
}

/// The envelope keys: one active HMAC-SHA256 secret that signs, plus
/// verify-only previous secrets, each kept until its `retire_after`.
///
/// # Guarantees
///
/// - Secrets are 32 bytes from the operating system (`getrandom`); a file
///   holding a shorter one is refused. Key ids (`hmac-` + 22 base64url
///   characters) are random, independent of the secret.
/// - The file is created 0600 in a 0700 directory through a temporary file
///   and an atomic rename; loading refuses a file or directory accessible to
///   group or others, a symlink, or anything but a regular file.
/// - [`rotate`](Self::rotate) keeps the old key verify-only for the given
///   grace period and forgets keys whose grace has ended.
/// - Secrets are zeroized on drop (including the serialized file buffer);
///   `Debug` shows key ids and times, never a secret.
///
/// # Security
///
/// HMAC is symmetric: whoever can read this file can forge envelopes. Only
/// the coordinator and the workers should be able to read it.
///
/// # Non-goals
///
/// No locking against two processes rotating the same file at once: one
/// process (the coordinator) owns the key set.
#[derive(Clone)]
pub struct HmacKeySet {
    dir: PathBuf,
    active: HmacKey,
    previous: Vec<HmacKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSet {
    version: u32,
    active: String,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    kid: String,
    /// base64url of the secret; zeroized on drop.
    secret: String,
    created_at: i64,
    retire_after: Option<i64>,
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl HmacKeySet {
    /// Loads `<state_dir>/keys/hmac/hmac-keys.json`, creating the directory
    /// and a first key if there is none, and forgetting (in memory and on
    /// disk) previous keys whose `retire_after` is before `now`. For the
    /// coordinator.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::InsecurePermissions`] (file or directory
    /// accessible beyond its owner, symlink), [`Error::InvalidKeyStore`]
    /// (malformed, weak secret, ...) or [`Error::Random`].
    pub fn open(state_dir: &Path, now: i64) -> Result<Self> {
        let dir = key_dir(state_dir);
        ensure_private_dir(&dir)?;
        let path = dir.join(HMAC_KEYS_FILE);
        // `symlink_metadata`, not `exists`: a dangling symlink is not "no
        // file" but a file to refuse.
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let set = Self {
                    dir,
                    active: generate(now)?,
                    previous: Vec::new(),
                };
                set.store()?;
                return Ok(set);
            }
            Err(e) => return Err(Error::io(&path, e)),
            Ok(_) => {}
        }
        let mut set = Self::read(&dir)?;
        if set.prune(now) {
            set.store()?;
        }
        Ok(set)
    }

    /// Loads the key set like [`open`](Self::open) but never creates or
    /// writes anything: keys past their `retire_after` are forgotten in
    /// memory only. For workers, which may not be able to write the
    /// directory.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKeyStore`] saying that the keys are missing and that
    /// the coordinator (`weir serve`) creates them, if the directory or file
    /// does not exist; otherwise as [`open`](Self::open).
    pub fn open_existing(state_dir: &Path, now: i64) -> Result<Self> {
        let mut set = Self::read(&key_dir(state_dir))?;
        set.prune(now);
        Ok(set)
    }

    /// Reads the set in `dir` as it is, without pruning or writing.
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(HMAC_KEYS_FILE);
        for p in [dir, path.as_path()] {
            match std::fs::symlink_metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::key_store(p, MISSING));
                }
                Err(e) => return Err(Error::io(p, e)),
                Ok(_) => {}
            }
        }
        // The directory exists, so this only checks its permissions.
        ensure_private_dir(dir)?;
        load(dir, &path)
    }

    /// Makes a fresh key active, keeps the old one verify-only until
    /// `now + grace`, and forgets keys whose `retire_after` is before
    /// `now`. Returns the new active key id.
    ///
    /// `grace` should be at least the longest envelope lifetime plus the
    /// opener's leeway (see [`DEFAULT_ENVELOPE_GRACE`](crate::envelope::DEFAULT_ENVELOPE_GRACE)):
    /// an envelope in flight whose key is gone is refused as
    /// [`UnknownKid`](crate::envelope::EnvelopeError::UnknownKid).
    ///
    /// Running [`EnvelopeKeys`](crate::envelope::EnvelopeKeys) pick the new
    /// key up on their next reload.
    ///
    /// # Errors
    ///
    /// [`Error::Random`], [`Error::Io`] or [`Error::InsecurePermissions`].
    /// On error neither this value nor the file has changed.
    pub fn rotate(&mut self, now: i64, grace: Duration) -> Result<Kid> {
        ensure_private_dir(&self.dir)?;
        let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let mut next = self.clone();
        let mut old = std::mem::replace(&mut next.active, generate(now)?);
        old.retire_after = Some(now.saturating_add(grace));
        next.previous.push(old);
        next.prune(now);
        next.store()?;
        *self = next;
        Ok(self.active.kid.clone())
    }

    /// The id of the key that signs new envelopes.
    #[must_use]
    pub fn active_kid(&self) -> &Kid {
        &self.active.kid
    }

    /// Every key id held, the active one first.
    pub fn kids(&self) -> impl Iterator<Item = &Kid> {
        std::iter::once(&self.active.kid).chain(self.previous.iter().map(|k| &k.kid))
    }

    /// The verify-only keys with their `retire_after` (Unix seconds).
    pub fn previous(&self) -> impl Iterator<Item = (&Kid, i64)> {
        self.previous
            .iter()
            .filter_map(|k| k.retire_after.map(|t| (&k.kid, t)))
    }

    /// The directory holding the key file.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The active key id and secret.
    pub(crate) fn signing_key(&self) -> (&Kid, &SecretBytes) {
        (&self.active.kid, &self.active.secret)
    }

    /// The secret for `kid` if it verifies at `now`: the active key, or a
    /// previous key whose `retire_after` has not passed.
    pub(crate) fn verifying_key(&self, kid: &Kid, now: i64) -> Option<&SecretBytes> {
        std::iter::once(&self.active)
            .chain(&self.previous)
            .find(|k| k.kid == *kid)
            .filter(|k| k.retire_after.is_none_or(|t| now <= t))
            .map(|k| &k.secret)
    }

    /// Whether `other` holds the same keys, secrets and times.
    pub(crate) fn same_keys(&self, other: &Self) -> bool {
        let all = |s: &Self| -> Vec<HmacKey> {
            std::iter::once(&s.active)
                .chain(&s.previous)
                .cloned()
                .collect()
        };
        let (a, b) = (all(self), all(other));
        a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| {
                x.kid == y.kid
                    && x.retire_after == y.retire_after
                    && x.created_at == y.created_at
                    && x.secret.ct_eq(&y.secret)
            })
    }

    /// Drops previous keys whose `retire_after` is before `now`, and the
    /// oldest beyond [`MAX_KEYS`]; returns whether any was dropped.
    fn prune(&mut self, now: i64) -> bool {
        let before = self.previous.len();
        self.previous
            .retain(|k| k.retire_after.is_some_and(|t| now <= t));
        self.previous
            .sort_by_key(|k| std::cmp::Reverse(k.retire_after));
        self.previous.truncate(MAX_KEYS - 1);
        self.previous.len() != before
    }

    fn store(&self) -> Result<()> {
        let stored = |k: &HmacKey| StoredKey {
            kid: k.kid.as_str().to_owned(),
            secret: URL_SAFE_NO_PAD.encode(k.secret.expose()),
            created_at: k.created_at,
            retire_after: k.retire_after,
        };
        let set = StoredSet {
            version: VERSION,
            active: self.active.kid.as_str().to_owned(),
            keys: std::iter::once(&self.active)
                .chain(&self.previous)
                .map(stored)
                .collect(),
        };
        // Sized up front so the buffer holding secrets is not reallocated
        // (and left behind unzeroized) while it is written.
        let mut bytes = Zeroizing::new(Vec::with_capacity(256 * (set.keys.len() + 1)));
        serde_json::to_writer_pretty(&mut *bytes, &set).map_err(|_| Error::Internal {
            reason: "envelope key serialization failed",
        })?;
        write_private(&self.dir, HMAC_KEYS_FILE, &bytes)
    }
}

impl fmt::Debug for HmacKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKeySet")
            .field("dir", &self.dir)
            .field("active", &self.active.kid)
            .field("previous", &self.previous().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn key_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("keys").join("hmac")
}

fn generate(now: i64) -> Result<HmacKey> {
    let mut secret = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|_| Error::Random)?;
    let mut id = [0u8; KID_RANDOM_BYTES];
    getrandom::fill(&mut id).map_err(|_| Error::Random)?;
    Ok(HmacKey {
        kid: Kid::parse(&format!("hmac-{}", URL_SAFE_NO_PAD.encode(id)))?,
        secret: SecretBytes::new(secret),
        created_at: now,
        retire_after: None,
    })
}

fn load(dir: &Path, path: &Path) -> Result<HmacKeySet> {
    let raw = Zeroizing::new(read_private(path)?);
    let set: StoredSet = serde_json::from_slice(&raw).map_err(|_| {
        Error::key_store(
            path,
            "envelope key file is not valid JSON of the expected shape",
        )
    })?;
    if set.version != VERSION {
        return Err(Error::key_store(
            path,
            "unsupported envelope key file version",
        ));
    }
    if set.keys.is_empty() || set.keys.len() > MAX_KEYS {
        return Err(Error::key_store(
            path,
            "envelope key file must hold 1 to 64 keys",
        ));
    }
    let mut active = None;
    let mut previous = Vec::new();
    for stored in &set.keys {
        let key = decode_key(stored, path)?;
        match (key.kid.as_str() == set.active, key.retire_after) {
            (true, None) if active.is_none() => active = Some(key),
            (false, Some(_)) => previous.push(key),
            _ => {
                return Err(Error::key_store(
                    path,
                    "exactly the active key must lack retire_after",
                ));
            }
        }
    }
    let active = active.ok_or_else(|| Error::key_store(path, "active key not listed"))?;
    let mut kids: Vec<&Kid> = std::iter::once(&active.kid)
        .chain(previous.iter().map(|k| &k.kid))
        .collect();
    kids.sort();
    if kids.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(Error::key_store(path, "kid listed twice"));
    }
    Ok(HmacKeySet {
        dir: dir.to_path_buf(),
        active,
        previous,
    })
}

fn decode_key(stored: &StoredKey, path: &Path) -> Result<HmacKey> {
    let kid = Kid::parse(&stored.kid)
        .map_err(|_| Error::key_store(path, "invalid kid in envelope key file"))?;
    let secret = decode_stored_secret(&stored.secret, path, SECRET_BYTES)?;
    Ok(HmacKey {
        kid,
        secret,
        created_at: stored.created_at,
        retire_after: stored.retire_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn file(state: &Path) -> PathBuf {
        key_dir(state).join(HMAC_KEYS_FILE)
    }

    fn edit(state: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let path = file(state);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        fs::write(&path, v.to_string()).unwrap();
    }

    #[test]
    fn open_creates_and_reloads_the_same_key() {
        let state = tempfile::tempdir().unwrap();
        let set = HmacKeySet::open(state.path(), 100).unwrap();
        let again = HmacKeySet::open(state.path(), 200).unwrap();
        assert!(set.same_keys(&again));
        assert_eq!(set.signing_key().1.len(), 32);
        assert!(set.active_kid().as_str().starts_with("hmac-"));
        assert_eq!(set.active_kid().as_str().len(), 27);
        let existing = HmacKeySet::open_existing(state.path(), 300).unwrap();
        assert!(set.same_keys(&existing));
    }

    #[test]
    fn open_existing_never_creates_and_says_who_does() {
        let state = tempfile::tempdir().unwrap();
        let err = HmacKeySet::open_existing(state.path(), 0).unwrap_err();
        assert!(err.to_string().contains("weir keys rotate --hmac"), "{err}");
        assert!(!key_dir(state.path()).exists(), "created the directory");
        ensure_private_dir(&key_dir(state.path())).unwrap();
        let err = HmacKeySet::open_existing(state.path(), 0).unwrap_err();
        assert!(matches!(err, Error::InvalidKeyStore { .. }), "{err}");
        assert!(!file(state.path()).exists(), "created the file");
    }

    #[test]
    fn refuses_wider_permissions_and_symlinks() {
        let state = tempfile::tempdir().unwrap();
        HmacKeySet::open(state.path(), 0).unwrap();
        let path = file(state.path());
        for bad in [0o640, 0o604, 0o644, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
            assert!(matches!(
                HmacKeySet::open_existing(state.path(), 0),
                Err(Error::InsecurePermissions { .. })
            ));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let elsewhere = state.path().join("elsewhere.json");
        fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(matches!(
            HmacKeySet::open(state.path(), 0),
            Err(Error::InsecurePermissions { .. })
        ));
        fs::remove_file(&path).unwrap();
        fs::rename(&elsewhere, &path).unwrap();
        fs::set_permissions(key_dir(state.path()), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            HmacKeySet::open_existing(state.path(), 0),
            Err(Error::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn refuses_weak_or_inconsistent_files() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit); 7] = [
            ("short secret", |v| v["keys"][0]["secret"] = "AAAA".into()),
            ("not base64url", |v| v["keys"][0]["secret"] = "!!".into()),
            ("bad kid", |v| v["keys"][0]["kid"] = "../x".into()),
            ("no active", |v| v["active"] = "other".into()),
            ("active retired", |v| {
                v["keys"][0]["retire_after"] = 5.into()
            }),
            ("unknown field", |v| v["extra"] = 1.into()),
            ("other version", |v| v["version"] = 2.into()),
        ];
        for (name, f) in cases {
            let state = tempfile::tempdir().unwrap();
            HmacKeySet::open(state.path(), 0).unwrap();
            edit(state.path(), f);
            let err = HmacKeySet::open_existing(state.path(), 0).unwrap_err();
            assert!(
                matches!(err, Error::InvalidKeyStore { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn refuses_duplicate_kid() {
        let state = tempfile::tempdir().unwrap();
        let mut set = HmacKeySet::open(state.path(), 0).unwrap();
        set.rotate(10, Duration::from_secs(100)).unwrap();
        edit(state.path(), |v| {
            v["keys"][1]["kid"] = v["keys"][0]["kid"].clone()
        });
        assert!(matches!(
            HmacKeySet::open_existing(state.path(), 10),
            Err(Error::InvalidKeyStore { .. })
        ));
    }

    #[test]
    fn rotation_keeps_the_old_key_for_the_grace_then_forgets_it() {
        let state = tempfile::tempdir().unwrap();
        let mut set = HmacKeySet::open(state.path(), 0).unwrap();
        let first = set.active_kid().clone();
        let second = set.rotate(10, Duration::from_secs(100)).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            set.kids().cloned().collect::<Vec<_>>(),
            [second.clone(), first.clone()]
        );
        assert_eq!(
            set.previous().collect::<Vec<_>>(),
            [(&first, 110)],
            "retire_after = now + grace"
        );
        assert!(set.verifying_key(&first, 110).is_some());
        assert!(set.verifying_key(&first, 111).is_none(), "past its grace");
        let kept = HmacKeySet::open_existing(state.path(), 110).unwrap();
        assert_eq!(kept.kids().count(), 2);
        let pruned = HmacKeySet::open_existing(state.path(), 111).unwrap();
        assert_eq!(pruned.kids().cloned().collect::<Vec<_>>(), [second]);
        // open_existing pruned in memory only; open prunes the file too.
        assert!(
            fs::read_to_string(file(state.path()))
                .unwrap()
                .contains(first.as_str())
        );
        HmacKeySet::open(state.path(), 111).unwrap();
        assert!(
            !fs::read_to_string(file(state.path()))
                .unwrap()
                .contains(first.as_str())
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let state = tempfile::tempdir().unwrap();
        let set = HmacKeySet::open(state.path(), 0).unwrap();
        let secret = set.signing_key().1.expose().to_vec();
        let shown = format!("{set:?}");
        assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(&secret)));
        assert!(!shown.contains(&format!("{secret:?}")));
        assert!(shown.contains(set.active_kid().as_str()));
    }
}
