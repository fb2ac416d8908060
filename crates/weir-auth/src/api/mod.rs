//! API tokens: who may call the weir HTTP API, and as what [`Role`].
//!
//! weir mints its own API tokens (HS256 under an [`ApiKeySet`] secret) and
//! can also trust an external identity provider's tokens (RS256, ES256 or
//! EdDSA keys from its JWKS). An [`ApiVerifier`] turns a bearer token into an
//! [`Identity`] or an [`ApiAuthError`].
//!
//! ```
//! use std::time::Duration;
//! use weir_auth::api::{ApiKeySet, ApiVerifier, ApiVerifierConfig, Role};
//!
//! # fn main() -> weir_auth::Result<()> {
//! # let state = tempfile::tempdir().map_err(|_| weir_auth::Error::Internal { reason: "tmp" })?;
//! let keys = ApiKeySet::load_or_create(state.path())?;
//! let minted = keys
//!     .minter("weir", "weir-api")
//!     .mint("alice", &[Role::Engineer], Duration::from_secs(3600))?;
//!
//! let verifier = ApiVerifier::new(&keys, ApiVerifierConfig::new("weir", "weir-api"));
//! let who = verifier.verify(minted.token.expose()).expect("valid token");
//! assert_eq!(who.sub, "alice");
//! assert!(who.has_role(Role::Engineer));
//!
//! verifier.revoke(&minted.jti, minted.exp)?;
//! let err = verifier.verify(minted.token.expose()).unwrap_err();
//! assert_eq!(err.reason(), "revoked");
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - Each key is bound to one algorithm; the header's `alg` is only compared
//!   with it. weir's secrets are at least 256 bits from the OS RNG.
//! - A stage token is never accepted as an API token, and an API token never
//!   as a stage token (`typ` claims, distinct keys and algorithms).
//! - Every token expires; API tokens live at most [`API_MAX_LIFETIME`].
//! - Revocation is checked on every verify, cached or not; a cached entry
//!   never outlives its token's `exp`.
//! - Tokens and secrets never appear in errors or `Debug` output.
//!
//! # Non-goals
//!
//! - Fetching a JWKS over the network or scheduling reloads: the caller
//!   passes the document ([`parse_jwks_document`] parses its bytes strictly)
//!   and swaps it in with [`ApiVerifier::replace_external_jwks`] or
//!   [`ApiVerifier::reload_api_keys`].
//! - Mapping roles to routes: the HTTP layer does that.

mod cache;
mod claims;
mod error;
mod jwks;
mod key_table;
mod keys;
mod minter;
mod role;
mod verifier;

use std::time::Duration;

use crate::token::MAX_LEEWAY;

pub use error::ApiAuthError;
pub use jwks::parse_jwks_document;
pub use keys::ApiKeySet;
pub use minter::{ApiClaims, ApiMinter, MintedApiToken};
pub use role::{Identity, Role};
pub use verifier::{ApiVerifier, ApiVerifierConfig};

/// Longest lifetime of an API token (`exp - iat`): 30 days.
pub const API_MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long a rotated-out API key still verifies: the longest token
/// lifetime plus the largest leeway.
pub const API_KEY_RETENTION: Duration = API_MAX_LIFETIME.saturating_add(MAX_LEEWAY);
/// Tokens an [`ApiVerifier`] caches by default.
pub const DEFAULT_API_CACHE_CAPACITY: u64 = 10_000;
/// Smallest HS256 secret accepted: 32 bytes (256 bits).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// File name of the API key set under `<state_dir>/keys/api/`.
pub const API_KEYS_FILE: &str = "api-keys.json";
