//! The keys an [`ApiVerifier`](crate::api::ApiVerifier) trusts: each bound
//! to one algorithm and one issuer, held as one immutable table that is
//! replaced whole when keys are reloaded.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::api::jwks;
use crate::api::keys::ApiKeySet;
use crate::error::{Error, Result};
use crate::kid::Kid;

/// Who vouches for tokens signed by a key.
#[derive(Clone, Debug)]
pub(super) enum Trust {
    /// weir itself: claims checked against the
    /// [`ApiVerifierConfig`](crate::api::ApiVerifierConfig).
    Weir,
    /// An external identity provider, with its own issuer and audience.
    External(Arc<ExternalIssuer>),
}

#[derive(Debug)]
pub(super) struct ExternalIssuer {
    pub(super) issuer: String,
    pub(super) audience: String,
}

/// A verification key bound to one algorithm and one issuer.
#[derive(Clone)]
pub(super) struct BoundKey {
    /// The one algorithm this key verifies; the header's `alg` must name it.
    pub(super) algorithm: Algorithm,
    pub(super) decoding: DecodingKey,
    pub(super) trust: Trust,
}

/// Every trusted key: one immutable snapshot, swapped whole on reload.
#[derive(Clone, Default)]
pub(super) struct KeyTable {
    /// weir's own HS256 keys.
    pub(super) weir: Arc<HashMap<Kid, BoundKey>>,
    /// One key map per external identity provider.
    pub(super) external: Vec<Arc<HashMap<Kid, BoundKey>>>,
}

impl KeyTable {
    pub(super) fn get(&self, kid: &Kid) -> Option<&BoundKey> {
        self.weir
            .get(kid)
            .or_else(|| self.external.iter().find_map(|m| m.get(kid)))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Kid, &BoundKey)> {
        self.weir
            .iter()
            .chain(self.external.iter().flat_map(|m| m.iter()))
    }

    /// Whether a kid of `keys` is already trusted outside the group
    /// `except` replaces (`None`: weir's keys; `Some(i)`: provider `i`).
    pub(super) fn collides(
        &self,
        keys: &HashMap<Kid, BoundKey>,
        except: Option<Option<usize>>,
    ) -> bool {
        let in_weir = except != Some(None) && keys.keys().any(|k| self.weir.contains_key(k));
        in_weir
            || self
                .external
                .iter()
                .enumerate()
                .filter(|(i, _)| except != Some(Some(*i)))
                .any(|(_, m)| keys.keys().any(|k| m.contains_key(k)))
    }
}

pub(super) fn issuer_of(group: &HashMap<Kid, BoundKey>) -> Option<&str> {
    group.values().find_map(|k| match &k.trust {
        Trust::External(idp) => Some(idp.issuer.as_str()),
        Trust::Weir => None,
    })
}

pub(super) fn kid_taken() -> Error {
    Error::InvalidJwks {
        reason: "kid already trusted by this verifier",
    }
}

pub(super) fn weir_keys(keys: &ApiKeySet) -> HashMap<Kid, BoundKey> {
    keys.keys()
        .map(|(kid, secret)| {
            let key = BoundKey {
                algorithm: Algorithm::HS256,
                decoding: DecodingKey::from_secret(secret.expose()),
                trust: Trust::Weir,
            };
            (kid.clone(), key)
        })
        .collect()
}

pub(super) fn external_keys(
    jwks: &Value,
    idp: &Arc<ExternalIssuer>,
) -> Result<HashMap<Kid, BoundKey>> {
    Ok(jwks::parse(jwks)?
        .into_iter()
        .map(|key| {
            let bound = BoundKey {
                algorithm: key.algorithm,
                decoding: key.decoding,
                trust: Trust::External(Arc::clone(idp)),
            };
            (key.kid, bound)
        })
        .collect())
}
