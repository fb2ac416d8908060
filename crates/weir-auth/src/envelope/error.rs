//! Why an envelope was refused, and why a nonce store failed.
//!
//! # Security
//!
//! No variant carries the envelope, any part of it, the MAC, a nonce, a key
//! id from an unverified envelope, or key material: every string is
//! `'static`. A failure names the check that failed, never the input.

use crate::envelope::header::EnvelopeType;
use crate::error::Error;

/// Why an envelope could not be sealed or opened.
///
/// The checks run in the order the variants are listed in the
/// [module docs](crate::envelope#checks-in-order); the first that fails is
/// returned. [`reason`](Self::reason) gives a short stable code for audit
/// events.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The raw envelope is longer than the limit; refused on its length
    /// alone, before any byte of it is looked at.
    #[error("envelope too large: {len} bytes, at most {max}")]
    Oversized {
        /// The envelope's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Not a well-formed envelope: framing, key id syntax, base64url, or
    /// (after the MAC verified) the header JSON.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),

    /// No current key has the envelope's key id (never created, or retired
    /// after its grace period), even after one reload of the key file.
    #[error("envelope signed with an unknown key id")]
    UnknownKid,

    /// The MAC does not verify under the key named by the key id.
    #[error("envelope MAC does not verify")]
    BadMac,

    /// The envelope is past its expiry (plus leeway).
    #[error("envelope expired")]
    Expired,

    /// The envelope's issue time is in the future (beyond the leeway).
    #[error("envelope issued in the future")]
    NotYetValid,

    /// `exp` is not after `iat`.
    #[error("envelope time fields are inconsistent")]
    InconsistentTimes,

    /// `exp - iat` exceeds the maximum envelope lifetime.
    #[error("envelope lifetime {lifetime}s exceeds the maximum {max}s")]
    LifetimeTooLong {
        /// `exp - iat` in seconds.
        lifetime: i64,
        /// The maximum in seconds.
        max: i64,
    },

    /// A verified envelope of another type (e.g. a result offered as a task).
    #[error("wrong envelope type: expected {expected}, found {found}")]
    WrongType {
        /// The type the caller asked for.
        expected: EnvelopeType,
        /// The type in the verified header.
        found: EnvelopeType,
    },

    /// The envelope's nonce was already claimed: a replay.
    #[error("envelope replayed: its nonce was already used")]
    Replayed,

    /// The nonce store could not answer; the envelope is refused (fail
    /// closed).
    #[error("nonce store failed: {0}")]
    Nonces(#[from] NonceStoreError),

    /// Loading or reloading the keys failed, or the operating system's
    /// random number generator failed while sealing.
    #[error("envelope keys: {0}")]
    Keys(#[from] Error),

    /// A seal request is unusable (a TTL of zero or beyond the maximum
    /// lifetime).
    #[error("invalid seal request: {0}")]
    InvalidRequest(&'static str),
}

impl EnvelopeError {
    /// A short, stable, snake_case code for audit events and metrics, e.g.
    /// `"bad_mac"`. Never changes meaning once released.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Malformed(_) => "malformed",
            Self::UnknownKid => "unknown_kid",
            Self::BadMac => "bad_mac",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::InconsistentTimes => "inconsistent_times",
            Self::LifetimeTooLong { .. } => "lifetime_too_long",
            Self::WrongType { .. } => "wrong_type",
            Self::Replayed => "replayed",
            Self::Nonces(_) => "nonce_store",
            Self::Keys(_) => "keys",
            Self::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// Why a [`NonceStore`](crate::envelope::NonceStore) could not answer.
///
/// # Security
///
/// Implementations must not put the nonce, a connection string with a
/// password, or any other secret in a variant: the message may be logged.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NonceStoreError {
    /// The store holds its capacity of unexpired nonces; it refuses to
    /// forget a live one to make room.
    #[error("nonce store full: {capacity} unexpired nonces")]
    Full {
        /// The store's capacity.
        capacity: usize,
    },

    /// The nonce is not one the store accepts (empty, too long, ...).
    #[error("invalid nonce: {reason}")]
    InvalidNonce {
        /// Which rule it broke.
        reason: &'static str,
    },

    /// The backend (e.g. Redis) failed or could not be reached.
    #[error("nonce store unavailable: {reason}")]
    Unavailable {
        /// What failed, in words safe to log.
        reason: &'static str,
        /// The underlying error, if any. It must not carry secrets either.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_snake_case_and_distinct() {
        let all = [
            EnvelopeError::Oversized { len: 2, max: 1 },
            EnvelopeError::Malformed("x"),
            EnvelopeError::UnknownKid,
            EnvelopeError::BadMac,
            EnvelopeError::Expired,
            EnvelopeError::NotYetValid,
            EnvelopeError::InconsistentTimes,
            EnvelopeError::LifetimeTooLong {
                lifetime: 2,
                max: 1,
            },
            EnvelopeError::WrongType {
                expected: EnvelopeType::Task,
                found: EnvelopeType::Result,
            },
            EnvelopeError::Replayed,
            EnvelopeError::Nonces(NonceStoreError::Full { capacity: 1 }),
            EnvelopeError::Keys(Error::Random),
            EnvelopeError::InvalidRequest("x"),
        ];
        let mut seen = std::collections::HashSet::new();
        for e in all {
            let r = e.reason();
            assert!(
                r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r}"
            );
            assert!(seen.insert(r), "{r} twice");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn wrong_type_names_both_types() {
        let e = EnvelopeError::WrongType {
            expected: EnvelopeType::Task,
            found: EnvelopeType::Result,
        };
        assert_eq!(
            e.to_string(),
            "wrong envelope type: expected task, found result"
        );
    }
}
