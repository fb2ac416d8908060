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
        self.check_alg(algorithm)?;
        crate::jwt_crypto::install();
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
        self.payload_after_signature()
    }

    fn check_alg(&self, algorithm: Algorithm) -> Result<()> {
        if alg_name(algorithm) == Some(self.alg.as_str()) {
            Ok(())
        } else {
            Err(Error::AlgorithmMismatch)
        }
    }

    /// The decoded payload. Only call once the signature has verified.
    fn payload_after_signature(&self) -> Result<Vec<u8>> {
        let payload = compact::decode(self.parts.payload)?;
        compact::check_unique_keys(&payload, "payload")?;
        Ok(payload)
    }
}

/// An Ed25519 key as [`verify_ed25519_batch`] needs it: `decoding` for the
/// one-by-one path through `jsonwebtoken`, `point` (decompressed once) for
/// the batch equation.
pub(crate) struct EdKey {
    pub(crate) decoding: DecodingKey,
    pub(crate) point: Option<ed25519_dalek::VerifyingKey>,
}

/// Verifies many EdDSA tokens at once and returns, in order, what
/// [`Unverified::verify`] would return for each.
///
/// # Guarantees
///
/// - Each token's `alg` must be `EdDSA` (checked first, one by one), and no
///   payload is decoded before its signature has verified.
/// - The signatures are checked together with ed25519-dalek's
///   [`verify_batch`](ed25519_dalek::verify_batch): one multiscalar
///   multiplication for the whole batch, about half the work of checking
///   them one by one. Its randomizers come from a transcript of every
///   input, so a forged signature cannot be cancelled by another.
/// - If the batch equation fails, every token is checked again on its own
///   through `jsonwebtoken`, so a bad token fails alone and the others get
///   exactly the single-check answer.
/// - The batch equation is cofactored, the single check is not: they differ
///   only on a signature whose `R` carries a small-order component, which
///   only the holder of the private key can produce. For tokens signed by
///   weir's own keys this admits no token that a single check would refuse
///   and an attacker could make.
pub(crate) fn verify_ed25519_batch(items: &[(&Unverified<'_>, &EdKey)]) -> Vec<Result<Vec<u8>>> {
    let batch = batch_inputs(items);
    let all_valid = match &batch {
        Some((messages, signatures, points)) if messages.len() > 1 => {
            ed25519_dalek::verify_batch(messages, signatures, points).is_ok()
        }
        _ => false,
    };
    items
        .iter()
        .map(|(token, key)| {
            if all_valid {
                token.payload_after_signature()
            } else {
                token.verify(&key.decoding, Algorithm::EdDSA)
            }
        })
        .collect()
}

type BatchInputs<'a> = (
    Vec<&'a [u8]>,
    Vec<ed25519_dalek::Signature>,
    Vec<ed25519_dalek::VerifyingKey>,
);

/// The batch equation's inputs, or `None` if any token cannot take part
/// (wrong `alg`, a signature that is not 64 bytes, a key without a point):
/// then every token is checked on its own, and fails or passes there.
fn batch_inputs<'a>(items: &[(&'a Unverified<'_>, &EdKey)]) -> Option<BatchInputs<'a>> {
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut points = Vec::with_capacity(items.len());
    for (token, key) in items {
        token.check_alg(Algorithm::EdDSA).ok()?;
        let raw = compact::decode(token.parts.signature).ok()?;
        signatures.push(ed25519_dalek::Signature::from_slice(&raw).ok()?);
        messages.push(token.parts.signing_input.as_bytes());
        points.push(key.point?);
    }
    Some((messages, signatures, points))
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
