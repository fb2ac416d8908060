//! Owner-only files and directories for key material.
//!
//! # Guarantees
//!
//! - Directories are created 0700 and files 0600 (a umask can only narrow
//!   these); files are written to a fresh temporary name, synced, renamed
//!   into place and the directory synced, so readers see the old or the new
//!   content, never a mix.
//! - Reads refuse symlinks, non-regular files and anything group- or
//!   world-accessible, and check that the inode opened is the one inspected.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// Largest key or manifest file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

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

/// Reads a file that must be a regular file (not a symlink) readable and
/// writable only by its owner.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>> {
    let link_meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    check_private_file(path, &link_meta)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    // Same inode as the one checked: nothing was swapped in between.
    if meta.ino() != link_meta.ino() || meta.dev() != link_meta.dev() {
        return Err(Error::key_store(path, "file changed while opening"));
    }
    check_private_file(path, &meta)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::key_store(path, "file too large"));
    }
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    Ok(buf)
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
/// atomic rename, syncing file and directory.
pub(crate) fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|_| Error::Random)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", URL_SAFE_NO_PAD.encode(suffix)));
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
        fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))
    })();
    if result.is_err() {
        // Best effort: the temporary file holds nothing the target does not.
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Longest stored HMAC secret accepted from a key file.
pub(crate) const MAX_STORED_SECRET_BYTES: usize = 1024;

/// Decodes a base64url HMAC secret read from the key file at `path`,
/// refusing one shorter than `min_len` bytes (a weak key) or longer than
/// [`MAX_STORED_SECRET_BYTES`]. Errors never contain the secret.
pub(crate) fn decode_stored_secret(
    encoded: &str,
    path: &Path,
    min_len: usize,
) -> Result<crate::secret::SecretBytes> {
    let secret = crate::secret::SecretBytes::new(
        URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| Error::key_store(path, "secret is not base64url"))?,
    );
    if secret.len() < min_len {
        return Err(Error::key_store(
            path,
            "weak key: secret shorter than 256 bits",
        ));
    }
    if secret.len() > MAX_STORED_SECRET_BYTES {
        return Err(Error::key_store(path, "secret too long"));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        ensure_private_dir(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        write_private(&sub, "f", b"one").unwrap();
        write_private(&sub, "f", b"two").unwrap();
        assert_eq!(read_private(&sub.join("f")).unwrap(), b"two");
        assert_eq!(fs::metadata(sub.join("f")).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1, "no temporary left");
        remove_if_exists(&sub.join("f")).unwrap();
        remove_if_exists(&sub.join("f")).unwrap();
    }

    #[test]
    fn refuses_loose_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("k");
        ensure_private_dir(&sub).unwrap();
        write_private(&sub, "f", b"x").unwrap();
        fs::set_permissions(sub.join("f"), fs::Permissions::from_mode(0o660)).unwrap();
        assert!(matches!(
            read_private(&sub.join("f")),
            Err(Error::InsecurePermissions { mode: 0o660, .. })
        ));
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o701)).unwrap();
        assert!(ensure_private_dir(&sub).is_err());
        assert!(read_private(&sub).is_err(), "a directory is not a key file");
    }
}
