//! The master key behind column masks (`mask: { email: hash }`).
//!
//! One random 32-byte key per state directory, in
//! `<state>/keys/mask/mask-key` (folder 0700, file 0600), created on first
//! use. Each pipeline hashes with its own key derived from it
//! ([`MaskKey::derive`]), so equal values hash equally within a pipeline
//! (joins on a masked column still work) but not across pipelines, and
//! nobody without the file can test a guess.
//!
//! Workers that run masked stages need the same file as the dispatcher.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;
use weir_auth::SecretBytes;

use crate::columns::MaskKey;
use crate::error::{Error, Result};

/// Bytes in the master key.
const KEY_BYTES: usize = 32;

/// The mask key of `pipeline`, creating the master key if there is none.
///
/// # Errors
/// [`Error::Io`] if the key cannot be read or created, or
/// [`Error::Security`] if the file is not exactly 32 bytes or others may
/// read it.
pub(crate) fn load(state_dir: &Path, pipeline: &str) -> Result<MaskKey> {
    let dir = state_dir.join("keys").join("mask");
    let master = open_or_create(&dir)?;
    let bytes: [u8; KEY_BYTES] = master
        .expose()
        .try_into()
        .map_err(|_| Error::security("the mask key file is not 32 bytes"))?;
    Ok(MaskKey::derive(&bytes, pipeline))
}

fn open_or_create(dir: &Path) -> Result<SecretBytes> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))?;
    let file = dir.join("mask-key");
    let mut key = vec![0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
    {
        Ok(mut f) => {
            f.write_all(&key).map_err(|e| Error::io(&file, e))?;
            f.sync_all().map_err(|e| Error::io(&file, e))?;
            return Ok(SecretBytes::new(key));
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(&file, e)),
    }
    let mut f = std::fs::File::open(&file).map_err(|e| Error::io(&file, e))?;
    let mode = f
        .metadata()
        .map_err(|e| Error::io(&file, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::security(format!(
            "{} may be read by other users (mode {:o}); run `chmod 600` on it",
            file.display(),
            mode & 0o777
        )));
    }
    let mut stored = Vec::with_capacity(KEY_BYTES);
    Read::by_ref(&mut f)
        .take(KEY_BYTES as u64 + 1)
        .read_to_end(&mut stored)
        .map_err(|e| Error::io(&file, e))?;
    Ok(SecretBytes::new(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(dir.path(), "p").unwrap();
        let b = load(dir.path(), "p").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, load(dir.path(), "q").unwrap(), "one key per pipeline");
        assert_eq!(format!("{a:?}"), "MaskKey(***)");
        let file = dir.path().join("keys/mask/mask-key");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(dir.path(), "p").is_err());
    }

    #[test]
    fn a_truncated_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys/mask");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("mask-key"), b"short").unwrap();
        std::fs::set_permissions(keys.join("mask-key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(load(dir.path(), "p").is_err());
    }
}
