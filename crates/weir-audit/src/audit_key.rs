//! The HMAC key that turns token ids into audit-safe lookups.
//!
//! An audit event never stores a raw token id: it stores
//! `HMAC-SHA256(audit key, token id)` in lowercase hex ([`TokenIdHmac`]). An
//! auditor holding the key computes the same value with
//! [`AuditKey::hash_value`] to find every event of one token; anyone reading
//! the log without the key learns nothing about the id.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::private_file::{KEY_LEN, is_weak, load_or_create_key};

/// File name of the HMAC key in `<state_dir>/keys/audit/`.
pub const AUDIT_KEY_FILE: &str = "hmac.key";

/// `<state_dir>/keys/audit`, where the audit keys live (0700).
#[must_use]
pub fn key_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("keys").join("audit")
}

/// The secret HMAC-SHA256 key for token-id lookups.
///
/// # Guarantees
///
/// `Debug`/`Display` print `***`; the key is zeroized on drop; equality is
/// constant-time; no `Serialize` impl.
#[derive(Clone)]
pub struct AuditKey(Zeroizing<[u8; KEY_LEN]>);

impl AuditKey {
    /// Loads `<state_dir>/keys/audit/hmac.key`, creating it (0600, directory
    /// 0700) from the OS random number generator on first use.
    ///
    /// # Errors
    ///
    /// [`Error::InsecurePermissions`] if the file or directory is accessible
    /// beyond its owner or is a symlink; [`Error::InvalidKeyFile`] if it is
    /// not 32 bytes or is weak; [`Error::Io`], [`Error::Random`].
    pub fn open_or_create(state_dir: &Path) -> Result<Self> {
        load_or_create_key(&key_dir(state_dir), AUDIT_KEY_FILE).map(Self)
    }

    /// A fresh random key (tests, ephemeral deployments).
    ///
    /// # Errors
    ///
    /// [`Error::Random`] if the OS random number generator fails.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(key.as_mut_slice()).map_err(|_| Error::Random)?;
        Ok(Self(key))
    }

    /// Wraps 32 key bytes from a secret store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the key is weak (all bytes equal).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Result<Self> {
        let key = Zeroizing::new(bytes);
        if is_weak(key.as_slice()) {
            return Err(Error::InvalidConfig {
                reason: "weak audit key (all bytes equal)",
            });
        }
        Ok(Self(key))
    }

    /// `HMAC-SHA256(key, value)` as 64 lowercase hex digits: what the log
    /// stores in place of `value`.
    #[must_use]
    pub fn hash_value(&self, value: &str) -> String {
        crate::digest::lower_hex(&self.mac(value))
    }

    /// The [`TokenIdHmac`] of a raw token id (a JWT `jti`).
    #[must_use]
    pub fn token_id_hmac(&self, token_id: &str) -> TokenIdHmac {
        TokenIdHmac(self.hash_value(token_id))
    }

    /// Constant-time comparison.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }

    fn mac(&self, value: &str) -> [u8; 32] {
        // HMAC accepts keys of any length; a 32-byte key never fails.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.as_slice()) else {
            return [0; 32];
        };
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl PartialEq for AuditKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for AuditKey {}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A token id after [`AuditKey::token_id_hmac`]: 64 lowercase hex digits.
///
/// The only way to hold one is to compute it with the key or to parse 64 hex
/// digits, so a raw token id cannot reach the log through this field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TokenIdHmac(String);

impl TokenIdHmac {
    /// Parses a stored or exported value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDigest`] unless `hex` is exactly 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Self> {
        if is_lower_hex(hex, 64) {
            Ok(Self(hex.to_owned()))
        } else {
            Err(Error::InvalidDigest {
                reason: "token id HMAC must be 64 lowercase hex digits",
            })
        }
    }

    /// The hex digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenIdHmac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` is exactly `len` lowercase hex digits.
pub(crate) fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_value_is_hmac_sha256_hex() {
        // RFC 4231 test case 2 uses a short key; check against the hmac crate.
        let key = AuditKey::from_bytes(
            [7; 31]
                .iter()
                .chain([8].iter())
                .copied()
                .collect::<Vec<_>>()
                .try_into()
                .unwrap(),
        )
        .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(key.0.as_slice()).unwrap();
        mac.update(b"01J0JTI");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(key.hash_value("01J0JTI"), expected);
        assert_eq!(key.token_id_hmac("01J0JTI").as_str(), expected);
        assert_ne!(key.hash_value("01J0JTI"), key.hash_value("01J0JTJ"));
    }

    #[test]
    fn debug_and_display_redact() {
        let key = AuditKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(format!("{key}"), "***");
    }

    #[test]
    fn weak_key_is_refused() {
        assert!(AuditKey::from_bytes([0; 32]).is_err());
        assert!(AuditKey::from_bytes([0xff; 32]).is_err());
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_mode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let a = AuditKey::open_or_create(dir.path()).unwrap();
        let b = AuditKey::open_or_create(dir.path()).unwrap();
        assert_eq!(a, b);
        let meta = std::fs::metadata(key_dir(dir.path()).join(AUDIT_KEY_FILE)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_ne!(a, AuditKey::generate().unwrap());
    }

    #[test]
    fn raw_token_id_is_not_a_token_id_hmac() {
        assert!(TokenIdHmac::from_hex("01J0JTI").is_err());
        assert!(TokenIdHmac::from_hex(&"A".repeat(64)).is_err());
        assert!(TokenIdHmac::from_hex(&"a".repeat(64)).is_ok());
    }
}
