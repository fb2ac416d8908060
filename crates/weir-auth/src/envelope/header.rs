//! The envelope header: what the MAC binds besides the body.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::envelope::error::EnvelopeError;
use crate::kid::Kid;

/// The only header version this crate writes or accepts.
pub const ENVELOPE_VERSION: u32 = 1;

/// Random bytes in a nonce (base64url: 22 characters).
pub(crate) const NONCE_BYTES: usize = 16;
/// Shortest nonce accepted when opening (16 random bytes, base64url).
const MIN_NONCE_LEN: usize = 22;
/// Longest nonce accepted when opening.
pub(crate) const MAX_NONCE_LEN: usize = 64;

/// What an envelope carries: a task for a worker, or a worker's result.
///
/// Serialized as `"task"` / `"result"`. An envelope is only ever opened as
/// the type the caller expects, so a result can never be executed as a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeType {
    /// A task dispatched to a worker.
    Task,
    /// A worker's answer to a task.
    Result,
}

impl EnvelopeType {
    /// `"task"` or `"result"`, as on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Result => "result",
        }
    }
}

impl fmt::Display for EnvelopeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header of an envelope, as the JSON object
/// `{"v":1,"kid":..,"typ":..,"iat":..,"exp":..,"nonce":..}`.
///
/// # Guarantees
///
/// A header returned by [`Opener`](crate::envelope::Opener) came from an
/// envelope whose MAC verified; it was then parsed strictly (no unknown or
/// repeated fields), `v` is [`ENVELOPE_VERSION`], `kid` equals the key id
/// the MAC was checked with, `nonce` is 22 to 64 base64url characters, and
/// the times passed the opener's checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeHeader {
    /// Header version: [`ENVELOPE_VERSION`].
    pub v: u32,
    /// Id of the key whose MAC covers the envelope.
    pub kid: String,
    /// What the body is.
    pub typ: EnvelopeType,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Random, unique per envelope (16 bytes, base64url); claimed once in a
    /// [`NonceStore`](crate::envelope::NonceStore) to refuse replays.
    pub nonce: String,
}

impl EnvelopeHeader {
    /// Parses the JSON of a header whose MAC has verified under `kid`.
    pub(crate) fn parse(json: &[u8], kid: &Kid) -> Result<Self, EnvelopeError> {
        let header: Self = serde_json::from_slice(json)
            .map_err(|_| EnvelopeError::Malformed("header is not a valid envelope header"))?;
        if header.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::Malformed("unsupported header version"));
        }
        if header.kid != kid.as_str() {
            return Err(EnvelopeError::Malformed(
                "header kid differs from the envelope's kid",
            ));
        }
        if !valid_nonce(&header.nonce) {
            return Err(EnvelopeError::Malformed("invalid nonce"));
        }
        Ok(header)
    }
}

fn valid_nonce(nonce: &str) -> bool {
    (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid() -> Kid {
        Kid::parse("hmac-k1").unwrap()
    }

    const GOOD: &str =
        r#"{"v":1,"kid":"hmac-k1","typ":"task","iat":1,"exp":2,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}"#;

    #[test]
    fn parses_a_good_header() {
        let h = EnvelopeHeader::parse(GOOD.as_bytes(), &kid()).unwrap();
        assert_eq!(h.typ, EnvelopeType::Task);
        assert_eq!(serde_json::to_string(&h).unwrap(), GOOD, "field order");
    }

    #[test]
    fn refuses_anything_looser() {
        for bad in [
            GOOD.replace(r#""v":1"#, r#""v":2"#),
            GOOD.replace("hmac-k1", "hmac-k2"),
            GOOD.replace("task", "admin"),
            GOOD.replace("AAAAAAAAAAAAAAAAAAAAAA", "short"),
            GOOD.replace("AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA/"),
            GOOD.replace(r#""exp":2"#, r#""exp":2,"extra":0"#),
            GOOD.replace(r#""exp":2"#, r#""exp":2,"exp":3"#),
            GOOD.replace(r#""exp":2,"#, ""),
            GOOD.replace(r#""iat":1"#, r#""iat":"1""#),
            format!("{GOOD} x"),
        ] {
            assert!(
                matches!(
                    EnvelopeHeader::parse(bad.as_bytes(), &kid()),
                    Err(EnvelopeError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
