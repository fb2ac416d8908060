//! Stage tokens: their claims, and minting them.
//!
//! A stage token is a compact JWS signed with Ed25519 (`alg: EdDSA`) by the
//! active key of a [`StageKeySet`]; its header names the key by `kid`. It is
//! verified by [`StageVerifier`](crate::StageVerifier).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::keyset::StageKeySet;
use crate::scope::Scope;
use crate::secret::SecretString;
use crate::verifier::{StageVerifier, VerifierConfig};

/// Longest token accepted (and minted), in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default and largest permitted maximum token lifetime (`exp - iat`).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest clock-skew leeway a verifier may be configured with.
pub const MAX_LEEWAY: Duration = Duration::from_secs(30);
/// Longest issuer, audience, principal, run or stage name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// The kind of a weir token, carried in the `typ` claim. A token of one kind
/// is never accepted as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenType {
    /// A stage token (`"weir/stage"`): scoped object-store access for one
    /// attempt of one stage.
    #[serde(rename = "weir/stage")]
    Stage,
    /// An API token (`"weir/api"`): a user or service calling the weir API.
    #[serde(rename = "weir/api")]
    Api,
}

/// The claims of a stage token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The principal the pipeline runs as.
    pub sub: String,
    /// Run id.
    pub run: String,
    /// Stage name.
    pub stage: String,
    /// Attempt number (fences outputs of stale attempts).
    pub attempt: u32,
    /// Everything the stage may touch.
    pub scope: Scope,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Unique token id (a ULID), the handle for revocation.
    pub jti: String,
    /// Token kind; always [`TokenType::Stage`] here.
    pub typ: TokenType,
}

/// What to mint a stage token for.
#[derive(Clone, Debug)]
pub struct MintRequest {
    /// The principal the pipeline runs as.
    pub principal: String,
    /// Run id.
    pub run: String,
    /// Stage name.
    pub stage: String,
    /// Attempt number.
    pub attempt: u32,
    /// The exact scope (already checked against the principal's grants).
    pub scope: Scope,
    /// Requested lifetime; capped by the minter's maximum lifetime.
    pub ttl: Duration,
}

/// A freshly minted token and the claims it carries.
#[derive(Clone, Debug)]
pub struct MintedToken {
    /// The compact JWS (redacted in `Debug`/`Display`).
    pub token: SecretString,
    /// The claims inside it.
    pub claims: StageClaims,
}

/// Mints stage tokens with the active key of a [`StageKeySet`].
///
/// # Guarantees
///
/// - Every token expires: `exp = now + min(ttl, max_lifetime)`, `ttl >= 1s`.
/// - Every token has a non-empty, validated [`Scope`] (a `Scope` cannot be
///   built otherwise), `typ: "weir/stage"` and a fresh ULID `jti`.
/// - A token the verifier would refuse for its size is never minted.
/// - Previous keys outlive every token they signed: the key set's retention
///   must be at least `max_lifetime +` [`MAX_LEEWAY`].
pub struct Minter {
    keys: StageKeySet,
    issuer: String,
    audience: String,
    max_lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl Minter {
    /// A minter for `issuer`/`audience` whose tokens live at most
    /// `max_lifetime` (at most [`DEFAULT_MAX_LIFETIME`]), on the system clock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `issuer` or `audience` is empty, too long
    /// or has control characters, if `max_lifetime` is under a second or over
    /// [`DEFAULT_MAX_LIFETIME`], or if the key set's retention is shorter than
    /// `max_lifetime +` [`MAX_LEEWAY`] (a rotated-out key would be dropped
    /// while tokens it signed are still valid).
    pub fn new(
        keys: StageKeySet,
        issuer: &str,
        audience: &str,
        max_lifetime: Duration,
    ) -> Result<Self> {
        check_config_name(
            issuer,
            "issuer must be 1 to 256 bytes without control characters",
        )?;
        check_config_name(
            audience,
            "audience must be 1 to 256 bytes without control characters",
        )?;
        if max_lifetime < Duration::from_secs(1) || max_lifetime > DEFAULT_MAX_LIFETIME {
            return Err(Error::InvalidConfig {
                reason: "max lifetime must be between 1 s and 24 h",
            });
        }
        if keys.retention() < max_lifetime.saturating_add(MAX_LEEWAY) {
            return Err(Error::InvalidConfig {
                reason: "key retention is shorter than the maximum token lifetime plus leeway",
            });
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            max_lifetime,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key set.
    #[must_use]
    pub fn keys(&self) -> &StageKeySet {
        &self.keys
    }

    /// The maximum token lifetime.
    #[must_use]
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// Rotates the key set at the minter's clock time (see
    /// [`StageKeySet::rotate`]). Verifiers built before the rotation do not
    /// know the new key: rebuild them from [`StageKeySet::public_jwks`].
    ///
    /// # Errors
    ///
    /// As [`StageKeySet::rotate`].
    pub fn rotate(&mut self) -> Result<crate::Kid> {
        let now = self.clock.now();
        self.keys.rotate(now)
    }

    /// The verifier configuration matching this minter (same issuer,
    /// audience and maximum lifetime, default leeway).
    #[must_use]
    pub fn verifier_config(&self) -> VerifierConfig {
        VerifierConfig::new(&self.issuer, &self.audience)
            .with_max_lifetime_capped(self.max_lifetime)
    }

    /// A public-key-only verifier for the tokens this minter mints, with
    /// [`verifier_config`](Self::verifier_config).
    #[must_use]
    pub fn verifier(&self) -> StageVerifier {
        self.keys.verifier(self.verifier_config())
    }

    /// Mints a stage token for `request`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMintRequest`] for an empty, over-long or control-character
    /// principal/run/stage or a ttl under one second;
    /// [`Error::TokenTooLarge`] if the token would exceed [`MAX_TOKEN_BYTES`];
    /// [`Error::Signing`] if signing fails.
    pub fn mint(&self, request: MintRequest) -> Result<MintedToken> {
        let MintRequest {
            principal,
            run,
            stage,
            attempt,
            scope,
            ttl,
        } = request;
        check_request_name(
            &principal,
            "principal must be 1 to 256 bytes without control characters",
        )?;
        check_request_name(
            &run,
            "run must be 1 to 256 bytes without control characters",
        )?;
        check_request_name(
            &stage,
            "stage must be 1 to 256 bytes without control characters",
        )?;
        if ttl < Duration::from_secs(1) {
            return Err(Error::InvalidMintRequest {
                reason: "ttl must be at least one second",
            });
        }
        let lifetime =
            i64::try_from(ttl.min(self.max_lifetime).as_secs()).map_err(|_| Error::Internal {
                reason: "lifetime out of range",
            })?;
        let now = self.clock.now();
        let exp = now.checked_add(lifetime).ok_or(Error::Internal {
            reason: "expiry out of range",
        })?;
        let claims = StageClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: principal,
            run,
            stage,
            attempt,
            scope,
            iat: now,
            nbf: now,
            exp,
            jti: ulid::Ulid::new().to_string(),
            typ: TokenType::Stage,
        };
        let (kid, key) = self.keys.signing_key();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.as_str().to_owned());
        crate::jwt_crypto::install();
        let token = jsonwebtoken::encode(&header, &claims, key).map_err(|_| Error::Signing)?;
        let token = SecretString::new(token);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::TokenTooLarge {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        Ok(MintedToken { token, claims })
    }
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("max_lifetime", &self.max_lifetime)
            .field("clock", &self.clock)
            .finish()
    }
}

pub(crate) fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_BYTES && !s.chars().any(char::is_control)
}

pub(crate) fn check_config_name(s: &str, reason: &'static str) -> Result<()> {
    if name_ok(s) {
        Ok(())
    } else {
        Err(Error::InvalidConfig { reason })
    }
}

pub(crate) fn check_request_name(s: &str, reason: &'static str) -> Result<()> {
    if name_ok(s) {
        Ok(())
    } else {
        Err(Error::InvalidMintRequest { reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, ActionSet, FixedClock, PathKind, ScopeEntry, ScopePath};

    fn scope() -> Scope {
        Scope::new(vec![ScopeEntry {
            store: "lake".into(),
            path: ScopePath::parse("raw/train").unwrap(),
            kind: PathKind::Prefix,
            actions: ActionSet::empty().with(Action::Read),
            columns: None,
        }])
        .unwrap()
    }

    fn request(ttl: Duration) -> MintRequest {
        MintRequest {
            principal: "svc-train".into(),
            run: "run-1".into(),
            stage: "prep".into(),
            attempt: 1,
            scope: scope(),
            ttl,
        }
    }

    fn minter(dir: &std::path::Path, now: i64) -> Minter {
        let keys = StageKeySet::open(dir, now).unwrap();
        Minter::new(keys, "weir", "weir-worker", DEFAULT_MAX_LIFETIME)
            .unwrap()
            .with_clock(Arc::new(FixedClock::new(now)))
    }

    #[test]
    fn mint_sets_times_and_caps_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let m = minter(dir.path(), 1_000);
        let t = m.mint(request(Duration::from_secs(60))).unwrap();
        assert_eq!(
            (t.claims.iat, t.claims.nbf, t.claims.exp),
            (1_000, 1_000, 1_060)
        );
        assert_eq!(t.claims.typ, TokenType::Stage);
        assert_eq!(t.claims.jti.len(), 26);
        let long = m.mint(request(Duration::from_secs(10 * 86_400))).unwrap();
        assert_eq!(long.claims.exp, 1_000 + 86_400);
        assert!(!format!("{t:?}").contains(t.token.expose()));
        let other = m.mint(request(Duration::from_secs(60))).unwrap();
        assert_ne!(t.claims.jti, other.claims.jti);
    }

    #[test]
    fn mint_refuses_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let m = minter(dir.path(), 1_000);
        assert!(m.mint(request(Duration::from_millis(500))).is_err());
        let mut r = request(Duration::from_secs(60));
        r.principal = String::new();
        assert!(m.mint(r).is_err());
        let mut r = request(Duration::from_secs(60));
        r.stage = "a\nb".into();
        assert!(m.mint(r).is_err());
    }

    #[test]
    fn config_validation() {
        let dir = tempfile::tempdir().unwrap();
        let open = || StageKeySet::open(dir.path(), 0).unwrap();
        assert!(Minter::new(open(), "", "aud", DEFAULT_MAX_LIFETIME).is_err());
        assert!(Minter::new(open(), "iss", "a\0", DEFAULT_MAX_LIFETIME).is_err());
        assert!(Minter::new(open(), "iss", "aud", Duration::from_secs(86_401)).is_err());
        assert!(Minter::new(open(), "iss", "aud", Duration::ZERO).is_err());
        let short =
            || StageKeySet::open_with_retention(dir.path(), 0, Duration::from_secs(120)).unwrap();
        assert!(Minter::new(short(), "iss", "aud", DEFAULT_MAX_LIFETIME).is_err());
        assert!(Minter::new(short(), "iss", "aud", Duration::from_secs(90)).is_ok());
    }

    #[test]
    fn oversized_scope_is_not_minted() {
        let dir = tempfile::tempdir().unwrap();
        let m = minter(dir.path(), 1_000);
        let entry = scope().entries().first().unwrap().clone();
        let mut big = entry.clone();
        big.path = ScopePath::parse(&"p".repeat(1000)).unwrap();
        let mut r = request(Duration::from_secs(60));
        r.scope = Scope::new(vec![big; 16]).unwrap();
        assert!(matches!(m.mint(r), Err(Error::TokenTooLarge { .. })));
    }
}
