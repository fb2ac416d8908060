//! Verifying stage tokens with public keys only.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::cache::{self, VerifiedCache};
use crate::clock::{Clock, SystemClock};
use crate::compact::STAGE_HEADER;
use crate::error::{Error, Result};
use crate::jws::{self, EdKey, Unverified};
use crate::kid::Kid;
use crate::revocation::{InMemoryRevocationList, RevocationList};
use crate::times::{TimePolicy, Validity};
use crate::token::{DEFAULT_MAX_LIFETIME, StageClaims, TokenType};

/// Default clock-skew leeway.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);
/// Most keys a verifier accepts from a JWKS document.
pub const MAX_JWKS_KEYS: usize = 64;

/// What a [`StageVerifier`] expects of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierConfig {
    issuer: String,
    audience: String,
    leeway: Duration,
    max_lifetime: Duration,
}

impl VerifierConfig {
    /// Expect `iss == issuer` and `aud == audience`, with [`DEFAULT_LEEWAY`]
    /// and [`DEFAULT_MAX_LIFETIME`].
    #[must_use]
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: DEFAULT_LEEWAY,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }

    /// Sets the clock-skew leeway applied to `exp`, `nbf` and `iat`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `leeway` exceeds [`MAX_LEEWAY`](crate::MAX_LEEWAY).
    pub fn with_leeway(mut self, leeway: Duration) -> Result<Self> {
        crate::times::check_leeway(leeway)?;
        self.leeway = leeway;
        Ok(self)
    }

    /// Sets the longest `exp - iat` accepted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless 1 s <= `max_lifetime` <= 24 h.
    pub fn with_max_lifetime(mut self, max_lifetime: Duration) -> Result<Self> {
        if max_lifetime < Duration::from_secs(1) || max_lifetime > DEFAULT_MAX_LIFETIME {
            return Err(Error::InvalidConfig {
                reason: "max lifetime must be between 1 s and 24 h",
            });
        }
        self.max_lifetime = max_lifetime;
        Ok(self)
    }

    pub(crate) fn with_max_lifetime_capped(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime.clamp(Duration::from_secs(1), DEFAULT_MAX_LIFETIME);
        self
    }

    /// The expected issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The expected audience.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The clock-skew leeway.
    #[must_use]
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The longest accepted `exp - iat`.
    #[must_use]
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }
}

/// A stage-token key: Ed25519 only, so the algorithm is bound to it by
/// type (`EdDSA`).
struct VerifyKey {
    ed: EdKey,
}

/// Verifies stage tokens. Holds public keys only: a worker holding a
/// `StageVerifier` can check tokens but cannot mint them.
///
/// # Guarantees
///
/// [`verify`](Self::verify) accepts a token only if, in this order:
///
/// 1. it is at most [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES) long
///    (checked before anything else);
/// 2. (cache hit: skip to 9) it is three non-empty base64url parts;
/// 3. its header has no repeated key, no `crit`, nothing but `alg`, `kid`
///    and `typ`; `kid` is present, matches `[A-Za-z0-9_-]{1,64}` and names a
///    key held in memory (no disk or network access for unknown ids);
/// 4. `alg` is exactly the algorithm bound to that key (`EdDSA`); the
///    algorithm used to verify always comes from the key, never the header;
/// 5. the Ed25519 signature verifies;
/// 6. only then is the payload decoded: no repeated key at any depth, every
///    claim present with its exact type (numbers as numbers, no unknown
///    claim), a valid non-empty scope;
/// 7. `typ` is `weir/stage`, `iss` and `aud` are the configured ones;
/// 8. `iat <= nbf < exp`, `exp - iat <= max_lifetime`, and with leeway `L`
///    (at most 30 s): `iat <= now + L`, `nbf <= now + L`, `now < exp + L`;
/// 9. its `jti` is not revoked (checked on every call, cached or not).
///
/// Errors never contain the token, its signature or key material.
pub struct StageVerifier {
    keys: HashMap<Kid, VerifyKey>,
    config: VerifierConfig,
    revocation: Arc<dyn RevocationList>,
    cache: Option<VerifiedCache>,
}

impl StageVerifier {
    /// Builds a verifier from trusted `(kid, Ed25519 public key)` pairs, with
    /// an empty in-memory revocation list and a default [`VerifiedCache`].
    pub(crate) fn from_trusted_keys(
        keys: impl IntoIterator<Item = (Kid, [u8; 32])>,
        config: VerifierConfig,
    ) -> Self {
        let keys = keys
            .into_iter()
            .map(|(kid, x)| {
                let key = VerifyKey {
                    ed: EdKey {
                        // For the Ed family jsonwebtoken takes the raw 32-byte
                        // key here (the bytes `from_ed_components` decodes to).
                        decoding: DecodingKey::from_ed_der(&x),
                        // Decompressed once for batches; a key that does not
                        // decompress fails every token in the single check.
                        point: ed25519_dalek::VerifyingKey::from_bytes(&x).ok(),
                    },
                };
                (kid, key)
            })
            .collect();
        Self {
            keys,
            config,
            revocation: Arc::new(InMemoryRevocationList::new()),
            cache: Some(VerifiedCache::default()),
        }
    }

    /// Builds a verifier from a JWKS document as produced by
    /// [`StageKeySet::public_jwks`](crate::StageKeySet::public_jwks).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidJwks`] unless every key is `kty: OKP`, `crv: Ed25519`,
    /// `alg: EdDSA`, `use: sig` (if present), has a valid `kid` and a valid
    /// 32-byte non-weak `x`, and carries no private member `d`; also if the
    /// document has no key, more than [`MAX_JWKS_KEYS`], or a repeated `kid`.
    pub fn from_jwks(jwks: &Value, config: VerifierConfig) -> Result<Self> {
        let invalid = |reason| Error::InvalidJwks { reason };
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(invalid("no keys array"))?;
        if list.is_empty() || list.len() > MAX_JWKS_KEYS {
            return Err(invalid("must hold 1 to 64 keys"));
        }
        let mut keys = Vec::with_capacity(list.len());
        for jwk in list {
            let member = |name: &str| jwk.get(name).and_then(Value::as_str);
            if jwk.get("d").is_some() {
                return Err(invalid("a verifier refuses private keys"));
            }
            if member("kty") != Some("OKP") || member("crv") != Some("Ed25519") {
                return Err(invalid("key is not an Ed25519 OKP key"));
            }
            if member("alg") != Some("EdDSA") {
                return Err(invalid("key is not bound to EdDSA"));
            }
            if jwk.get("use").is_some() && member("use") != Some("sig") {
                return Err(invalid("key is not a signature key"));
            }
            let kid = Kid::parse(member("kid").ok_or(invalid("key has no kid"))?)
                .map_err(|_| invalid("key has an invalid kid"))?;
            let x = member("x").ok_or(invalid("key has no x"))?;
            let x = URL_SAFE_NO_PAD
                .decode(x)
                .map_err(|_| invalid("x is not base64url"))?;
            let x = <[u8; 32]>::try_from(x.as_slice()).map_err(|_| invalid("x is not 32 bytes"))?;
            let point = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| invalid("x is not a valid Ed25519 point"))?;
            if point.is_weak() {
                return Err(invalid("x is a weak key"));
            }
            if keys.iter().any(|(k, _)| *k == kid) {
                return Err(invalid("repeated kid"));
            }
            keys.push((kid, x));
        }
        Ok(Self::from_trusted_keys(keys, config))
    }

    /// Consults `revocation` (instead of a private in-memory list).
    #[must_use]
    pub fn with_revocation(mut self, revocation: Arc<dyn RevocationList>) -> Self {
        self.revocation = revocation;
        self
    }

    /// Uses `cache` for already-verified tokens.
    #[must_use]
    pub fn with_cache(mut self, cache: VerifiedCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Verifies every token in full, caching nothing.
    #[must_use]
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// The ids of the keys this verifier trusts.
    pub fn kids(&self) -> impl Iterator<Item = &Kid> {
        self.keys.keys()
    }

    /// The revocation list consulted on every verify.
    #[must_use]
    pub fn revocation(&self) -> &Arc<dyn RevocationList> {
        &self.revocation
    }

    /// The verified-token cache, if any.
    #[must_use]
    pub fn cache(&self) -> Option<&VerifiedCache> {
        self.cache.as_ref()
    }

    /// Revokes the token carrying `claims` for as long as it could otherwise
    /// be accepted (`exp` plus leeway).
    ///
    /// # Errors
    ///
    /// As [`RevocationList::revoke`].
    pub fn revoke(&self, claims: &StageClaims) -> Result<()> {
        let until = claims.exp.saturating_add(self.leeway_secs());
        self.revocation.revoke(&claims.jti, until)
    }

    /// [`verify`](Self::verify) at the system clock's time.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
    pub fn verify_now(&self, token: &str) -> Result<StageClaims> {
        self.verify(token, SystemClock.now())
    }

    /// Verifies `token` at Unix time `now` and returns its claims. See the
    /// [type docs](Self) for every check.
    ///
    /// # Errors
    ///
    /// The variant naming the first check that failed:
    /// [`Error::TokenTooLarge`], [`Error::MalformedToken`],
    /// [`Error::DuplicateKey`], [`Error::CriticalHeader`],
    /// [`Error::UnsupportedHeader`], [`Error::MissingKid`],
    /// [`Error::InvalidKid`], [`Error::UnknownKid`],
    /// [`Error::AlgorithmMismatch`], [`Error::BadSignature`],
    /// [`Error::MalformedClaims`], [`Error::WrongTokenType`],
    /// [`Error::WrongIssuer`], [`Error::WrongAudience`],
    /// [`Error::InconsistentTimes`], [`Error::LifetimeTooLong`],
    /// [`Error::IssuedInFuture`], [`Error::NotYetValid`], [`Error::Expired`],
    /// [`Error::Revoked`].
    pub fn verify(&self, token: &str, now: i64) -> Result<StageClaims> {
        let (unverified, key, digest) = match self.begin(token, now) {
            Begin::Done(result) => return result,
            Begin::Signature(unverified, key, digest) => (unverified, key, digest),
        };
        let payload = unverified.verify(&key.ed.decoding, Algorithm::EdDSA)?;
        self.finish(digest, &payload, now)
    }

    /// Verifies many tokens at once and returns, in order, what
    /// [`verify`](Self::verify) would return for each: every check is the
    /// same, but the Ed25519 signatures of the tokens not found in the cache
    /// are checked together, which costs about half as much per token.
    ///
    /// A worker draining a batch of tasks calls this. One bad token does not
    /// fail the others: if the batch equation fails, each signature is
    /// checked on its own. See `jws::verify_ed25519_batch` for how the batch
    /// check relates to the single one.
    pub fn verify_batch(&self, tokens: &[&str], now: i64) -> Vec<Result<StageClaims>> {
        let mut results: Vec<Option<Result<StageClaims>>> = Vec::with_capacity(tokens.len());
        let mut pending = Vec::new();
        for (index, token) in tokens.iter().enumerate() {
            match self.begin(token, now) {
                Begin::Done(result) => results.push(Some(result)),
                Begin::Signature(unverified, key, digest) => {
                    results.push(None);
                    pending.push((index, digest, unverified, key));
                }
            }
        }
        let items: Vec<(&Unverified<'_>, &EdKey)> =
            pending.iter().map(|(_, _, u, key)| (u, &key.ed)).collect();
        let payloads = jws::verify_ed25519_batch(&items);
        for ((index, digest, _, _), payload) in pending.iter().zip(payloads) {
            if let Some(slot) = results.get_mut(*index) {
                *slot = Some(payload.and_then(|p| self.finish(*digest, &p, now)));
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or(Err(Error::Internal {
                    reason: "batch verification lost a token",
                }))
            })
            .collect()
    }

    /// Steps 1 to 4 of the type docs: the size cap, a cache hit (answered
    /// here, after times and revocation), the header and the key.
    fn begin<'t>(&self, token: &'t str, now: i64) -> Begin<'t, '_> {
        if let Err(e) = jws::check_size(token) {
            return Begin::Done(Err(e));
        }
        // The cache key, computed once: looked up here, inserted by `finish`.
        let digest = self.cache.as_ref().map(|_| cache::digest(token));
        if let (Some(cache), Some(digest)) = (&self.cache, &digest)
            && let Some(claims) = cache.get(digest, now)
        {
            let checked = self
                .check_times(&claims, now)
                .and_then(|()| self.check_revocation(&claims));
            return Begin::Done(checked.map(|()| claims));
        }
        let unverified = match Unverified::parse(token, &STAGE_HEADER) {
            Ok(u) => u,
            Err(e) => return Begin::Done(Err(e)),
        };
        match self.keys.get(unverified.kid()) {
            Some(key) => Begin::Signature(unverified, key, digest),
            None => Begin::Done(Err(Error::UnknownKid {
                kid: unverified.kid().as_str().to_owned(),
            })),
        }
    }

    /// Steps 6 to 9 on a payload whose signature verified, then caches the
    /// claims.
    fn finish(&self, digest: Option<[u8; 32]>, payload: &[u8], now: i64) -> Result<StageClaims> {
        let claims = self.check_claims(payload, now)?;
        if let (Some(cache), Some(digest)) = (&self.cache, digest) {
            cache.insert(digest, &claims, now);
        }
        Ok(claims)
    }

    fn check_claims(&self, payload: &[u8], now: i64) -> Result<StageClaims> {
        let claims = parse_claims(payload)?;
        if claims.typ != TokenType::Stage {
            return Err(Error::WrongTokenType);
        }
        if claims.iss != self.config.issuer {
            return Err(Error::WrongIssuer);
        }
        if claims.aud != self.config.audience {
            return Err(Error::WrongAudience);
        }
        self.check_times(&claims, now)?;
        self.check_revocation(&claims)?;
        Ok(claims)
    }

    fn leeway_secs(&self) -> i64 {
        i64::try_from(self.config.leeway.as_secs()).unwrap_or(0)
    }

    fn check_times(&self, c: &StageClaims, now: i64) -> Result<()> {
        // Stage tokens are minted with iat == nbf; a later iat is forged.
        if c.iat > c.nbf {
            return Err(Error::InconsistentTimes);
        }
        let policy = TimePolicy {
            leeway: self.leeway_secs(),
            max_lifetime: i64::try_from(self.config.max_lifetime.as_secs()).unwrap_or(0),
        };
        Validity {
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            exp: c.exp,
        }
        .check(policy, now)
    }

    fn check_revocation(&self, c: &StageClaims) -> Result<()> {
        if self.revocation.is_revoked(&c.jti) {
            Err(Error::Revoked)
        } else {
            Ok(())
        }
    }
}

/// Where [`StageVerifier::begin`] left a token.
enum Begin<'t, 'k> {
    /// Answered: refused, or found in the cache.
    Done(Result<StageClaims>),
    /// Its signature is to be checked under this key; then its claims are
    /// cached under the digest (if the verifier caches).
    Signature(Unverified<'t>, &'k VerifyKey, Option<[u8; 32]>),
}

fn parse_claims(payload: &[u8]) -> Result<StageClaims> {
    serde_json::from_slice::<StageClaims>(payload).map_err(|e| {
        // Name a token of another kind as such, rather than as malformed.
        let typ = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v.get("typ").cloned());
        match typ {
            Some(Value::String(t)) if t != "weir/stage" => Error::WrongTokenType,
            _ if e.is_syntax() || e.is_eof() => Error::MalformedClaims {
                reason: "payload is not valid JSON",
            },
            _ => Error::MalformedClaims {
                reason: "missing, mistyped or unknown claim, or invalid scope",
            },
        }
    })
}

impl fmt::Debug for StageVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&Kid> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("StageVerifier")
            .field("kids", &kids)
            .field("config", &self.config)
            .field("revocation", &self.revocation)
            .field("cache", &self.cache)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StageKeySet;
    use crate::token::MAX_LEEWAY;
    use serde_json::json;

    #[test]
    fn config_limits() {
        let c = VerifierConfig::new("i", "a");
        assert!(c.clone().with_leeway(Duration::from_secs(31)).is_err());
        assert_eq!(
            c.clone()
                .with_leeway(Duration::from_secs(30))
                .unwrap()
                .leeway(),
            MAX_LEEWAY
        );
        assert!(
            c.clone()
                .with_max_lifetime(Duration::from_secs(86_401))
                .is_err()
        );
        assert!(c.with_max_lifetime(Duration::ZERO).is_err());
    }

    #[test]
    fn jwks_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let set = StageKeySet::open(dir.path(), 0).unwrap();
        let cfg = VerifierConfig::new("i", "a");
        let v = StageVerifier::from_jwks(&set.public_jwks(), cfg.clone()).unwrap();
        assert_eq!(v.kids().collect::<Vec<_>>(), [set.active_kid()]);

        let key = set.public_jwks()["keys"][0].clone();
        let with = |name: &str, value: Value| {
            let mut k = key.clone();
            k[name] = value;
            json!({ "keys": [k] })
        };
        for bad in [
            json!({}),
            json!({ "keys": [] }),
            with("d", json!("AAAA")),
            with("alg", json!("HS256")),
            with("kty", json!("oct")),
            with("use", json!("enc")),
            with("kid", json!("../x")),
            with("x", json!("AAAA")),
            json!({ "keys": [key.clone(), key.clone()] }),
        ] {
            assert!(
                StageVerifier::from_jwks(&bad, cfg.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
