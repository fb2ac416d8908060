//! Keeping a local store's paths inside its root, symlinks included.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use weir_auth::ScopePath;

use crate::error::{Error, Result};

/// A local store root, canonicalised once.
#[derive(Clone, Debug)]
pub(crate) struct LocalRoot {
    root: PathBuf,
}

impl LocalRoot {
    /// Canonicalises `root`.
    pub(crate) fn new(root: &Path) -> Result<Self> {
        let root = std::fs::canonicalize(root).map_err(|source| Error::StoreRoot {
            path: root.to_path_buf(),
            source,
        })?;
        Ok(Self { root })
    }

    /// Whether `path` stays inside the root once symlinks are resolved: the
    /// canonical form of the target, or of its nearest existing ancestor,
    /// must lie inside the canonical root. A dangling symlink on the way,
    /// or any other error, counts as outside (fail closed).
    ///
    /// A symlink swapped in between this check and the call is not caught
    /// (see the crate's non-goals).
    pub(crate) fn contains(&self, path: &ScopePath) -> bool {
        let mut target = self.root.clone();
        target.extend(path.segments());
        let mut probe = target.as_path();
        loop {
            match std::fs::canonicalize(probe) {
                Ok(real) => return real.starts_with(&self.root),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    if e.kind() == ErrorKind::NotFound && std::fs::symlink_metadata(probe).is_ok() {
                        return false; // a dangling symlink
                    }
                    match probe.parent() {
                        Some(parent) if probe != self.root => probe = parent,
                        _ => return false,
                    }
                }
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ScopePath {
        ScopePath::parse(s).unwrap()
    }

    #[test]
    fn plain_paths_existing_or_not_are_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raw/train")).unwrap();
        std::fs::write(dir.path().join("raw/file"), b"x").unwrap();
        let root = LocalRoot::new(dir.path()).unwrap();
        assert!(root.contains(&p("raw/train")));
        assert!(root.contains(&p("raw/train/new/deeper")));
        assert!(root.contains(&p("raw/file/below")));
        assert!(root.contains(&ScopePath::root()));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_escapes_are_outside() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raw")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("raw/link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("raw/gone"), dir.path().join("raw/dangling"))
            .unwrap();
        std::os::unix::fs::symlink(dir.path().join("raw"), dir.path().join("inner")).unwrap();
        let root = LocalRoot::new(dir.path()).unwrap();
        assert!(!root.contains(&p("raw/link")));
        assert!(!root.contains(&p("raw/link/new-file")));
        assert!(!root.contains(&p("raw/dangling")));
        assert!(root.contains(&p("inner/x")));
    }
}
