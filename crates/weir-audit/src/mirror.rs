//! An append-only file copy of every checkpoint, outside the database.
//!
//! An attacker who can rewrite the database can also delete checkpoint rows;
//! a mirror on another volume (or shipped elsewhere) keeps the newest
//! signed head out of their reach. Each line is
//! [`Checkpoint::to_json_line`]; the file is created 0600 and every line is
//! synced before the writer moves on.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

/// Longest mirror line accepted when reading.
const MAX_LINE_BYTES: u64 = 4096;

/// An open mirror file.
#[derive(Clone)]
pub(crate) struct Mirror {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl Mirror {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends and syncs one checkpoint, off the async runtime's threads.
    pub(crate) async fn append(&self, checkpoint: &Checkpoint) -> Result<()> {
        let (this, checkpoint) = (self.clone(), checkpoint.clone());
        tokio::task::spawn_blocking(move || this.append_now(&checkpoint))
            .await
            .map_err(|_| Error::Internal {
                reason: "mirror writer task failed",
            })?
    }

    /// Appends and syncs one checkpoint on this thread (which blocks).
    pub(crate) fn append_now(&self, checkpoint: &Checkpoint) -> Result<()> {
        let mut line = checkpoint.to_json_line();
        line.push('\n');
        self.append_blocking(line.as_bytes())
    }

    fn append_blocking(&self, line: &[u8]) -> Result<()> {
        let file = self.file.lock().map_err(|_| Error::Internal {
            reason: "mirror lock poisoned",
        })?;
        let mut file: &File = &file;
        file.write_all(line)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads every checkpoint in a mirror file (signatures are checked by the
/// verifier, not here).
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::InvalidMirror`] naming
/// the first malformed or overlong line.
pub fn read_mirror(path: &Path) -> Result<Vec<Checkpoint>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut line_no = 0u64;
    loop {
        line_no += 1;
        let mut line = String::new();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_line(&mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(out);
        }
        let bad = |reason| Error::InvalidMirror {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        if u64::try_from(n).unwrap_or(u64::MAX) > MAX_LINE_BYTES {
            return Err(bad("line too long"));
        }
        let text = line.trim_end_matches('\n');
        if text.is_empty() {
            continue;
        }
        out.push(Checkpoint::from_json_line(text).map_err(bad)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain_id::ChainId;
    use crate::digest::EventHash;
    use crate::signer::CheckpointSigner;

    #[tokio::test]
    async fn appended_lines_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.jsonl");
        let signer = CheckpointSigner::generate().unwrap();
        let mirror = Mirror::open(&path).unwrap();
        let mut written = Vec::new();
        for seq in 1..=3 {
            let cp = Checkpoint::sign(
                &signer,
                ChainId::parse("cli").unwrap(),
                seq,
                EventHash::from_bytes([seq as u8; 32]),
                chrono::Utc::now(),
            );
            mirror.append(&cp).await.unwrap();
            written.push(cp);
        }
        let back = read_mirror(&path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].seq, 3);
        assert!(back.iter().all(|c| c.verify(&signer.verifying_key())));
    }

    #[test]
    fn garbage_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        std::fs::write(&path, "\n{\"x\":1}\n").unwrap();
        assert!(matches!(
            read_mirror(&path),
            Err(Error::InvalidMirror { line: 2, .. })
        ));
    }

    #[test]
    fn overlong_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        std::fs::write(&path, "a".repeat(10_000)).unwrap();
        assert!(matches!(
            read_mirror(&path),
            Err(Error::InvalidMirror { line: 1, .. })
        ));
    }
}
