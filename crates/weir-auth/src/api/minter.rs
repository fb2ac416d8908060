//! Minting weir's own API tokens (HS256).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::api::API_MAX_LIFETIME;
use crate::api::role::Role;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::kid::Kid;
use crate::secret::{SecretBytes, SecretString};
use crate::token::{MAX_TOKEN_BYTES, TokenType, check_config_name, check_request_name};

/// The claims of a weir-issued API token. Every one is required; a token
/// with any other claim is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Who the token speaks for.
    pub sub: String,
    /// The caller's roles (sorted, no repeats, never empty when minted).
    pub roles: Vec<Role>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds); equal to `iat` when minted.
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Unique token id (a ULID), the handle for revocation.
    pub jti: String,
    /// Token kind; always [`TokenType::Api`] (`"weir/api"`).
    pub typ: TokenType,
}

/// A freshly minted API token.
#[derive(Clone, Debug)]
pub struct MintedApiToken {
    /// The compact JWS to hand to the caller (redacted in `Debug`/`Display`).
    pub token: SecretString,
    /// Its id, for revocation.
    pub jti: String,
    /// When it expires (Unix seconds).
    pub exp: i64,
    /// Every claim it carries.
    pub claims: ApiClaims,
}

/// Mints API tokens with the active key of an
/// [`ApiKeySet`](crate::ApiKeySet), from [`ApiKeySet::minter`](crate::ApiKeySet::minter).
///
/// # Guarantees
///
/// - Every token expires: `exp = now + min(ttl, max_lifetime)` with
///   `ttl >= 1 s` and `max_lifetime <=` [`API_MAX_LIFETIME`] (30 days); the
///   key set keeps a rotated-out key longer than that.
/// - Every token carries `iss`, `aud`, `sub`, at least one role, `iat`,
///   `nbf`, `exp`, a fresh ULID `jti` and `typ: "weir/api"`, and is signed
///   HS256 under the key named by its `kid`.
/// - A token the verifier would refuse for its size is never minted.
/// - `Debug` shows the key id, never the secret.
#[derive(Clone)]
pub struct ApiMinter {
    kid: Kid,
    key: EncodingKey,
    issuer: String,
    audience: String,
    max_lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl ApiMinter {
    pub(crate) fn new(kid: &Kid, secret: &SecretBytes, issuer: &str, audience: &str) -> Self {
        Self {
            kid: kid.clone(),
            key: EncodingKey::from_secret(secret.expose()),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            max_lifetime: API_MAX_LIFETIME,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Caps token lifetimes at `max_lifetime` instead of [`API_MAX_LIFETIME`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless 1 s <= `max_lifetime` <=
    /// [`API_MAX_LIFETIME`].
    pub fn with_max_lifetime(mut self, max_lifetime: Duration) -> Result<Self> {
        if max_lifetime < Duration::from_secs(1) || max_lifetime > API_MAX_LIFETIME {
            return Err(Error::InvalidConfig {
                reason: "API token max lifetime must be between 1 s and 30 days",
            });
        }
        self.max_lifetime = max_lifetime;
        Ok(self)
    }

    /// The id of the signing key.
    #[must_use]
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The issuer put in every token.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience put in every token.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The longest lifetime a token gets.
    #[must_use]
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// Mints a token for `sub` with `roles`, living `ttl` (capped at the
    /// maximum lifetime).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the issuer or audience is empty, longer
    /// than 256 bytes or has control characters; [`Error::InvalidMintRequest`]
    /// for such a `sub`, no role, or a `ttl` under one second;
    /// [`Error::TokenTooLarge`] or [`Error::Signing`].
    pub fn mint(&self, sub: &str, roles: &[Role], ttl: Duration) -> Result<MintedApiToken> {
        check_config_name(
            &self.issuer,
            "issuer must be 1 to 256 bytes without control characters",
        )?;
        check_config_name(
            &self.audience,
            "audience must be 1 to 256 bytes without control characters",
        )?;
        check_request_name(sub, "sub must be 1 to 256 bytes without control characters")?;
        if roles.is_empty() {
            return Err(Error::InvalidMintRequest {
                reason: "an API token needs at least one role",
            });
        }
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
        let mut roles = roles.to_vec();
        roles.sort_unstable();
        roles.dedup();
        let claims = ApiClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_owned(),
            roles,
            iat: now,
            nbf: now,
            exp,
            jti: ulid::Ulid::new().to_string(),
            typ: TokenType::Api,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.as_str().to_owned());
        crate::jwt_crypto::install();
        let token = SecretString::new(
            jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| Error::Signing)?,
        );
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::TokenTooLarge {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        Ok(MintedApiToken {
            token,
            jti: claims.jti.clone(),
            exp,
            claims,
        })
    }
}

impl fmt::Debug for ApiMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiMinter")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("max_lifetime", &self.max_lifetime)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FixedClock;

    fn minter() -> ApiMinter {
        let secret = SecretBytes::new(vec![7; 32]);
        ApiMinter::new(&Kid::parse("k").unwrap(), &secret, "weir", "weir-api")
            .with_clock(Arc::new(FixedClock::new(1_000)))
    }

    #[test]
    fn mint_sets_claims_and_caps_ttl() {
        let m = minter();
        let t = m
            .mint(
                "alice",
                &[Role::Engineer, Role::Admin, Role::Engineer],
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(t.claims.roles, [Role::Admin, Role::Engineer]);
        assert_eq!((t.claims.iat, t.claims.nbf, t.exp), (1_000, 1_000, 1_060));
        assert_eq!(t.claims.exp, t.exp);
        assert_eq!(t.claims.jti, t.jti);
        assert_eq!(t.claims.typ, TokenType::Api);
        let long = m
            .mint("alice", &[Role::Admin], Duration::from_secs(365 * 86_400))
            .unwrap();
        assert_eq!(
            long.exp - 1_000,
            i64::try_from(API_MAX_LIFETIME.as_secs()).unwrap()
        );
        let short = m.with_max_lifetime(Duration::from_secs(120)).unwrap();
        let t = short
            .mint("alice", &[Role::Admin], Duration::from_secs(3_600))
            .unwrap();
        assert_eq!(t.exp, 1_120);
    }

    #[test]
    fn mint_refuses_bad_requests_and_config() {
        let m = minter();
        assert!(m.mint("", &[Role::Admin], Duration::from_secs(60)).is_err());
        assert!(
            m.mint("a\nb", &[Role::Admin], Duration::from_secs(60))
                .is_err()
        );
        assert!(m.mint("alice", &[], Duration::from_secs(60)).is_err());
        assert!(
            m.mint("alice", &[Role::Admin], Duration::from_millis(999))
                .is_err()
        );
        assert!(m.clone().with_max_lifetime(Duration::ZERO).is_err());
        assert!(
            m.with_max_lifetime(API_MAX_LIFETIME + Duration::from_secs(1))
                .is_err()
        );
        let secret = SecretBytes::new(vec![7; 32]);
        let bad = ApiMinter::new(&Kid::parse("k").unwrap(), &secret, "", "aud");
        assert!(matches!(
            bad.mint("alice", &[Role::Admin], Duration::from_secs(60)),
            Err(Error::InvalidConfig { .. })
        ));
    }
}
