//! Chain ids: which writer a hash chain belongs to.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::admission::looks_like_jwt;
use crate::error::{Error, Result};

/// Longest chain id, in bytes.
pub const MAX_CHAIN_ID_BYTES: usize = 128;

/// The id of one writer's hash chain (e.g. `cli`, `api`, `worker-gpu-3`):
/// `[A-Za-z0-9._:-]{1,128}`. Each writer appends to its own chain, so chains
/// never interleave and each has a gapless sequence starting at 1.
///
/// Shared, not copied: every event a writer seals names its chain, so a
/// clone is a reference count, not an allocation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(Arc<str>);

impl Serialize for ChainId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl ChainId {
    /// Validates `id`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChainId`] if it is empty, too long, uses another
    /// character or looks like a token.
    pub fn parse(id: &str) -> Result<Self> {
        let bad = |reason| Err(Error::InvalidChainId { reason });
        if id.is_empty() || id.len() > MAX_CHAIN_ID_BYTES {
            return bad("must be 1 to 128 bytes");
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return bad("must match [A-Za-z0-9._:-]");
        }
        if looks_like_jwt(id) {
            return bad("looks like a token");
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ChainId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_writer_names() {
        for id in ["cli", "api", "worker-gpu-3", "host.example:7", "a_b"] {
            assert_eq!(ChainId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_empty_long_and_odd_characters() {
        assert!(ChainId::parse("").is_err());
        assert!(ChainId::parse(&"a".repeat(129)).is_err());
        for id in ["a b", "a/b", "a'b", "a;DROP TABLE x", "é", "a\nb"] {
            assert!(ChainId::parse(id).is_err(), "{id:?}");
        }
    }

    #[test]
    fn jwt_as_chain_id_is_refused() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
        assert!(ChainId::parse(jwt).is_err());
    }
}
