//! Verifying API tokens: weir's own (HS256) and an external identity
//! provider's (RS256, ES256, EdDSA), with a verified-token cache.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::Value;

use crate::api::cache::IdentityCache;
use crate::api::claims::{self, Checked, Expected};
use crate::api::error::ApiAuthError;
use crate::api::key_table::{
    ExternalIssuer, KeyTable, Trust, external_keys, issuer_of, kid_taken, weir_keys,
};
use crate::api::keys::ApiKeySet;
use crate::api::role::Identity;
use crate::api::{API_MAX_LIFETIME, DEFAULT_API_CACHE_CAPACITY};
use crate::cache::digest;
use crate::clock::{Clock, SystemClock};
use crate::compact::HeaderRules;
use crate::error::{Error, Result};
use crate::jws::{self, Unverified};
use crate::kid::Kid;
use crate::revocation::{InMemoryRevocationList, RevocationList};
use crate::times::{TimePolicy, Validity};
use crate::token::check_config_name;
use crate::verifier::DEFAULT_LEEWAY;

/// API token headers: `alg`, `kid`, `typ` (`JWT`, or `at+jwt` as RFC 9068
/// access tokens from identity providers have it), and the certificate
/// thumbprints some providers add (`x5t`, `x5t#S256`: hints, not keys).
const API_HEADER: HeaderRules = HeaderRules {
    typs: &["JWT", "at+jwt", "application/at+jwt"],
    ignored: &["x5t", "x5t#S256"],
};

/// What an [`ApiVerifier`] expects of weir's own tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiVerifierConfig {
    issuer: String,
    audience: String,
    leeway: Duration,
    max_lifetime: Duration,
}

impl ApiVerifierConfig {
    /// Expect `iss == issuer` and `aud == audience` on weir tokens, with
    /// [`DEFAULT_LEEWAY`] (10 s) and [`API_MAX_LIFETIME`] (30 days).
    #[must_use]
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: DEFAULT_LEEWAY,
            max_lifetime: API_MAX_LIFETIME,
        }
    }

    /// Sets the clock-skew leeway applied to `exp`, `nbf` and `iat`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `leeway` exceeds [`MAX_LEEWAY`](crate::MAX_LEEWAY) (30 s).
    pub fn with_leeway(mut self, leeway: Duration) -> Result<Self> {
        crate::times::check_leeway(leeway)?;
        self.leeway = leeway;
        Ok(self)
    }

    /// Sets the longest accepted lifetime (`exp - iat`, or `exp - now` for an
    /// external token without `iat`), for every kind of API token.
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

    /// The expected issuer of weir tokens.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The expected audience of weir tokens.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The clock-skew leeway.
    #[must_use]
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The longest accepted token lifetime.
    #[must_use]
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    fn time_policy(&self) -> TimePolicy {
        TimePolicy {
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(0),
            max_lifetime: i64::try_from(self.max_lifetime.as_secs()).unwrap_or(0),
        }
    }
}

/// Verifies API tokens: weir's own HS256 tokens and, optionally, tokens of
/// external identity providers, and caches the result.
///
/// # Guarantees
///
/// [`verify`](Self::verify) accepts a token only if, in this order:
///
/// 1. it is not empty and at most [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES)
///    long (checked before it is hashed or parsed);
/// 2. (cache hit: skip to 8, if `exp > now` on the verifier's clock) it is
///    three non-empty base64url parts;
/// 3. its header has no repeated key, no `crit`, no key-bearing parameter
///    (`jwk`, `jku`, `x5u`, `x5c`), nothing but `alg`, `kid`, `typ` and
///    `x5t`/`x5t#S256`; its `kid` names a key held in memory (no disk or
///    network access for unknown ids);
/// 4. its `alg` is exactly the algorithm bound to that key: HS256 for
///    weir's keys; RS256, ES256 or EdDSA for an external key. The signature
///    is checked with the key's algorithm, never the header's, so `none`
///    and HMAC-keyed-with-a-public-key forgeries are refused;
/// 5. the signature verifies;
/// 6. only then is the payload decoded (no repeated key at any depth), and
///    its claims checked as the key's issuer requires (see below);
/// 7. `iss` is the key's issuer and `aud` names the expected audience;
/// 8. with leeway `L` (at most 30 s): every start (`iat`, `nbf`) is before
///    `exp`, the lifetime is at most the configured maximum, `iat` and `nbf`
///    are at most `now + L`, and `now < exp + L`;
/// 9. its `jti`, if any, is not revoked: checked on every call, cached or not.
///
/// weir tokens need exactly `iss`, `aud`, `sub`, `roles`, `iat`, `nbf`,
/// `exp`, `jti` and `typ: "weir/api"`; a stage token is refused. External
/// tokens need `sub`, `exp`, `iss` and `aud`; their `roles` claim (array of
/// strings) yields the known role names; a `typ` claim naming a weir token
/// kind is refused.
///
/// Errors name the check that failed and never contain the token.
///
/// # Reloading keys
///
/// [`reload_api_keys`](Self::reload_api_keys) and
/// [`replace_external_jwks`](Self::replace_external_jwks) swap in a new key
/// set while the verifier is in use: every verify sees one consistent set
/// (an atomic pointer swap), never a mix. Fetching, scheduling and
/// rate-limiting reloads is the caller's job.
pub struct ApiVerifier {
    keys: ArcSwap<KeyTable>,
    /// Serializes key replacements (readers never take it).
    writer: Mutex<()>,
    config: ApiVerifierConfig,
    revocation: Arc<dyn RevocationList>,
    clock: Arc<dyn Clock>,
    cache: Option<IdentityCache>,
    /// Bumped (before the cache is emptied) whenever a key is dropped, so a
    /// verify that raced the swap does not leave an entry behind.
    dropped: AtomicU64,
}

impl ApiVerifier {
    /// A verifier trusting every key of `keys` (active and previous) for
    /// HS256 tokens issued as `config` says, with an empty in-memory
    /// revocation list, the system clock and a cache of
    /// [`DEFAULT_API_CACHE_CAPACITY`] tokens.
    #[must_use]
    pub fn new(keys: &ApiKeySet, config: ApiVerifierConfig) -> Self {
        let table = KeyTable {
            weir: Arc::new(weir_keys(keys)),
            external: Vec::new(),
        };
        Self {
            keys: ArcSwap::from_pointee(table),
            writer: Mutex::new(()),
            config,
            revocation: Arc::new(InMemoryRevocationList::new()),
            clock: Arc::new(SystemClock),
            cache: Some(IdentityCache::new(DEFAULT_API_CACHE_CAPACITY)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Also trusts the signature keys of an external identity provider's
    /// JWKS document, for tokens with `iss == issuer` whose `aud` names
    /// `audience`. May be called once per provider.
    ///
    /// Each key is bound to one algorithm, RS256, ES256 or EdDSA, from its
    /// `alg` or, when absent, from `kty`/`crv`. Keys of other kinds
    /// (encryption keys, other algorithms) are skipped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty, over-long or control-character
    /// `issuer` or `audience`; [`Error::InvalidJwks`] if the document offers
    /// a symmetric key, an HS* or `none` algorithm, private key material, a
    /// key with a missing or invalid `kid`, invalid key material (RSA under
    /// 2048 bits, off-curve points, ...), a `kid` repeated within it or
    /// already trusted by this verifier (weir's own or another provider's),
    /// or no usable key at all.
    pub fn with_external_jwks(
        mut self,
        jwks: &Value,
        issuer: &str,
        audience: &str,
    ) -> Result<Self> {
        check_config_name(
            issuer,
            "issuer must be 1 to 256 bytes without control characters",
        )?;
        check_config_name(
            audience,
            "audience must be 1 to 256 bytes without control characters",
        )?;
        let idp = Arc::new(ExternalIssuer {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        });
        let group = external_keys(jwks, &idp)?;
        let mut table = KeyTable::clone(&self.keys.load());
        if table.collides(&group, None) || table.weir.keys().any(|k| group.contains_key(k)) {
            return Err(kid_taken());
        }
        table.external.push(Arc::new(group));
        self.keys = ArcSwap::from_pointee(table);
        Ok(self)
    }

    /// Replaces weir's own keys with every key of `keys` (active and
    /// previous), atomically, e.g. after `weir keys rotate --api`. Returns
    /// whether the set of key ids changed; if a key id went away, the
    /// verified-token cache is emptied so tokens signed by a dropped key stop
    /// verifying at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidJwks`] if a key id of `keys` is an external
    /// provider's; the keys in use are then unchanged.
    pub fn reload_api_keys(&self, keys: &ApiKeySet) -> Result<bool> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.keys.load_full();
        let same = keys.kids().count() == current.weir.len()
            && keys.kids().all(|k| current.weir.contains_key(k));
        if same {
            return Ok(false);
        }
        let group = weir_keys(keys);
        if current.collides(&group, Some(None)) {
            return Err(kid_taken());
        }
        let dropped = current.weir.keys().any(|k| !group.contains_key(k));
        let mut table = KeyTable::clone(&current);
        table.weir = Arc::new(group);
        self.keys.store(Arc::new(table));
        if dropped {
            self.clear_cache();
        }
        Ok(true)
    }

    /// Replaces the keys of the external provider whose issuer is `issuer`
    /// (added with [`with_external_jwks`](Self::with_external_jwks)) with the
    /// keys of `jwks`, atomically, keeping its audience. Returns whether the
    /// set of key ids changed; if a key id went away, the verified-token
    /// cache is emptied.
    ///
    /// # Errors
    ///
    /// As [`with_external_jwks`](Self::with_external_jwks), and
    /// [`Error::InvalidConfig`] if no provider has this issuer. On error the
    /// keys in use are unchanged.
    pub fn replace_external_jwks(&self, jwks: &Value, issuer: &str) -> Result<bool> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.keys.load_full();
        let (index, idp) = current
            .external
            .iter()
            .enumerate()
            .find_map(|(i, group)| {
                group.values().find_map(|k| match &k.trust {
                    Trust::External(idp) if idp.issuer == issuer => Some((i, Arc::clone(idp))),
                    _ => None,
                })
            })
            .ok_or(Error::InvalidConfig {
                reason: "no external identity provider has this issuer",
            })?;
        let group = external_keys(jwks, &idp)?;
        if current.collides(&group, Some(Some(index))) {
            return Err(kid_taken());
        }
        let old = current.external.get(index).ok_or(Error::Internal {
            reason: "provider index out of range",
        })?;
        let changed = old.len() != group.len() || old.keys().any(|k| !group.contains_key(k));
        let dropped = old.keys().any(|k| !group.contains_key(k));
        let mut table = KeyTable::clone(&current);
        if let Some(slot) = table.external.get_mut(index) {
            *slot = Arc::new(group);
        }
        self.keys.store(Arc::new(table));
        if dropped {
            self.clear_cache();
        }
        Ok(changed)
    }

    /// The issuers of the external providers, in the order they were added.
    #[must_use]
    pub fn external_issuers(&self) -> Vec<String> {
        self.keys
            .load()
            .external
            .iter()
            .filter_map(|g| issuer_of(g).map(str::to_owned))
            .collect()
    }

    fn clear_cache(&self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Consults `list` (instead of a private in-memory list) on every verify.
    #[must_use]
    pub fn with_revocation(mut self, list: Arc<dyn RevocationList>) -> Self {
        self.revocation = list;
        self
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Caches up to `capacity` verified tokens (a fresh, empty cache);
    /// `0` disables caching.
    #[must_use]
    pub fn with_cache(mut self, capacity: u64) -> Self {
        self.cache = (capacity > 0).then(|| IdentityCache::new(capacity));
        self
    }

    /// Verifies every token in full, caching nothing.
    #[must_use]
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The configuration for weir tokens.
    #[must_use]
    pub fn config(&self) -> &ApiVerifierConfig {
        &self.config
    }

    /// The ids of every trusted key right now, weir's and external.
    #[must_use]
    pub fn kids(&self) -> Vec<Kid> {
        self.keys
            .load()
            .iter()
            .map(|(kid, _)| kid.clone())
            .collect()
    }

    /// The revocation list consulted on every verify.
    #[must_use]
    pub fn revocation(&self) -> &Arc<dyn RevocationList> {
        &self.revocation
    }

    /// Cached tokens right now (`None` without a cache). For metrics and
    /// tests; it applies pending evictions first.
    #[must_use]
    pub fn cache_len(&self) -> Option<u64> {
        self.cache.as_ref().map(IdentityCache::len)
    }

    /// Revokes the token with this `jti` until it would be refused as expired
    /// anyway (`exp` plus the leeway). Takes effect on the next verify,
    /// cached or not.
    ///
    /// # Errors
    ///
    /// As [`RevocationList::revoke`]; then the revocation did not take effect.
    pub fn revoke(&self, jti: &str, exp: i64) -> Result<()> {
        let until = exp.saturating_add(self.config.time_policy().leeway);
        self.revocation.revoke(jti, until)
    }

    /// Verifies a bearer `token` at the verifier's clock time. See the
    /// [type docs](Self) for every check.
    ///
    /// # Errors
    ///
    /// The [`ApiAuthError`] naming the first check that failed.
    pub fn verify(&self, token: &str) -> std::result::Result<Identity, ApiAuthError> {
        if token.is_empty() {
            return Err(ApiAuthError::Missing);
        }
        jws::check_size(token).map_err(|e| ApiAuthError::from_token_error(&e))?;
        let now = self.clock.now();
        let Some(cache) = &self.cache else {
            return self.verify_in_full(token, now).map(|c| c.identity);
        };
        let key = digest(token);
        if let Some((identity, validity)) = cache.get(&key, now) {
            self.check_times(validity, now)?;
            self.check_revocation(&identity)?;
            return Ok(identity);
        }
        let epoch = self.dropped.load(Ordering::SeqCst);
        let Checked { identity, validity } = self.verify_in_full(token, now)?;
        cache.insert(key, &identity, validity, now);
        // A key dropped while this token was verified: the swap's clear may
        // have run before the insert, so take the entry out again. (The
        // token itself was verified against a consistent, then-current set.)
        if self.dropped.load(Ordering::SeqCst) != epoch {
            cache.remove(&key);
        }
        Ok(identity)
    }

    /// Steps 2 to 9 of the type docs, without the cache.
    fn verify_in_full(&self, token: &str, now: i64) -> std::result::Result<Checked, ApiAuthError> {
        let shared = |e: Error| ApiAuthError::from_token_error(&e);
        let unverified = Unverified::parse(token, &API_HEADER).map_err(shared)?;
        let table = self.keys.load();
        let key = table
            .get(unverified.kid())
            .ok_or(ApiAuthError::UnknownKid)?;
        let payload = unverified
            .verify(&key.decoding, key.algorithm)
            .map_err(shared)?;
        let checked = match &key.trust {
            Trust::Weir => claims::weir(
                &payload,
                Expected {
                    issuer: &self.config.issuer,
                    audience: &self.config.audience,
                },
            )?,
            Trust::External(idp) => claims::external(
                &payload,
                Expected {
                    issuer: &idp.issuer,
                    audience: &idp.audience,
                },
            )?,
        };
        self.check_times(checked.validity, now)?;
        self.check_revocation(&checked.identity)?;
        Ok(checked)
    }

    fn check_times(&self, validity: Validity, now: i64) -> std::result::Result<(), ApiAuthError> {
        validity
            .check(self.config.time_policy(), now)
            .map_err(|e| ApiAuthError::from_token_error(&e))
    }

    fn check_revocation(&self, identity: &Identity) -> std::result::Result<(), ApiAuthError> {
        match &identity.jti {
            Some(jti) if self.revocation.is_revoked(jti) => Err(ApiAuthError::Revoked),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for ApiVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.keys.load();
        let mut keys: Vec<(&Kid, &str, &str)> = table
            .iter()
            .map(|(kid, k)| {
                let issuer = match &k.trust {
                    Trust::Weir => self.config.issuer.as_str(),
                    Trust::External(idp) => idp.issuer.as_str(),
                };
                (kid, jws::alg_name(k.algorithm).unwrap_or("?"), issuer)
            })
            .collect();
        keys.sort();
        f.debug_struct("ApiVerifier")
            .field("keys", &keys)
            .field("config", &self.config)
            .field("revocation", &self.revocation)
            .field("clock", &self.clock)
            .field("cache", &self.cache)
            .finish()
    }
}
