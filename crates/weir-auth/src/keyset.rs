//! The Ed25519 key set that signs stage tokens, stored on disk.
//!
//! Layout of `<state_dir>/keys/stage/` (directory mode 0700, files 0600):
//!
//! - `keyset.json`: the manifest: which key is active, the public half of
//!   every key still trusted, and when each previous key may be forgotten;
//! - `<kid>.pem`: the PKCS#8 private key of the active key only. A key's
//!   private half is deleted when it is rotated out.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kid::Kid;
use crate::private_file::{ensure_private_dir, read_private, remove_if_exists, write_private};
use crate::token::{DEFAULT_MAX_LIFETIME, MAX_LEEWAY};
use crate::verifier::{StageVerifier, VerifierConfig};

const MANIFEST: &str = "keyset.json";
const MANIFEST_VERSION: u32 = 1;
/// Most previous keys kept; older ones are dropped early on rotation only if
/// an operator rotates more often than this within one retention period.
const MAX_KEYS: usize = 64;

/// Default time a rotated-out public key is still trusted: the default
/// maximum token lifetime plus the maximum leeway.
pub const DEFAULT_RETENTION: Duration = DEFAULT_MAX_LIFETIME.saturating_add(MAX_LEEWAY);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    active: String,
    keys: Vec<ManifestKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestKey {
    kid: String,
    /// base64url of the 32-byte public key.
    x: String,
    created_at: i64,
    /// `None` for the active key; otherwise when the key may be forgotten.
    retire_after: Option<i64>,
}

struct ActiveKey {
    kid: Kid,
    public: [u8; 32],
    created_at: i64,
    /// Holds the PKCS#8 DER; see the `Security` section on [`StageKeySet`].
    encoding: EncodingKey,
}

#[derive(Clone)]
struct PreviousKey {
    kid: Kid,
    public: [u8; 32],
    created_at: i64,
    retire_after: i64,
}

/// The stage-token signing keys: one active Ed25519 key plus the public
/// halves of previous keys, kept until every token they signed has expired.
///
/// # Guarantees
///
/// - Files are created with mode 0600 in a 0700 directory, written to a
///   temporary file and renamed into place. Loading refuses a private key
///   file or manifest that is a symlink, not a regular file, or readable or
///   writable by group or others, and a directory accessible to them.
/// - The private key must match the public key recorded in the manifest and
///   the key id must be that public key's RFC 7638 thumbprint.
/// - A rotated-out key is trusted for verification for `retention` after the
///   rotation (default [`DEFAULT_RETENTION`]) and its private key file is
///   deleted at once.
///
/// # Security
///
/// The private key lives in memory inside `jsonwebtoken::EncodingKey`, which
/// does not zeroize its buffer on drop; the PEM text and intermediate DER are
/// zeroized.
///
/// # Non-goals
///
/// No locking against two processes rotating the same directory at once: one
/// process (the coordinator) owns the key set.
pub struct StageKeySet {
    dir: PathBuf,
    active: ActiveKey,
    previous: Vec<PreviousKey>,
    retention: Duration,
}

impl StageKeySet {
    /// Loads the key set from `<state_dir>/keys/stage/`, creating the
    /// directory and a first key if there is none, and forgetting previous
    /// keys whose retention ended before `now`. Retention is
    /// [`DEFAULT_RETENTION`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::InsecurePermissions`], [`Error::InvalidKeyStore`]
    /// or [`Error::Random`].
    pub fn open(state_dir: &Path, now: i64) -> Result<Self> {
        Self::open_with_retention(state_dir, now, DEFAULT_RETENTION)
    }

    /// As [`open`](Self::open), keeping rotated-out keys for `retention`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with_retention(state_dir: &Path, now: i64, retention: Duration) -> Result<Self> {
        let dir = state_dir.join("keys").join("stage");
        ensure_private_dir(&dir)?;
        let mut set = if dir.join(MANIFEST).exists() {
            load(&dir, retention)?
        } else {
            let (signing, active) = generate(now)?;
            let set = Self {
                dir,
                active,
                previous: Vec::new(),
                retention,
            };
            write_private(
                &set.dir,
                &pem_name(&set.active.kid),
                pem(&signing)?.as_bytes(),
            )?;
            set.write_manifest()?;
            set
        };
        if set.prune(now) {
            set.write_manifest()?;
        }
        Ok(set)
    }

    /// Makes a new key active. The old key's public half is kept until
    /// `now + retention`; its private key file is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Random`] or [`Error::Io`]. On error the on-disk state is
    /// either the old key set or the new one.
    pub fn rotate(&mut self, now: i64) -> Result<Kid> {
        let (signing, active) = generate(now)?;
        let retain = i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX);
        write_private(&self.dir, &pem_name(&active.kid), pem(&signing)?.as_bytes())?;
        let old = std::mem::replace(&mut self.active, active);
        // The old private key signs nothing more: drop its decoded copy.
        crate::jwt_crypto::forget_signing_keys();
        self.previous.push(PreviousKey {
            kid: old.kid.clone(),
            public: old.public,
            created_at: old.created_at,
            retire_after: now.saturating_add(retain),
        });
        self.prune(now);
        self.write_manifest()?;
        remove_if_exists(&self.dir.join(pem_name(&old.kid)))?;
        Ok(self.active.kid.clone())
    }

    /// Drops previous keys past retention (and the oldest beyond
    /// [`MAX_KEYS`]); returns whether any was dropped.
    fn prune(&mut self, now: i64) -> bool {
        let before = self.previous.len();
        self.previous.retain(|k| k.retire_after > now);
        self.previous
            .sort_by_key(|k| std::cmp::Reverse(k.retire_after));
        self.previous.truncate(MAX_KEYS - 1);
        self.previous.len() != before
    }

    /// The id of the key that signs new tokens.
    #[must_use]
    pub fn active_kid(&self) -> &Kid {
        &self.active.kid
    }

    /// The directory holding the key files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long a rotated-out key stays trusted.
    #[must_use]
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Every trusted key id with its public key, the active key first.
    pub fn public_keys(&self) -> impl Iterator<Item = (&Kid, &[u8; 32])> {
        std::iter::once((&self.active.kid, &self.active.public))
            .chain(self.previous.iter().map(|k| (&k.kid, &k.public)))
    }

    /// The public keys as a JWKS document (RFC 7517/8037): `{"keys": [{"kty":
    /// "OKP", "crv": "Ed25519", "x", "kid", "alg": "EdDSA", "use": "sig"}]}`.
    #[must_use]
    pub fn public_jwks(&self) -> Value {
        jwks(self.public_keys())
    }

    /// [`public_jwks`](Self::public_jwks) read from the public halves on
    /// disk alone, as [`public_verifier`](Self::public_verifier) reads them:
    /// no private key is read or created. Keys whose retention ended before
    /// `now` are left out.
    ///
    /// # Errors
    ///
    /// As [`public_verifier`](Self::public_verifier).
    pub fn public_jwks_on_disk(state_dir: &Path, now: i64) -> Result<Value> {
        let trusted = public_keys_on_disk(state_dir, now)?;
        Ok(jwks(trusted.iter().map(|(kid, x)| (kid, x))))
    }

    /// A verifier for stage tokens built from the public halves on disk
    /// alone, as a worker holds them: no private key is read or created.
    /// Keys whose retention ended before `now` are left out.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if there is no key set under `state_dir` yet,
    /// [`Error::InsecurePermissions`] or [`Error::InvalidKeyStore`].
    pub fn public_verifier(
        state_dir: &Path,
        now: i64,
        config: VerifierConfig,
    ) -> Result<StageVerifier> {
        public_verifier(state_dir, now, config)
    }

    /// A verifier holding only the public keys of this set.
    #[must_use]
    pub fn verifier(&self, config: VerifierConfig) -> StageVerifier {
        StageVerifier::from_trusted_keys(
            self.public_keys().map(|(kid, x)| (kid.clone(), *x)),
            config,
        )
    }

    pub(crate) fn signing_key(&self) -> (&Kid, &EncodingKey) {
        (&self.active.kid, &self.active.encoding)
    }

    fn write_manifest(&self) -> Result<()> {
        let mut keys = vec![ManifestKey {
            kid: self.active.kid.as_str().to_owned(),
            x: URL_SAFE_NO_PAD.encode(self.active.public),
            created_at: self.active.created_at,
            retire_after: None,
        }];
        keys.extend(self.previous.iter().map(|k| ManifestKey {
            kid: k.kid.as_str().to_owned(),
            x: URL_SAFE_NO_PAD.encode(k.public),
            created_at: k.created_at,
            retire_after: Some(k.retire_after),
        }));
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            active: self.active.kid.as_str().to_owned(),
            keys,
        };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|_| Error::Internal {
            reason: "manifest serialization failed",
        })?;
        write_private(&self.dir, MANIFEST, &bytes)
    }
}

impl fmt::Debug for StageKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageKeySet")
            .field("dir", &self.dir)
            .field("active", &self.active.kid)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

fn pem_name(kid: &Kid) -> String {
    format!("{}.pem", kid.as_str())
}

fn pem(signing: &SigningKey) -> Result<Zeroizing<String>> {
    signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| Error::Internal {
            reason: "PKCS#8 encoding failed",
        })
}

fn encoding_key(signing: &SigningKey) -> Result<EncodingKey> {
    let der = signing.to_pkcs8_der().map_err(|_| Error::Internal {
        reason: "PKCS#8 encoding failed",
    })?;
    Ok(EncodingKey::from_ed_der(der.as_bytes()))
}

fn generate(now: i64) -> Result<(SigningKey, ActiveKey)> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|_| Error::Random)?;
    let signing = SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    let active = ActiveKey {
        kid: Kid::thumbprint(&public),
        public,
        created_at: now,
        encoding: encoding_key(&signing)?,
    };
    Ok((signing, active))
}

fn decode_public(x: &str, path: &Path) -> Result<[u8; 32]> {
    let bytes = URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|_| Error::key_store(path, "public key is not base64url"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| Error::key_store(path, "public key is not 32 bytes"))
}

/// A verifier for stage tokens built from the public halves in
/// `<state_dir>/keys/stage/keyset.json` alone: what a worker holds. It never
/// reads a private key and never creates one; keys whose retention ended
/// before `now` are left out.
///
/// # Errors
///
/// [`Error::Io`] if there is no key set (run `weir keys jwks` or any run on
/// the coordinator first), [`Error::InsecurePermissions`] or
/// [`Error::InvalidKeyStore`].
fn public_verifier(state_dir: &Path, now: i64, config: VerifierConfig) -> Result<StageVerifier> {
    let trusted = public_keys_on_disk(state_dir, now)?;
    Ok(StageVerifier::from_trusted_keys(trusted, config))
}

/// The manifest's keys still within retention at `now`, each checked.
fn public_keys_on_disk(state_dir: &Path, now: i64) -> Result<Vec<(Kid, [u8; 32])>> {
    let manifest_path = state_dir.join("keys").join("stage").join(MANIFEST);
    let manifest = read_manifest(&manifest_path)?;
    let mut trusted = Vec::new();
    for key in &manifest.keys {
        let (kid, public) = checked_public(key, &manifest_path)?;
        if key.retire_after.is_none_or(|t| t > now) {
            trusted.push((kid, public));
        }
    }
    Ok(trusted)
}

/// A JWKS document (RFC 7517/8037) of Ed25519 public keys.
fn jwks<'a>(keys: impl Iterator<Item = (&'a Kid, &'a [u8; 32])>) -> Value {
    let keys: Vec<Value> = keys
        .map(|(kid, x)| {
            json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(x),
                "kid": kid.as_str(),
                "alg": "EdDSA",
                "use": "sig",
            })
        })
        .collect();
    json!({ "keys": keys })
}

/// Reads and parses the manifest at `manifest_path` (0600 enforced).
fn read_manifest(manifest_path: &Path) -> Result<Manifest> {
    let raw = read_private(manifest_path)?;
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|_| Error::key_store(manifest_path, "manifest is not valid JSON"))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(Error::key_store(
            manifest_path,
            "unsupported manifest version",
        ));
    }
    Ok(manifest)
}

/// A manifest entry's kid and public key, the kid checked to be the key's
/// thumbprint.
fn checked_public(key: &ManifestKey, manifest_path: &Path) -> Result<(Kid, [u8; 32])> {
    let kid = Kid::parse(&key.kid)
        .map_err(|_| Error::key_store(manifest_path, "invalid kid in manifest"))?;
    let public = decode_public(&key.x, manifest_path)?;
    if Kid::thumbprint(&public) != kid {
        return Err(Error::key_store(
            manifest_path,
            "kid is not the key's thumbprint",
        ));
    }
    Ok((kid, public))
}

fn load(dir: &Path, retention: Duration) -> Result<StageKeySet> {
    let manifest_path = dir.join(MANIFEST);
    let manifest = read_manifest(&manifest_path)?;
    let mut active = None;
    let mut previous = Vec::new();
    let mut seen = HashMap::new();
    for key in &manifest.keys {
        let (kid, public) = checked_public(key, &manifest_path)?;
        if seen.insert(kid.clone(), ()).is_some() {
            return Err(Error::key_store(&manifest_path, "kid listed twice"));
        }
        match (key.retire_after, key.kid == manifest.active) {
            (None, true) => active = Some((kid, public, key.created_at)),
            (Some(retire_after), false) => previous.push(PreviousKey {
                kid,
                public,
                created_at: key.created_at,
                retire_after,
            }),
            _ => {
                return Err(Error::key_store(
                    &manifest_path,
                    "exactly the active key must lack retire_after",
                ));
            }
        }
    }
    let (kid, public, created_at) =
        active.ok_or_else(|| Error::key_store(&manifest_path, "active key not listed"))?;
    let pem_path = dir.join(pem_name(&kid));
    let pem_bytes = Zeroizing::new(read_private(&pem_path)?);
    let pem_text = std::str::from_utf8(&pem_bytes)
        .map_err(|_| Error::key_store(&pem_path, "private key is not PEM"))?;
    let signing = SigningKey::from_pkcs8_pem(pem_text)
        .map_err(|_| Error::key_store(&pem_path, "private key is not a PKCS#8 Ed25519 key"))?;
    if signing.verifying_key().to_bytes() != public {
        return Err(Error::key_store(
            &pem_path,
            "private key does not match the manifest",
        ));
    }
    if signing.verifying_key().is_weak() {
        return Err(Error::key_store(&pem_path, "weak key"));
    }
    Ok(StageKeySet {
        dir: dir.to_path_buf(),
        active: ActiveKey {
            kid,
            public,
            created_at,
            encoding: encoding_key(&signing)?,
        },
        previous,
        retention,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn creates_private_files_and_reloads_the_same_key() {
        let state = tempfile::tempdir().unwrap();
        let set = StageKeySet::open(state.path(), 100).unwrap();
        let dir = state.path().join("keys/stage");
        assert_eq!(set.dir(), dir);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(MANIFEST)), 0o600);
        assert_eq!(mode(&dir.join(pem_name(set.active_kid()))), 0o600);
        let again = StageKeySet::open(state.path(), 200).unwrap();
        assert_eq!(again.active_kid(), set.active_kid());
        assert_eq!(again.public_jwks(), set.public_jwks());
    }

    #[test]
    fn refuses_group_or_world_readable_private_key() {
        let state = tempfile::tempdir().unwrap();
        let set = StageKeySet::open(state.path(), 0).unwrap();
        let pem = set.dir().join(pem_name(set.active_kid()));
        for bad in [0o640, 0o604, 0o644] {
            fs::set_permissions(&pem, fs::Permissions::from_mode(bad)).unwrap();
            let err = StageKeySet::open(state.path(), 0).unwrap_err();
            assert!(matches!(err, Error::InsecurePermissions { .. }), "{err}");
        }
        fs::set_permissions(&pem, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(set.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            StageKeySet::open(state.path(), 0),
            Err(Error::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn refuses_symlinked_key_file() {
        let state = tempfile::tempdir().unwrap();
        let set = StageKeySet::open(state.path(), 0).unwrap();
        let pem = set.dir().join(pem_name(set.active_kid()));
        let elsewhere = state.path().join("elsewhere.pem");
        fs::rename(&pem, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &pem).unwrap();
        assert!(matches!(
            StageKeySet::open(state.path(), 0),
            Err(Error::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn refuses_key_not_matching_manifest() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = StageKeySet::open(a.path(), 0).unwrap();
        let sb = StageKeySet::open(b.path(), 0).unwrap();
        fs::copy(
            sb.dir().join(pem_name(sb.active_kid())),
            sa.dir().join(pem_name(sa.active_kid())),
        )
        .unwrap();
        assert!(matches!(
            StageKeySet::open(a.path(), 0),
            Err(Error::InvalidKeyStore { .. })
        ));
    }

    #[test]
    fn rotation_keeps_previous_public_keys_until_retention_ends() {
        let state = tempfile::tempdir().unwrap();
        let retention = Duration::from_secs(1_000);
        let mut set = StageKeySet::open_with_retention(state.path(), 0, retention).unwrap();
        let first = set.active_kid().clone();
        let second = set.rotate(10).unwrap();
        assert_ne!(first, second);
        assert!(
            !set.dir().join(pem_name(&first)).exists(),
            "old private key deleted"
        );
        assert!(set.dir().join(pem_name(&second)).exists());
        let kids: Vec<_> = set.public_keys().map(|(k, _)| k.clone()).collect();
        assert_eq!(kids, [second.clone(), first.clone()]);

        let reloaded = StageKeySet::open_with_retention(state.path(), 1_009, retention).unwrap();
        assert_eq!(reloaded.public_keys().count(), 2);
        let pruned = StageKeySet::open_with_retention(state.path(), 1_010, retention).unwrap();
        assert_eq!(pruned.public_keys().count(), 1);
        assert_eq!(pruned.active_kid(), &second);
    }

    #[test]
    fn jwks_has_the_documented_members() {
        let state = tempfile::tempdir().unwrap();
        let set = StageKeySet::open(state.path(), 0).unwrap();
        let jwks = set.public_jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], set.active_kid().as_str());
        assert_eq!(key["x"].as_str().unwrap().len(), 43);
        assert!(key.get("d").is_none());
    }

    #[test]
    fn jwks_on_disk_matches_the_key_set_and_reads_no_private_key() {
        let state = tempfile::tempdir().unwrap();
        let mut set = StageKeySet::open(state.path(), 0).unwrap();
        set.rotate(10).unwrap();
        let kids = |jwks: &Value| {
            let mut kids: Vec<String> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            kids.sort();
            kids
        };
        let on_disk = StageKeySet::public_jwks_on_disk(state.path(), 10).unwrap();
        assert_eq!(kids(&on_disk), kids(&set.public_jwks()));
        assert_eq!(kids(&on_disk).len(), 2);
        // The private key file is not needed (nor created) to serve it.
        let active = set.dir().join(format!("{}.pem", set.active_kid().as_str()));
        std::fs::remove_file(&active).unwrap();
        assert_eq!(
            kids(&StageKeySet::public_jwks_on_disk(state.path(), 10).unwrap()),
            kids(&on_disk)
        );
        assert!(!active.exists());
        // Nothing on disk yet: an error, not a new key.
        let empty = tempfile::tempdir().unwrap();
        assert!(StageKeySet::public_jwks_on_disk(empty.path(), 0).is_err());
        assert!(!empty.path().join("keys").exists());
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let state = tempfile::tempdir().unwrap();
        let set = StageKeySet::open(state.path(), 0).unwrap();
        let pem = fs::read_to_string(set.dir().join(pem_name(set.active_kid()))).unwrap();
        let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!format!("{set:?}").contains(&body));
    }
}
