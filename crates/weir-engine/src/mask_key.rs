//! The master key behind column masks (`mask: { email: hash }`).
//!
//! One random 32-byte key per state directory, in
//! `<state>/keys/mask/mask-key` (folder 0700, file 0600), created on first
//! use by the process that plans runs. Each pipeline hashes with its own key
//! derived from it ([`MaskKey::derive`] over `<principal>/<pipeline>`), so
//! equal values hash equally within a pipeline (joins on a masked column
//! still work) but not across pipelines or principals, and nobody without
//! the file can test a guess.
//!
//! Workers never create it: a worker that runs a masked stage without the
//! coordinator's file fails the stage rather than hash with a key of its own.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;
use weir_auth::SecretBytes;

use crate::columns::MaskKey;
use crate::error::{Error, Result};

/// Bytes in the master key.
const KEY_BYTES: usize = 32;
/// The key file's name inside `<state>/keys/mask/`.
const FILE: &str = "mask-key";

/// The mask key of `pipeline` run as `principal`; with `create`, the
/// master key is made if there is none.
///
/// # Errors
/// [`Error::Io`] if the key cannot be read or created,
/// [`Error::Security`] if it is missing and may not be created, is not
/// exactly 32 bytes, is a symlink, or others may read it or its folder.
pub(crate) fn load(
    state_dir: &Path,
    principal: &str,
    pipeline: &str,
    create: bool,
) -> Result<MaskKey> {
    let dir = state_dir.join("keys").join("mask");
    let master = open(&dir, create)?;
    let bytes: [u8; KEY_BYTES] = master
        .expose()
        .try_into()
        .map_err(|_| Error::security("the mask key file is not 32 bytes"))?;
    Ok(MaskKey::derive(&bytes, &format!("{principal}/{pipeline}")))
}

fn open(dir: &Path, create: bool) -> Result<SecretBytes> {
    let file = dir.join(FILE);
    match std::fs::symlink_metadata(&file) {
        Ok(_) => read_existing(dir, &file),
        Err(e) if e.kind() == ErrorKind::NotFound && create => create_new(dir),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::security(format!(
            "{} is missing: a stage with a `hash` column mask needs the coordinator's mask key; \
             copy it here (mode 0600)",
            file.display()
        ))),
        Err(e) => Err(Error::io(&file, e)),
    }
}

/// Writes a fresh key to a temporary file, then links it into place, so a
/// concurrent reader sees either no key or a whole one.
fn create_new(dir: &Path) -> Result<SecretBytes> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))?;
    let mut key = vec![0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    let tmp = dir.join(format!("{FILE}.{}.tmp", ulid::Ulid::new()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    let file = dir.join(FILE);
    let linked = std::fs::hard_link(&tmp, &file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(SecretBytes::new(key)),
        // Another process won the race: use its key.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_existing(dir, &file),
        Err(e) => Err(Error::io(&file, e)),
    }
}

fn read_existing(dir: &Path, file: &Path) -> Result<SecretBytes> {
    for (path, what) in [(dir, "folder"), (file, "file")] {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.file_type().is_symlink() {
            return Err(Error::security(format!(
                "the mask key {what} {} is a symlink; refusing it",
                path.display()
            )));
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::security(format!(
                "the mask key {what} {} may be read by other users (mode {:o}); run `chmod go-rwx` on it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let mut stored = Vec::with_capacity(KEY_BYTES);
    Read::by_ref(&mut f)
        .take(KEY_BYTES as u64 + 1)
        .read_to_end(&mut stored)
        .map_err(|e| Error::io(file, e))?;
    Ok(SecretBytes::new(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(dir.path(), "svc", "p", true).unwrap();
        let b = load(dir.path(), "svc", "p", false).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            load(dir.path(), "svc", "q", false).unwrap(),
            "one key per pipeline"
        );
        assert_ne!(
            a,
            load(dir.path(), "other", "p", false).unwrap(),
            "one key per principal"
        );
        assert_eq!(format!("{a:?}"), "MaskKey(***)");
        let file = dir.path().join("keys/mask/mask-key");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(dir.path(), "svc", "p", false).is_err());
    }

    #[test]
    fn a_worker_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), "svc", "p", false).unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
        assert!(!dir.path().join("keys/mask/mask-key").exists());
    }

    #[test]
    fn a_truncated_key_a_symlink_and_an_open_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys/mask");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(keys.join("mask-key"), b"short").unwrap();
        std::fs::set_permissions(
            keys.join("mask-key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert!(load(dir.path(), "svc", "p", true).is_err());
        std::fs::remove_file(keys.join("mask-key")).unwrap();
        std::fs::write(dir.path().join("elsewhere"), [7u8; 32]).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), keys.join("mask-key")).unwrap();
        assert!(load(dir.path(), "svc", "p", true).is_err());
        std::fs::remove_file(keys.join("mask-key")).unwrap();
        load(dir.path(), "svc", "p", true).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(load(dir.path(), "svc", "p", true).is_err());
    }
}
