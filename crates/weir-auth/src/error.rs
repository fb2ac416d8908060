//! The crate's error type.
//!
//! # Security
//!
//! No variant carries a token, a signature, key material or an
//! attacker-chosen string of unbounded length. Token failures name the check
//! that failed, never the input that failed it; a `kid` is only ever echoed
//! after it has passed [`Kid`](crate::Kid) validation.

use std::path::PathBuf;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `weir-auth`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scope path failed validation.
    #[error("invalid scope path: {reason}")]
    InvalidScopePath {
        /// Which rule the path broke.
        reason: &'static str,
    },

    /// A scope (or one of its entries) failed validation.
    #[error("invalid scope: {reason}")]
    InvalidScope {
        /// Which rule the scope broke.
        reason: &'static str,
    },

    /// A key id does not match `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid key id: must match [A-Za-z0-9_-]{{1,64}}")]
    InvalidKid,

    /// A role name is not one of `admin`, `engineer`, `auditor`, `worker`.
    #[error("unknown role: expected admin, engineer, auditor or worker")]
    UnknownRole,

    /// Configuration given to a constructor is unusable.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A mint request is unusable.
    #[error("invalid mint request: {reason}")]
    InvalidMintRequest {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Reading or writing key material failed.
    #[error("i/o error on {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A key file or directory is accessible to users other than its owner, or
    /// is not a plain file/directory.
    #[error("refusing {path}: mode {mode:o} is accessible beyond its owner or not a plain file")]
    InsecurePermissions {
        /// The file or directory involved.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A key file or the key set manifest is malformed or inconsistent.
    #[error("invalid key store at {path}: {reason}")]
    InvalidKeyStore {
        /// The file or directory involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A JWKS document could not be turned into verification keys.
    #[error("invalid JWKS document: {reason}")]
    InvalidJwks {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    Random,

    /// Signing a token failed inside the JWT library.
    #[error("token signing failed")]
    Signing,

    /// The token is longer than the verifier accepts (checked before anything
    /// else is looked at).
    #[error("token too large: {len} bytes, at most {max}")]
    TokenTooLarge {
        /// The token's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The token is not a well-formed JWS compact serialization.
    #[error("malformed token: {reason}")]
    MalformedToken {
        /// Which structural rule it broke.
        reason: &'static str,
    },

    /// A JSON object in the header or payload repeats a key.
    #[error("duplicate JSON key in token {part}")]
    DuplicateKey {
        /// `"header"` or `"payload"`.
        part: &'static str,
    },

    /// The header names an algorithm other than the one bound to the key.
    #[error("token algorithm is not the algorithm bound to the key (EdDSA)")]
    AlgorithmMismatch,

    /// The header carries a `crit` parameter; none are understood.
    #[error("token header has a crit parameter")]
    CriticalHeader,

    /// The header carries a parameter this verifier does not accept
    /// (`jku`, `jwk`, `x5u`, ... : keys never come from the token).
    #[error("token header has an unsupported parameter")]
    UnsupportedHeader,

    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,

    /// No verification key has this `kid`.
    #[error("unknown key id {kid}")]
    UnknownKid {
        /// The (validated) key id.
        kid: String,
    },

    /// The signature does not verify under the key named by `kid`.
    #[error("token signature is invalid")]
    BadSignature,

    /// The payload does not decode into stage claims (missing or mistyped
    /// claim, unknown claim, invalid scope, ...).
    #[error("malformed token claims: {reason}")]
    MalformedClaims {
        /// Which category of problem.
        reason: &'static str,
    },

    /// The token is of another kind (e.g. an API token offered as a stage token).
    #[error("wrong token type")]
    WrongTokenType,

    /// `iss` is not the expected issuer.
    #[error("wrong token issuer")]
    WrongIssuer,

    /// `aud` is not the expected audience.
    #[error("wrong token audience")]
    WrongAudience,

    /// The token has expired.
    #[error("token expired")]
    Expired,

    /// The token's `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,

    /// The token's `iat` is in the future.
    #[error("token issued in the future")]
    IssuedInFuture,

    /// The token's time claims are inconsistent (`exp <= iat`, `nbf < iat`, ...).
    #[error("token time claims are inconsistent")]
    InconsistentTimes,

    /// `exp - iat` exceeds the maximum token lifetime.
    #[error("token lifetime {lifetime}s exceeds the maximum {max}s")]
    LifetimeTooLong {
        /// `exp - iat` in seconds.
        lifetime: i64,
        /// The maximum in seconds.
        max: i64,
    },

    /// The token's `jti` has been revoked.
    #[error("token revoked")]
    Revoked,

    /// The revocation backend could not record a revocation.
    #[error("revocation backend failed: {reason}")]
    Revocation {
        /// What went wrong.
        reason: &'static str,
    },

    /// A broken internal invariant (a bug, not bad input).
    #[error("internal error: {reason}")]
    Internal {
        /// Which invariant.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn key_store(path: impl Into<PathBuf>, reason: &'static str) -> Self {
        Self::InvalidKeyStore {
            path: path.into(),
            reason,
        }
    }
}
