//! Why an API token was refused.

use crate::error::Error;

/// Why authentication failed, for audit records and logs.
///
/// # Security
///
/// No variant carries the token, any part of it, a signature, key material
/// or an attacker-chosen string: every field is `'static`. The HTTP layer
/// maps every variant to the same opaque 401 and records
/// [`reason`](Self::reason) in the audit log; telling the client which check
/// failed would help an attacker.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ApiAuthError {
    /// No token was presented (empty).
    #[error("no token")]
    Missing,
    /// Longer than [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES); refused on
    /// its length alone.
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS: parts, characters, base64url or header JSON.
    #[error("malformed token")]
    Malformed,
    /// A JSON object in the header or payload repeats a key.
    #[error("duplicate JSON key in token")]
    DuplicateKey,
    /// The header has a `crit` parameter; none are understood.
    #[error("token header has a crit parameter")]
    CritHeader,
    /// The header has a parameter that is refused (`jwk`, `jku`, `x5u`,
    /// `x5c`, or anything unknown): keys never come from the token.
    #[error("token header has an unsupported parameter")]
    UnsupportedHeader,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// The `kid` is malformed or names no trusted key.
    #[error("unknown key id")]
    UnknownKid,
    /// The header's `alg` is not the one algorithm bound to the key.
    #[error("token algorithm is not the algorithm bound to its key")]
    AlgorithmMismatch,
    /// The signature does not verify under the key.
    #[error("token signature is invalid")]
    BadSignature,
    /// A claim is mistyped, out of range, or (weir tokens) unknown.
    #[error("malformed token claims")]
    MalformedClaims,
    /// A required claim is absent (or `null`).
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// A token of another kind (a stage token, or an external token
    /// claiming a weir type).
    #[error("wrong token type")]
    WrongType,
    /// `iss` is not the issuer bound to the key.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` does not name the expected audience.
    #[error("wrong token audience")]
    WrongAudience,
    /// Time claims contradict each other (`exp` before `iat`, ...).
    #[error("token time claims are inconsistent")]
    InconsistentTimes,
    /// The token lives longer than the verifier's maximum lifetime.
    #[error("token lifetime exceeds the maximum")]
    LifetimeTooLong,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token's `jti` has been revoked.
    #[error("token revoked")]
    Revoked,
}

impl ApiAuthError {
    /// A short, stable, snake_case code for audit records and metrics,
    /// e.g. `"expired"`. Never changes meaning once released.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::DuplicateKey => "duplicate_key",
            Self::CritHeader => "crit_header",
            Self::UnsupportedHeader => "unsupported_header",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::MalformedClaims => "malformed_claims",
            Self::MissingClaim(_) => "missing_claim",
            Self::WrongType => "wrong_type",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::InconsistentTimes => "inconsistent_times",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::IssuedInFuture => "issued_in_future",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Maps a failure of the shared verification steps (size, structure,
    /// header, signature, times) to its API counterpart. Anything else,
    /// including internal errors, fails closed as [`Self::Malformed`].
    pub(crate) fn from_token_error(e: &Error) -> Self {
        match e {
            Error::TokenTooLarge { .. } => Self::TooLarge,
            Error::MalformedToken { .. } => Self::Malformed,
            Error::DuplicateKey { .. } => Self::DuplicateKey,
            Error::CriticalHeader => Self::CritHeader,
            Error::UnsupportedHeader => Self::UnsupportedHeader,
            Error::MissingKid => Self::MissingKid,
            Error::InvalidKid | Error::UnknownKid { .. } => Self::UnknownKid,
            Error::AlgorithmMismatch => Self::AlgorithmMismatch,
            Error::BadSignature => Self::BadSignature,
            Error::MalformedClaims { .. } => Self::MalformedClaims,
            Error::WrongTokenType => Self::WrongType,
            Error::WrongIssuer => Self::WrongIssuer,
            Error::WrongAudience => Self::WrongAudience,
            Error::InconsistentTimes => Self::InconsistentTimes,
            Error::LifetimeTooLong { .. } => Self::LifetimeTooLong,
            Error::IssuedInFuture => Self::IssuedInFuture,
            Error::NotYetValid => Self::NotYetValid,
            Error::Expired => Self::Expired,
            Error::Revoked => Self::Revoked,
            _ => Self::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_snake_case_and_distinct() {
        let all = [
            ApiAuthError::Missing,
            ApiAuthError::TooLarge,
            ApiAuthError::Malformed,
            ApiAuthError::DuplicateKey,
            ApiAuthError::CritHeader,
            ApiAuthError::UnsupportedHeader,
            ApiAuthError::MissingKid,
            ApiAuthError::UnknownKid,
            ApiAuthError::AlgorithmMismatch,
            ApiAuthError::BadSignature,
            ApiAuthError::MalformedClaims,
            ApiAuthError::MissingClaim("sub"),
            ApiAuthError::WrongType,
            ApiAuthError::WrongIssuer,
            ApiAuthError::WrongAudience,
            ApiAuthError::InconsistentTimes,
            ApiAuthError::LifetimeTooLong,
            ApiAuthError::IssuedInFuture,
            ApiAuthError::NotYetValid,
            ApiAuthError::Expired,
            ApiAuthError::Revoked,
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
        assert_eq!(
            ApiAuthError::MissingClaim("exp").to_string(),
            "token lacks the exp claim"
        );
    }

    #[test]
    fn shared_errors_map_and_unknown_ones_fail_closed() {
        assert_eq!(
            ApiAuthError::from_token_error(&Error::TokenTooLarge { len: 9, max: 8 }),
            ApiAuthError::TooLarge
        );
        assert_eq!(
            ApiAuthError::from_token_error(&Error::InvalidKid),
            ApiAuthError::UnknownKid
        );
        assert_eq!(
            ApiAuthError::from_token_error(&Error::Internal { reason: "x" }),
            ApiAuthError::Malformed
        );
    }
}
