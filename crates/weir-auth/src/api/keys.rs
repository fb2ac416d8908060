//! The HS256 secrets that sign weir's own API tokens, stored on disk.
//!
//! Layout: `<state_dir>/keys/api/api-keys.json` (directory 0700, file 0600):
//!
//! ```json
//! {"version": 1, "active": "<kid>", "keys": [
//!   {"kid": "<kid>", "alg": "HS256", "secret": "<base64url>",
//!    "created_at": 1700000000, "retire_after": null}, ...]}
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::api::minter::ApiMinter;
use crate::api::{API_KEY_RETENTION, API_KEYS_FILE, MIN_HS256_SECRET_BYTES};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::kid::Kid;
use crate::private_file::{decode_stored_secret, ensure_private_dir, read_private, write_private};
use crate::secret::SecretBytes;

const VERSION: u32 = 1;
/// Most keys held (active + previous); older previous keys are dropped
/// early only if an operator rotates more often than this per retention.
const MAX_KEYS: usize = 64;
/// Random bytes in a generated key id (base64url: 22 characters).
const KID_RANDOM_BYTES: usize = 16;

/// One HS256 secret and its id.
#[derive(Clone)]
struct HmacKey {
    kid: Kid,
    secret: SecretBytes,
    created_at: i64,
}

/// A rotated-out key, trusted for verification until `retire_after`.
#[derive(Clone)]
struct RetiredKey {
    key: HmacKey,
    retire_after: i64,
}

/// weir's API-token secrets: one active HS256 key that signs, plus previous
/// keys that only verify, each kept until every token it signed has expired.
///
/// # Guarantees
///
/// - Every secret is at least [`MIN_HS256_SECRET_BYTES`] (256 bits); weir
///   generates 32 bytes from the operating system (`getrandom`). A file
///   holding a shorter secret is refused.
/// - Key ids are random, independent of the secret.
/// - The file is created 0600 in a 0700 directory through a temporary file
///   and an atomic rename; loading refuses a file or directory accessible to
///   group or others, a symlink, or anything but a regular file.
/// - A rotated-out key verifies for [`API_KEY_RETENTION`] (the longest API
///   token lifetime plus the largest leeway), then is forgotten.
/// - `Debug` shows key ids and times, never a secret.
///
/// # Security
///
/// HS256 is symmetric: whoever holds these secrets can mint API tokens. Only
/// the weir server should load them.
///
/// # Non-goals
///
/// No locking against two processes rotating the same file at once.
#[derive(Clone)]
pub struct ApiKeySet {
    active: HmacKey,
    previous: Vec<RetiredKey>,
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
    alg: String,
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

impl ApiKeySet {
    /// Loads `<state_dir>/keys/api/api-keys.json`, or creates it with a fresh
    /// key; forgets previous keys whose retention has ended. Uses the system
    /// clock.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::InsecurePermissions`] (file or directory
    /// accessible beyond its owner), [`Error::InvalidKeyStore`] (malformed,
    /// weak secret, ...) or [`Error::Random`].
    pub fn load_or_create(state_dir: &Path) -> Result<Self> {
        Self::load_or_create_at(state_dir, SystemClock.now())
    }

    /// As [`load_or_create`](Self::load_or_create), at Unix time `now`.
    ///
    /// # Errors
    ///
    /// As [`load_or_create`](Self::load_or_create).
    pub fn load_or_create_at(state_dir: &Path, now: i64) -> Result<Self> {
        let dir = key_dir(state_dir);
        ensure_private_dir(&dir)?;
        let path = dir.join(API_KEYS_FILE);
        // `symlink_metadata`, not `exists`: a dangling symlink is not "no
        // file" but a file to refuse.
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let set = Self {
                    active: generate(now)?,
                    previous: Vec::new(),
                };
                set.store(&dir)?;
                return Ok(set);
            }
            Err(e) => return Err(Error::io(&path, e)),
            Ok(_) => {}
        }
        let mut set = load(&path)?;
        if set.prune(now) {
            set.store(&dir)?;
        }
        Ok(set)
    }

    /// Reads `<state_dir>/keys/api/api-keys.json` as it is, never creating
    /// or writing it, leaving out previous keys past retention: for a running
    /// server picking up a rotation. Uses the system clock.
    ///
    /// # Errors
    ///
    /// As [`load_or_create`](Self::load_or_create); a missing file is an
    /// [`Error::Io`].
    pub fn read(state_dir: &Path) -> Result<Self> {
        Self::read_at(state_dir, SystemClock.now())
    }

    /// As [`read`](Self::read), at Unix time `now`.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub fn read_at(state_dir: &Path, now: i64) -> Result<Self> {
        let mut set = load(&key_dir(state_dir).join(API_KEYS_FILE))?;
        set.prune(now);
        Ok(set)
    }

    /// Makes a fresh key active and keeps the old one for verification for
    /// [`API_KEY_RETENTION`]. Uses the system clock. Verifiers and minters
    /// built before the rotation do not see the change: rebuild them, or
    /// hand the new set to
    /// [`ApiVerifier::reload_api_keys`](crate::api::ApiVerifier::reload_api_keys).
    ///
    /// # Errors
    ///
    /// [`Error::Random`], [`Error::Io`] or [`Error::InsecurePermissions`].
    /// On error neither this value nor the file has changed.
    pub fn rotate(&mut self, state_dir: &Path) -> Result<Kid> {
        self.rotate_at(state_dir, SystemClock.now())
    }

    /// As [`rotate`](Self::rotate), at Unix time `now`.
    ///
    /// # Errors
    ///
    /// As [`rotate`](Self::rotate).
    pub fn rotate_at(&mut self, state_dir: &Path, now: i64) -> Result<Kid> {
        let dir = key_dir(state_dir);
        ensure_private_dir(&dir)?;
        let retain = i64::try_from(API_KEY_RETENTION.as_secs()).unwrap_or(i64::MAX);
        let mut next = self.clone();
        let old = std::mem::replace(&mut next.active, generate(now)?);
        next.previous.push(RetiredKey {
            key: old,
            retire_after: now.saturating_add(retain),
        });
        next.prune(now);
        next.store(&dir)?;
        *self = next;
        Ok(self.active.kid.clone())
    }

    /// A minter signing with the active key, for tokens with `iss = issuer`
    /// and `aud = audience`. Names are checked when minting.
    #[must_use]
    pub fn minter(&self, issuer: &str, audience: &str) -> ApiMinter {
        ApiMinter::new(&self.active.kid, &self.active.secret, issuer, audience)
    }

    /// The id of the key that signs new tokens.
    #[must_use]
    pub fn active_kid(&self) -> &Kid {
        &self.active.kid
    }

    /// Every trusted key id, the active one first.
    pub fn kids(&self) -> impl Iterator<Item = &Kid> {
        self.keys().map(|(kid, _)| kid)
    }

    /// Every trusted key with its secret, the active one first.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (&Kid, &SecretBytes)> {
        std::iter::once(&self.active)
            .chain(self.previous.iter().map(|r| &r.key))
            .map(|k| (&k.kid, &k.secret))
    }

    /// Drops previous keys past retention, and the oldest beyond
    /// [`MAX_KEYS`]; returns whether any was dropped.
    fn prune(&mut self, now: i64) -> bool {
        let before = self.previous.len();
        self.previous.retain(|k| k.retire_after > now);
        self.previous
            .sort_by_key(|k| std::cmp::Reverse(k.retire_after));
        self.previous.truncate(MAX_KEYS - 1);
        self.previous.len() != before
    }

    fn store(&self, dir: &Path) -> Result<()> {
        let stored = |k: &HmacKey, retire_after| StoredKey {
            kid: k.kid.as_str().to_owned(),
            alg: "HS256".to_owned(),
            secret: URL_SAFE_NO_PAD.encode(k.secret.expose()),
            created_at: k.created_at,
            retire_after,
        };
        let mut keys = vec![stored(&self.active, None)];
        keys.extend(
            self.previous
                .iter()
                .map(|r| stored(&r.key, Some(r.retire_after))),
        );
        let set = StoredSet {
            version: VERSION,
            active: self.active.kid.as_str().to_owned(),
            keys,
        };
        // Sized up front so the buffer holding secrets is not reallocated
        // (and left behind unzeroized) while it is written.
        let mut bytes = Zeroizing::new(Vec::with_capacity(256 * (set.keys.len() + 1)));
        serde_json::to_writer_pretty(&mut *bytes, &set).map_err(|_| Error::Internal {
            reason: "API key serialization failed",
        })?;
        write_private(dir, API_KEYS_FILE, &bytes)
    }
}

impl fmt::Debug for ApiKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySet")
            .field("active", &self.active.kid)
            .field(
                "previous",
                &self
                    .previous
                    .iter()
                    .map(|r| (&r.key.kid, r.retire_after))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn key_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("keys").join("api")
}

fn generate(now: i64) -> Result<HmacKey> {
    let mut secret = vec![0u8; MIN_HS256_SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|_| Error::Random)?;
    let mut id = [0u8; KID_RANDOM_BYTES];
    getrandom::fill(&mut id).map_err(|_| Error::Random)?;
    Ok(HmacKey {
        kid: Kid::parse(&format!("api-{}", URL_SAFE_NO_PAD.encode(id)))?,
        secret: SecretBytes::new(secret),
        created_at: now,
    })
}

fn load(path: &Path) -> Result<ApiKeySet> {
    let raw = Zeroizing::new(read_private(path)?);
    let set: StoredSet = serde_json::from_slice(&raw).map_err(|_| {
        Error::key_store(path, "API key file is not valid JSON of the expected shape")
    })?;
    if set.version != VERSION {
        return Err(Error::key_store(path, "unsupported API key file version"));
    }
    if set.keys.is_empty() || set.keys.len() > MAX_KEYS {
        return Err(Error::key_store(
            path,
            "API key file must hold 1 to 64 keys",
        ));
    }
    let mut active = None;
    let mut previous = Vec::new();
    for stored in &set.keys {
        let key = decode_key(stored, path)?;
        let is_active = key.kid.as_str() == set.active;
        match (is_active, stored.retire_after) {
            (true, None) if active.is_none() => active = Some(key),
            (false, Some(retire_after)) => previous.push(RetiredKey { key, retire_after }),
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
        .chain(previous.iter().map(|r| &r.key.kid))
        .collect();
    kids.sort();
    if kids.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(Error::key_store(path, "kid listed twice"));
    }
    Ok(ApiKeySet { active, previous })
}

fn decode_key(stored: &StoredKey, path: &Path) -> Result<HmacKey> {
    let kid = Kid::parse(&stored.kid)
        .map_err(|_| Error::key_store(path, "invalid kid in API key file"))?;
    if stored.alg != "HS256" {
        return Err(Error::key_store(path, "API keys must be bound to HS256"));
    }
    let secret = decode_stored_secret(&stored.secret, path, MIN_HS256_SECRET_BYTES)?;
    Ok(HmacKey {
        kid,
        secret,
        created_at: stored.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn file(state: &Path) -> PathBuf {
        key_dir(state).join(API_KEYS_FILE)
    }

    fn edit(state: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let path = file(state);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        fs::write(&path, v.to_string()).unwrap();
    }

    #[test]
    fn creates_owner_only_file_and_reloads_same_keys() {
        let state = tempfile::tempdir().unwrap();
        let set = ApiKeySet::load_or_create_at(state.path(), 100).unwrap();
        assert_eq!(
            fs::metadata(key_dir(state.path())).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(file(state.path())).unwrap().mode() & 0o777,
            0o600
        );
        let again = ApiKeySet::load_or_create_at(state.path(), 200).unwrap();
        assert_eq!(again.active_kid(), set.active_kid());
        let (_, a) = set.keys().next().unwrap();
        let (_, b) = again.keys().next().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert!(set.active_kid().as_str().starts_with("api-"));
    }

    #[test]
    fn refuses_wider_permissions_and_symlinks() {
        let state = tempfile::tempdir().unwrap();
        ApiKeySet::load_or_create_at(state.path(), 0).unwrap();
        let path = file(state.path());
        for bad in [0o640, 0o604, 0o644, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
            assert!(matches!(
                ApiKeySet::load_or_create_at(state.path(), 0),
                Err(Error::InsecurePermissions { .. })
            ));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let elsewhere = state.path().join("elsewhere.json");
        fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(matches!(
            ApiKeySet::load_or_create_at(state.path(), 0),
            Err(Error::InsecurePermissions { .. })
        ));
        fs::remove_file(&path).unwrap();
        fs::rename(&elsewhere, &path).unwrap();
        fs::set_permissions(key_dir(state.path()), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            ApiKeySet::load_or_create_at(state.path(), 0),
            Err(Error::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn refuses_weak_or_inconsistent_files() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit); 6] = [
            ("short secret", |v| v["keys"][0]["secret"] = "AAAA".into()),
            ("not base64url", |v| v["keys"][0]["secret"] = "!!".into()),
            ("other alg", |v| v["keys"][0]["alg"] = "none".into()),
            ("bad kid", |v| v["keys"][0]["kid"] = "../x".into()),
            ("no active", |v| v["active"] = "other".into()),
            ("unknown field", |v| v["extra"] = 1.into()),
        ];
        for (name, f) in cases {
            let state = tempfile::tempdir().unwrap();
            ApiKeySet::load_or_create_at(state.path(), 0).unwrap();
            edit(state.path(), f);
            let err = ApiKeySet::load_or_create_at(state.path(), 0).unwrap_err();
            assert!(
                matches!(err, Error::InvalidKeyStore { .. }),
                "{name}: {err}"
            );
            assert!(!err.to_string().contains("secret\":"), "{name}");
        }
    }

    #[test]
    fn refuses_duplicate_kid() {
        let state = tempfile::tempdir().unwrap();
        let mut set = ApiKeySet::load_or_create_at(state.path(), 0).unwrap();
        set.rotate_at(state.path(), 10).unwrap();
        edit(state.path(), |v| {
            v["keys"][1]["kid"] = v["keys"][0]["kid"].clone()
        });
        assert!(matches!(
            ApiKeySet::load_or_create_at(state.path(), 10),
            Err(Error::InvalidKeyStore { .. })
        ));
    }

    #[test]
    fn rotation_keeps_old_keys_for_the_retention_then_forgets_them() {
        let state = tempfile::tempdir().unwrap();
        let mut set = ApiKeySet::load_or_create_at(state.path(), 0).unwrap();
        let first = set.active_kid().clone();
        let second = set.rotate_at(state.path(), 10).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            set.kids().cloned().collect::<Vec<_>>(),
            [second.clone(), first]
        );
        let retain = i64::try_from(API_KEY_RETENTION.as_secs()).unwrap();
        let kept = ApiKeySet::load_or_create_at(state.path(), 10 + retain - 1).unwrap();
        assert_eq!(kept.kids().count(), 2);
        let pruned = ApiKeySet::load_or_create_at(state.path(), 10 + retain).unwrap();
        assert_eq!(pruned.kids().cloned().collect::<Vec<_>>(), [second]);
    }

    #[test]
    fn debug_shows_no_secret() {
        let state = tempfile::tempdir().unwrap();
        let set = ApiKeySet::load_or_create_at(state.path(), 0).unwrap();
        let (_, secret) = set.keys().next().unwrap();
        let shown = format!("{set:?}");
        assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(secret.expose())));
        assert!(!shown.contains(&format!("{:?}", secret.expose())));
        assert!(shown.contains(set.active_kid().as_str()));
    }
}
