//! The verification steps every weir JWT goes through, whatever its kind:
//! size cap, structure, header, key id, algorithm binding, signature.
//!
//! # Invariants
//!
//! - **Size first.** [`check_size`] looks only at the length, so a token of
//!   any size costs O(1) to refuse; callers call it before hashing or parsing.
//! - **Payload only after the signature.** [`Unverified`] exposes the header's
//!   `alg` and `kid` and nothing of the payload; the only way to the payload
//!   bytes is [`Unverified::verify`], which checks the signature first.
//! - **Algorithm from the key.** The header's `alg` is only ever compared
//!   with the algorithm bound to the key; the signature is checked with the
//!   key's algorithm.

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::compact::{self, Compact, HeaderRules};
use crate::error::{Error, Result};
use crate::kid::Kid;
use crate::token::MAX_TOKEN_BYTES;

/// Refuses a token longer than [`MAX_TOKEN_BYTES`], on its length alone.
pub(crate) fn check_size(token: &str) -> Result<()> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TokenTooLarge {
            len: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(())
}

/// A structurally valid token whose signature has not been checked yet.
/// (No `Debug`: it holds the token.)
pub(crate) struct Unverified<'a> {
    parts: Compact<'a>,
    alg: String,
    kid: Kid,
}

impl<'a> Unverified<'a> {
    /// Splits `token`, parses its header under `rules` and validates its
    /// `kid`. Nothing of the payload is looked at.
    pub(crate) fn parse(token: &'a str, rules: &HeaderRules) -> Result<Self> {
        let parts = compact::split(token)?;
        let header = compact::parse_header(&compact::decode(parts.header)?, rules)?;
        let kid = Kid::parse(&header.kid.ok_or(Error::MissingKid)?)?;
        Ok(Self {
            parts,
            alg: header.alg,
            kid,
        })
    }

    /// The header's key id (validated syntax; not yet trusted).
    pub(crate) fn kid(&self) -> &Kid {
        &self.kid
    }

    /// Checks that the header names `algorithm`, the one algorithm bound to
    /// `key`, then the signature under `key` with `algorithm`; returns the
    /// decoded payload, checked for repeated JSON keys at any depth.
    pub(crate) fn verify(&self, key: &DecodingKey, algorithm: Algorithm) -> Result<Vec<u8>> {
        if alg_name(algorithm) != Some(self.alg.as_str()) {
            return Err(Error::AlgorithmMismatch);
        }
        let valid = jsonwebtoken::crypto::verify(
            self.parts.signature,
            self.parts.signing_input.as_bytes(),
            key,
            algorithm,
        )
        .map_err(|_| Error::BadSignature)?;
        if !valid {
            return Err(Error::BadSignature);
        }
        let payload = compact::decode(self.parts.payload)?;
        compact::check_unique_keys(&payload, "payload")?;
        Ok(payload)
    }
}

/// The JOSE name of each algorithm a weir key may be bound to; `None` for
/// any other, which then matches no header at all.
pub(crate) fn alg_name(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::EdDSA => Some("EdDSA"),
        Algorithm::ES256 => Some("ES256"),
        Algorithm::RS256 => Some("RS256"),
        Algorithm::HS256 => Some("HS256"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_cap_is_inclusive() {
        assert!(check_size(&"a".repeat(MAX_TOKEN_BYTES)).is_ok());
        assert!(matches!(
            check_size(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(Error::TokenTooLarge { .. })
        ));
    }

    #[test]
    fn only_bound_algorithms_have_names() {
        assert_eq!(alg_name(Algorithm::HS256), Some("HS256"));
        assert_eq!(alg_name(Algorithm::HS384), None);
        assert_eq!(alg_name(Algorithm::PS256), None);
    }
}
