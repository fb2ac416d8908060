//! Owner-only files and directories for key material.
//!
//! # Guarantees
//!
//! - Directories are created 0700 and files 0600 (a umask can only narrow
//!   these); files are written to a fresh temporary name, synced, renamed
//!   into place and the directory synced.
//! - Reads refuse symlinks, non-regular files and anything group- or
//!   world-accessible, and check that the inode opened is the one inspected.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest key file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Creates `dir` (and missing parents) with mode 0700, or checks that the
/// existing `dir` is a real directory closed to group and others.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => {
            let mode = meta.mode() & 0o7777;
            if !meta.file_type().is_dir() || mode & 0o077 != 0 {
                return Err(Error::InsecurePermissions {
                    path: dir.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e)),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Reads `path` if it exists: it must be a regular file (not a symlink)
/// accessible only by its owner.
pub(crate) fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    let link_meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    check_private_file(path, &link_meta)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    // Same inode as the one checked: nothing was swapped in between.
    if meta.ino() != link_meta.ino() || meta.dev() != link_meta.dev() {
        return Err(Error::InvalidKeyFile {
            path: path.to_path_buf(),
            reason: "file changed while opening",
        });
    }
    check_private_file(path, &meta)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    Ok(Some(buf))
}

fn check_private_file(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let mode = meta.mode() & 0o7777;
    if !meta.file_type().is_file() || mode & 0o077 != 0 {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes `bytes` to `dir/name` with mode 0600 via a temporary file and an
/// atomic rename, syncing file and directory. Refuses to replace an
/// existing file (keys are created once).
pub(crate) fn create_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|_| Error::Random)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let target = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        // hard_link + remove refuses to clobber a key another process just made.
        fs::hard_link(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))
    })();
    // Best effort: the temporary holds nothing the target does not.
    let _ = fs::remove_file(&tmp);
    result
}

/// Length of every key file in this directory (an HMAC key or an Ed25519 seed).
pub(crate) const KEY_LEN: usize = 32;

/// Loads the 32-byte key `dir/name`, creating it from the OS random number
/// generator on first use. Refuses loose permissions, a wrong length and an
/// obviously weak key (all bytes equal).
pub(crate) fn load_or_create_key(dir: &Path, name: &str) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    ensure_private_dir(dir)?;
    let path = dir.join(name);
    if let Some(bytes) = read_private(&path)? {
        return key_from_file(&path, Zeroizing::new(bytes));
    }
    let mut fresh = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(fresh.as_mut_slice()).map_err(|_| Error::Random)?;
    match create_private(dir, name, fresh.as_slice()) {
        Ok(()) => Ok(fresh),
        // Another process created it first: use theirs.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = read_private(&path)?.ok_or(Error::Internal {
                reason: "key file vanished after creation",
            })?;
            key_from_file(&path, Zeroizing::new(bytes))
        }
        Err(e) => Err(e),
    }
}

fn key_from_file(path: &Path, bytes: Zeroizing<Vec<u8>>) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let bad = |reason| Error::InvalidKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(bad("a key file holds exactly 32 bytes"));
    }
    key.copy_from_slice(&bytes);
    if is_weak(key.as_slice()) {
        return Err(bad("weak key (all bytes equal)"));
    }
    Ok(key)
}

/// A key whose bytes are all equal (zeroes, a filled buffer) is refused.
pub(crate) fn is_weak(key: &[u8]) -> bool {
    key.windows(2).all(|w| w.first() == w.last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_read_round_trips_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        ensure_private_dir(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        assert!(read_private(&sub.join("f")).unwrap().is_none());
        create_private(&sub, "f", b"one").unwrap();
        assert!(create_private(&sub, "f", b"two").is_err(), "never clobbers");
        assert_eq!(read_private(&sub.join("f")).unwrap().unwrap(), b"one");
        assert_eq!(fs::metadata(sub.join("f")).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn group_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("k");
        ensure_private_dir(&sub).unwrap();
        create_private(&sub, "f", b"x").unwrap();
        fs::set_permissions(sub.join("f"), fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_private(&sub.join("f")),
            Err(Error::InsecurePermissions { mode: 0o640, .. })
        ));
    }

    #[test]
    fn world_accessible_key_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("k");
        ensure_private_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o705)).unwrap();
        assert!(matches!(
            ensure_private_dir(&sub),
            Err(Error::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn key_is_created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("keys/audit");
        let a = load_or_create_key(&sub, "k.key").unwrap();
        let b = load_or_create_key(&sub, "k.key").unwrap();
        assert_eq!(*a, *b);
        assert!(!is_weak(a.as_slice()));
    }

    #[test]
    fn short_or_weak_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("k");
        ensure_private_dir(&sub).unwrap();
        create_private(&sub, "short.key", &[1, 2, 3]).unwrap();
        assert!(matches!(
            load_or_create_key(&sub, "short.key"),
            Err(Error::InvalidKeyFile { .. })
        ));
        create_private(&sub, "zero.key", &[0; KEY_LEN]).unwrap();
        assert!(matches!(
            load_or_create_key(&sub, "zero.key"),
            Err(Error::InvalidKeyFile { .. })
        ));
    }

    #[test]
    fn symlinked_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("k");
        ensure_private_dir(&sub).unwrap();
        create_private(&sub, "real", b"x").unwrap();
        std::os::unix::fs::symlink(sub.join("real"), sub.join("link")).unwrap();
        assert!(read_private(&sub.join("link")).is_err());
    }
}
