//! The Ed25519 key that signs checkpoints.
//!
//! The private key lives in `<state_dir>/keys/audit/checkpoint.key` (a raw
//! 32-byte seed, 0600, directory 0700). Verification needs only the public
//! half ([`CheckpointSigner::verifying_key`]), so an auditor can check a log
//! without being able to extend it.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::audit_key::key_dir;
use crate::error::{Error, Result};
use crate::private_file::{KEY_LEN, is_weak, load_or_create_key};

/// File name of the checkpoint signing key in `<state_dir>/keys/audit/`.
pub const CHECKPOINT_KEY_FILE: &str = "checkpoint.key";

/// Signs checkpoints. `Debug` prints only the public key.
///
/// # Guarantees
///
/// The seed is zeroized on drop (ed25519-dalek's `zeroize` feature) and never
/// printed.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl CheckpointSigner {
    /// Loads `<state_dir>/keys/audit/checkpoint.key`, creating it on first use.
    ///
    /// # Errors
    ///
    /// [`Error::InsecurePermissions`] if the file or directory is accessible
    /// beyond its owner or is a symlink; [`Error::InvalidKeyFile`] if it is
    /// not 32 bytes or is weak; [`Error::Io`], [`Error::Random`].
    pub fn open_or_create(state_dir: &Path) -> Result<Self> {
        let seed = load_or_create_key(&key_dir(state_dir), CHECKPOINT_KEY_FILE)?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A fresh random key (tests, benchmarks).
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the OS random number generator fails.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(seed.as_mut_slice()).map_err(|_| Error::Random)?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Wraps a 32-byte seed from a secret store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the seed is weak (all bytes equal).
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Result<Self> {
        if is_weak(seed) {
            return Err(Error::InvalidConfig {
                reason: "weak checkpoint key (all bytes equal)",
            });
        }
        Ok(Self {
            key: SigningKey::from_bytes(seed),
        })
    }

    /// The public key that verifies this signer's checkpoints.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("public", &hex::encode(self.key.verifying_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_public_key_only() {
        let seed = [42u8; 31]
            .iter()
            .chain([1].iter())
            .copied()
            .collect::<Vec<_>>();
        let seed: [u8; 32] = seed.try_into().unwrap();
        let signer = CheckpointSigner::from_seed(&seed).unwrap();
        let out = format!("{signer:?}");
        assert!(out.contains(&hex::encode(signer.verifying_key().as_bytes())));
        assert!(!out.contains(&hex::encode(seed)));
    }

    #[test]
    fn key_file_persists_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let a = CheckpointSigner::open_or_create(dir.path()).unwrap();
        let b = CheckpointSigner::open_or_create(dir.path()).unwrap();
        assert_eq!(a.verifying_key(), b.verifying_key());
        let sig = a.sign(b"m");
        assert!(b.verifying_key().verify_strict(b"m", &sig).is_ok());
    }

    #[test]
    fn weak_seed_is_refused() {
        assert!(CheckpointSigner::from_seed(&[0; 32]).is_err());
    }
}
