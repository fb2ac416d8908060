//! `weir-auth`: secrets, stage-token signing keys, stage-token minting and
//! verification, API tokens for the HTTP API, verified-token caches and
//! revocation.
//!
//! At dispatch the coordinator [`Minter::mint`]s a short-lived Ed25519 JWT
//! (a *stage token*) carrying the exact [`Scope`] a stage may touch; a worker
//! checks it with a [`StageVerifier`] that holds public keys only, and every
//! guarded object-store call asks [`Scope::allows`].
//!
//! Callers of the HTTP API present an *API token*: weir's own (HS256, minted
//! by an [`ApiMinter`] from an [`ApiKeySet`]) or an external identity
//! provider's (RS256, ES256 or EdDSA from its JWKS). An [`ApiVerifier`] turns
//! it into an [`Identity`] with [`Role`]s; see the [`api`] module.
//!
//! Tasks travel from the coordinator to workers, and results back, in
//! HMAC-SHA256 *envelopes*: a [`Sealer`] signs, an [`Opener`] verifies the
//! raw bytes before decoding anything and refuses replays through a
//! [`NonceStore`]; see the [`envelope`] module.
//!
//! ```
//! use std::time::Duration;
//! use weir_auth::{Action, ActionSet, MintRequest, Minter, PathKind, Scope, ScopeEntry,
//!                 ScopePath, StageKeySet, DEFAULT_MAX_LIFETIME};
//!
//! # fn main() -> weir_auth::Result<()> {
//! # let state = tempfile::tempdir().map_err(|e| weir_auth::Error::Internal { reason: "tmp" })?;
//! let now = 1_700_000_000;
//! let keys = StageKeySet::open(state.path(), now)?;
//! let minter = Minter::new(keys, "weir", "weir-worker", DEFAULT_MAX_LIFETIME)?;
//! let scope = Scope::new(vec![ScopeEntry {
//!     store: "lake".into(),
//!     path: ScopePath::parse("raw/train")?,
//!     kind: PathKind::Prefix,
//!     actions: ActionSet::empty().with(Action::Read),
//!     columns: None,
//! }])?;
//! let minted = minter.mint(MintRequest {
//!     principal: "svc-train".into(),
//!     run: "01J0RUN".into(),
//!     stage: "prepare".into(),
//!     attempt: 1,
//!     scope,
//!     ttl: Duration::from_secs(600),
//! })?;
//!
//! let verifier = minter.verifier(); // public keys only
//! let claims = verifier.verify_now(minted.token.expose())?;
//! let file = ScopePath::parse("raw/train/part-0.parquet")?;
//! assert!(claims.scope.allows("lake", &file, Action::Read).is_some());
//! assert!(claims.scope.allows("lake", &ScopePath::parse("raw/training")?, Action::Read).is_none());
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - Secrets ([`SecretBytes`], [`SecretString`], minted tokens) print as `***`,
//!   are zeroized on drop and compare in constant time. No [`Error`] contains
//!   a token, a signature or key material.
//! - A stage token is signed with Ed25519 only; the verifier binds the
//!   algorithm to the key and never takes it from the header, so `alg: none`,
//!   HMAC-with-the-public-key and other confusions are refused.
//! - Every stage token expires (at most 24 h after issue); `exp`, `nbf`,
//!   `iat`, `iss`, `aud`, `typ` are required and checked with at most 30 s
//!   leeway. A token of another kind (`weir/api`) is never accepted as a
//!   stage token, nor a stage token as an API token.
//! - API tokens: each key is bound to one algorithm (HS256 secrets of at
//!   least 256 bits for weir's own tokens; RS256, ES256 or EdDSA for an
//!   external provider); `exp`, `iss`, `aud`, `sub` are required; API tokens
//!   live at most 30 days.
//! - Nothing in the payload is parsed before the signature is verified;
//!   repeated JSON keys, unknown claims and mistyped claims are refused.
//! - A scope is never empty and never covers a whole store; paths are
//!   canonical and prefix matching is segment-aware (`raw/train` never
//!   covers `raw/training`).
//! - Key files are 0600 in a 0700 directory; loading refuses anything looser.
//!   A rotated-out public key is kept until every token it signed has expired.
//! - Revocation is consulted on every verification, cached or not; a cached
//!   entry is never served at or after its token's `exp`.
//! - An envelope is refused on its length alone if oversized, and nothing in
//!   it is decoded or parsed before its MAC (compared in constant time)
//!   verifies; each nonce opens for execution once; envelope keys are
//!   hot-reloaded without torn reads.
//! - No `unsafe`; untrusted input never panics.
//!
//! # Non-goals
//!
//! - Evaluating grants or policies (`weir-policy` compiles scopes from them).
//! - Enforcing [`ColumnRule`]s: they are validated and carried; the readers
//!   in `weir-engine` enforce them.
//! - Distributed revocation or caching (the [`RevocationList`] trait is the
//!   seam for a Redis backend).
//! - Fetching a JWKS over the network, or mapping roles to routes.
//! - Windows: key-file permission checks need Unix permissions.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(not(unix))]
compile_error!("weir-auth needs Unix file permissions to protect key files");

mod action;
pub mod api;
mod cache;
mod clock;
mod column;
mod compact;
pub mod envelope;
mod error;
mod jws;
mod jwt_crypto;
mod keyset;
mod kid;
mod path;
mod private_file;
mod revocation;
mod scope;
mod secret;
mod times;
mod token;
mod verifier;

pub use action::{Action, ActionSet};
pub use api::{
    API_KEY_RETENTION, API_KEYS_FILE, API_MAX_LIFETIME, ApiAuthError, ApiClaims, ApiKeySet,
    ApiMinter, ApiVerifier, ApiVerifierConfig, DEFAULT_API_CACHE_CAPACITY, Identity,
    MIN_HS256_SECRET_BYTES, MintedApiToken, Role, parse_jwks_document,
};
pub use cache::{DEFAULT_CACHE_CAPACITY, VerifiedCache};
pub use clock::{Clock, FixedClock, SystemClock};
pub use column::{
    ColumnRule, MAX_COLUMN_GRANTS, MAX_COLUMN_NAME_BYTES, MAX_COLUMNS, MAX_GRANT_ID_BYTES, Mask,
    check_column_name,
};
pub use envelope::{
    DEFAULT_ENVELOPE_GRACE, DEFAULT_MAX_ENVELOPE_BYTES, DEFAULT_MAX_ENVELOPE_LIFETIME,
    DEFAULT_MISS_RELOAD_INTERVAL, DEFAULT_NONCE_CAPACITY, ENVELOPE_VERSION, EnvelopeError,
    EnvelopeHeader, EnvelopeKeys, EnvelopeType, HMAC_KEYS_FILE, HmacKeySet, InMemoryNonces,
    NonceStore, NonceStoreError, Opened, Opener, Sealer,
};
pub use error::{Error, Result};
pub use keyset::{DEFAULT_RETENTION, StageKeySet};
pub use kid::{Kid, MAX_KID_LEN};
pub use path::{MAX_PATH_BYTES, MAX_PATH_SEGMENTS, ScopePath};
pub use revocation::{InMemoryRevocationList, RevocationList};
pub use scope::{MAX_SCOPE_ENTRIES, MAX_STORE_NAME_BYTES, PathKind, Scope, ScopeEntry};
pub use secret::{SecretBytes, SecretString};
pub use token::{
    DEFAULT_MAX_LIFETIME, MAX_LEEWAY, MAX_NAME_BYTES, MAX_TOKEN_BYTES, MintRequest, MintedToken,
    Minter, StageClaims, TokenType,
};
pub use verifier::{DEFAULT_LEEWAY, MAX_JWKS_KEYS, StageVerifier, VerifierConfig};
