//! The token itself: a redacting, zeroizing newtype, and `WEIR_TOKEN`.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, Result};

/// The longest token weir stores, in bytes (8 KiB).
///
/// weir's own tokens are a few hundred bytes; an identity provider's JWT with
/// many claims may reach a few KiB. Anything longer is not a token.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The environment variable that overrides the keyring (for CI).
pub const WEIR_TOKEN_ENV: &str = "WEIR_TOKEN";

/// An API token, as the CLI stores and sends it.
///
/// # Guarantees
///
/// - `Debug` prints `StoredToken(***)` and `Display` prints `***`, whatever
///   the content.
/// - The buffer is zeroized on drop (copies made by the caller through
///   [`expose`](Self::expose) are the caller's to handle).
/// - There is no equality and no `Serialize`: a token is sent, not compared
///   or written out.
///
/// ```
/// use weir_keyring::StoredToken;
///
/// let token = StoredToken::new("  aaa.bbb.ccc\n".to_owned());
/// assert_eq!(token.expose(), "aaa.bbb.ccc");
/// assert_eq!(format!("{token:?}"), "StoredToken(***)");
/// ```
#[derive(Clone)]
pub struct StoredToken(String);

impl StoredToken {
    /// Wraps `text`, without the whitespace around it (a token never has
    /// any; a line read from a terminal or a file ends in a newline).
    ///
    /// The string is moved, not copied, unless there is whitespace to drop;
    /// then the original buffer is zeroized.
    #[must_use]
    pub fn new(text: String) -> Self {
        let trimmed = text.trim();
        if trimmed.len() == text.len() {
            return Self(text);
        }
        let original = Zeroizing::new(text);
        Self(original.trim().to_owned())
    }

    /// The token text. Keep the borrow short; never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the token is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Refuses what no store should keep: an empty token, one longer than
    /// [`MAX_TOKEN_BYTES`], or one with whitespace or control characters
    /// (it would break, or inject into, an `Authorization` header).
    pub(crate) fn check_storable(&self) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::InvalidToken {
                reason: "the token is empty",
            });
        }
        if self.0.len() > MAX_TOKEN_BYTES {
            return Err(Error::InvalidToken {
                reason: "the token is longer than 8 KiB",
            });
        }
        if self.0.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidToken {
                reason: "the token contains whitespace or control characters",
            });
        }
        Ok(())
    }
}

impl Drop for StoredToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for StoredToken {}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredToken(***)")
    }
}

impl fmt::Display for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The token in `WEIR_TOKEN`, if that is set to something other than
/// whitespace (surrounding whitespace is dropped).
///
/// CI sets it from its secret store; it takes precedence over the keyring.
/// The value is not checked here: a malformed token is the server's to
/// refuse, with a 401.
#[must_use]
pub fn token_from_env() -> Option<StoredToken> {
    env_token(std::env::var(WEIR_TOKEN_ENV).ok())
}

/// [`token_from_env`] without the process environment, for tests.
fn env_token(value: Option<String>) -> Option<StoredToken> {
    let token = StoredToken::new(value?);
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let token = StoredToken::new("hunter2.hunter2.hunter2".to_owned());
        for out in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{:?}", Some(&token)),
            format!("{:#?}", vec![token.clone()]),
        ] {
            assert!(!out.contains("hunter2"), "{out}");
            assert!(out.contains("***"), "{out}");
        }
        assert_eq!(format!("{token:?}"), "StoredToken(***)");
    }

    #[test]
    fn new_trims_surrounding_whitespace_only() {
        assert_eq!(StoredToken::new("a.b.c\r\n".to_owned()).expose(), "a.b.c");
        assert_eq!(StoredToken::new(" \ta.b.c".to_owned()).expose(), "a.b.c");
        assert_eq!(StoredToken::new("a.b.c".to_owned()).expose(), "a.b.c");
        assert_eq!(StoredToken::new("a b".to_owned()).expose(), "a b");
        assert!(StoredToken::new(" \n".to_owned()).is_empty());
    }

    #[test]
    fn check_storable_refuses_empty_long_and_header_breaking_tokens() {
        assert!(
            StoredToken::new("a.b.c".to_owned())
                .check_storable()
                .is_ok()
        );
        let max = "a".repeat(MAX_TOKEN_BYTES);
        assert!(StoredToken::new(max.clone()).check_storable().is_ok());
        for bad in [
            String::new(),
            format!("{max}a"),
            "a.b\r\nX-Injected: 1".to_owned(),
            "a.b c".to_owned(),
            "a.b\u{0}c".to_owned(),
        ] {
            let err = StoredToken::new(bad).check_storable().unwrap_err();
            assert!(matches!(err, Error::InvalidToken { .. }), "{err:?}");
        }
    }

    #[test]
    fn env_token_ignores_unset_and_blank_values() {
        assert!(env_token(None).is_none());
        assert!(env_token(Some(String::new())).is_none());
        assert!(env_token(Some(" \n".to_owned())).is_none());
        let token = env_token(Some("x.y.z\n".to_owned())).unwrap();
        assert_eq!(token.expose(), "x.y.z");
    }
}
