//! Redacting newtypes for secret values.
//!
//! # Guarantees
//!
//! - `Debug` and `Display` print `***`, whatever the content.
//! - The buffer is zeroized when the value is dropped (copies made by the
//!   caller through [`SecretBytes::expose`] / [`SecretString::expose`] are the
//!   caller's to handle).
//! - Equality is constant-time in the content (the length is not secret).
//! - Neither type implements `serde::Serialize`, so a secret cannot end up in
//!   a JSON document or log record by accident.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

const REDACTED: &str = "***";

/// Secret bytes (keys, HMAC secrets).
///
/// # Guarantees
///
/// `Debug`/`Display` print `***`; the buffer is zeroized on drop; equality
/// ([`ct_eq`](Self::ct_eq), `==`) is constant-time in the content; no
/// `Serialize` impl, so it cannot land in a JSON document by accident.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps `bytes`; the vector is moved, not copied.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret content. Keep the borrow short and do not copy it into an
    /// unprotected buffer.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with `other` (only the lengths leak).
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A secret string (tokens, passwords).
///
/// # Guarantees
///
/// `Debug`/`Display` print `***`; the buffer is zeroized on drop; equality
/// ([`ct_eq`](Self::ct_eq), `==`) is constant-time in the content; no
/// `Serialize` impl, so it cannot land in a JSON document by accident.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `s`; the string is moved, not copied.
    #[must_use]
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret content. Keep the borrow short and do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with `other` (only the lengths leak).
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let b = SecretBytes::new(b"hunter2".to_vec());
        let s = SecretString::new("hunter2".to_owned());
        for out in [
            format!("{b:?}"),
            format!("{b}"),
            format!("{s:?}"),
            format!("{s}"),
            format!("{:?}", Some(&s)),
        ] {
            assert!(!out.contains("hunter2"), "{out}");
            assert!(out.contains("***"));
        }
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        let a = SecretString::from("abc".to_owned());
        assert!(a.ct_eq(&SecretString::from("abc".to_owned())));
        assert!(!a.ct_eq(&SecretString::from("abd".to_owned())));
        assert!(!a.ct_eq(&SecretString::from("abcd".to_owned())));
        assert_eq!(a, SecretString::from("abc".to_owned()));
        let b = SecretBytes::from(vec![1, 2, 3]);
        assert!(b.ct_eq(&SecretBytes::new(vec![1, 2, 3])));
        assert_ne!(b, SecretBytes::new(vec![1, 2]));
    }

    #[test]
    fn zeroize_clears_content() {
        let mut s = SecretString::new("secret".to_owned());
        s.zeroize();
        assert!(s.is_empty());
        let mut b = SecretBytes::new(vec![7; 4]);
        b.zeroize();
        assert!(b.is_empty());
    }

    #[test]
    fn expose_returns_content() {
        assert_eq!(SecretString::new("x".into()).expose(), "x");
        assert_eq!(SecretBytes::new(vec![9]).expose(), &[9]);
        assert_eq!(SecretBytes::new(vec![9]).len(), 1);
    }
}
