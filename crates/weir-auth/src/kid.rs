//! Key identifiers.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Longest accepted key id.
pub const MAX_KID_LEN: usize = 64;

/// A key id: `[A-Za-z0-9_-]{1,64}`.
///
/// # Security
///
/// Validated before any lookup, so a hostile `kid` (a path, a URL, 10 KB of
/// junk) is refused before it reaches a map, a file name or an error message.
/// Key ids are never used to build a path from a token.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(String);

impl Kid {
    /// Validates `s` as a key id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKid`] unless `s` matches `[A-Za-z0-9_-]{1,64}`.
    pub fn parse(s: &str) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= MAX_KID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::InvalidKid)
        }
    }

    /// The RFC 7638 JWK thumbprint of an Ed25519 public key (43 characters of
    /// base64url): the key id weir gives the keys it generates.
    #[must_use]
    pub fn thumbprint(public_key: &[u8; 32]) -> Self {
        // Members in lexicographic order, no whitespace (RFC 7638 section 3.2).
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(public_key)
        );
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
    }

    /// The key id as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for s in ["a", "A-b_9", &"x".repeat(64)] {
            assert_eq!(Kid::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for s in [
            "",
            "../../etc/passwd",
            "a/b",
            "a.b",
            "a b",
            "a\0",
            "ключ",
            "http://evil",
            &"x".repeat(65),
            &"x".repeat(10 * 1024),
        ] {
            assert!(Kid::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn thumbprint_is_a_valid_kid_and_matches_rfc8037_example() {
        // RFC 8037 appendix A.3: thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let x: [u8; 32] = x.try_into().unwrap();
        let kid = Kid::thumbprint(&x);
        assert_eq!(kid.as_str(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert!(Kid::parse(kid.as_str()).is_ok());
    }
}
