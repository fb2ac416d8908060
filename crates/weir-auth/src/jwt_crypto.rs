//! weir's `jsonwebtoken` crypto provider: RustCrypto's, with each Ed25519
//! key decoded once instead of on every call.
//!
//! `jsonwebtoken` builds a signer or verifier from the raw key bytes on every
//! `encode` and every signature check. For Ed25519 that costs a scalar
//! multiplication per mint (deriving the public key from the PKCS#8 seed,
//! about as much as the signature itself) and a point decompression per
//! verify (about an eighth of it). This provider keeps the decoded keys in
//! small process-wide maps and hands every other algorithm to
//! [`rust_crypto::DEFAULT_PROVIDER`] unchanged.
//!
//! # Guarantees
//!
//! - The arithmetic is ed25519-dalek's, with the same calls `jsonwebtoken`
//!   makes: `SigningKey::sign`, and the cofactorless `VerifyingKey::verify`
//!   (which refuses a non-canonical `s`). A token verifies here if and only
//!   if it verifies under the default provider; `tests` check both ways.
//! - Keys are looked up by their exact bytes (signing keys by the SHA-256 of
//!   their PKCS#8 document, so no private bytes are kept as map keys). A key
//!   that does not decode is an error, as with the default provider.
//! - Cached signing keys are zeroized when dropped; [`forget_signing_keys`]
//!   drops them all (key rotation calls it). Each map holds at most
//!   [`MAX_KEYS`] entries and is emptied when full.
//!
//! # Non-goals
//!
//! Other algorithms (HS256 API tokens, an external provider's RS256 or
//! ES256 keys) are not cached: HMAC keys cost nothing to set up, and
//! external keys are few and verified behind the API's token cache.

use std::collections::HashMap;
use std::sync::{Arc, Once, OnceLock, PoisonError, RwLock};

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, rust_crypto};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

/// Most decoded keys kept per map (signing, verifying).
pub(crate) const MAX_KEYS: usize = 64;

/// Installs weir's provider as `jsonwebtoken`'s process default, once.
///
/// Called before every `jsonwebtoken` call weir makes. If another provider
/// was installed first (by an embedding program), that one stays: tokens
/// still sign and verify, only without the cached keys.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = provider().install_default();
    });
}

fn provider() -> &'static CryptoProvider {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| CryptoProvider {
        signer_factory: new_signer,
        verifier_factory: new_verifier,
        key_utils: rust_crypto::DEFAULT_PROVIDER.key_utils.clone(),
    })
}

/// Drops every cached signing key (they zeroize on drop).
pub(crate) fn forget_signing_keys() {
    signing_keys().clear();
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return (rust_crypto::DEFAULT_PROVIDER.signer_factory)(algorithm, key);
    }
    let id: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let signing = signing_keys().get_or_insert(id, || {
        SigningKey::from_pkcs8_der(key.as_bytes()).map_err(|_| ErrorKind::InvalidEddsaKey.into())
    })?;
    Ok(Box::new(EdSigner(signing)))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key);
    }
    let raw: [u8; 32] = key
        .try_get_as_bytes()?
        .get(..32)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(ErrorKind::InvalidEddsaKey)?;
    let verifying = verifying_keys().get_or_insert(raw, || {
        VerifyingKey::from_bytes(&raw).map_err(|_| ErrorKind::InvalidEddsaKey.into())
    })?;
    Ok(Box::new(EdVerifier(verifying)))
}

/// Decoded Ed25519 signing keys, by SHA-256 of their PKCS#8 document.
fn signing_keys() -> &'static KeyMap<SigningKey> {
    static MAP: OnceLock<KeyMap<SigningKey>> = OnceLock::new();
    MAP.get_or_init(KeyMap::default)
}

/// Decoded Ed25519 public keys, by their 32 bytes.
fn verifying_keys() -> &'static KeyMap<VerifyingKey> {
    static MAP: OnceLock<KeyMap<VerifyingKey>> = OnceLock::new();
    MAP.get_or_init(KeyMap::default)
}

/// A bounded map of decoded keys. A poisoned lock is recovered: the map
/// holds only values that were fully built before insertion.
struct KeyMap<K> {
    keys: RwLock<HashMap<[u8; 32], Arc<K>>>,
}

impl<K> Default for KeyMap<K> {
    fn default() -> Self {
        Self {
            keys: RwLock::new(HashMap::new()),
        }
    }
}

impl<K> KeyMap<K> {
    fn get_or_insert(
        &self,
        id: [u8; 32],
        decode: impl FnOnce() -> JwtResult<K>,
    ) -> JwtResult<Arc<K>> {
        if let Some(key) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(decode()?);
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(id, Arc::clone(&key));
        Ok(key)
    }

    fn clear(&self) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

struct EdSigner(Arc<SigningKey>);

impl signature::Signer<Vec<u8>> for EdSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(msg).to_bytes().to_vec())
    }
}

impl JwtSigner for EdSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct EdVerifier(Arc<VerifyingKey>);

impl signature::Verifier<Vec<u8>> for EdVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        self.0.verify(msg, &Signature::from_slice(signature)?)
    }
}

impl JwtVerifier for EdVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePrivateKey;

    use super::*;

    fn keys(seed: u8) -> (EncodingKey, DecodingKey, VerifyingKey) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let der = signing.to_pkcs8_der().expect("pkcs8");
        let public = signing.verifying_key();
        (
            EncodingKey::from_ed_der(der.as_bytes()),
            DecodingKey::from_ed_der(public.as_bytes()),
            public,
        )
    }

    fn sign_with(provider: &CryptoProvider, key: &EncodingKey, msg: &[u8]) -> Vec<u8> {
        (provider.signer_factory)(&Algorithm::EdDSA, key)
            .expect("signer")
            .try_sign(msg)
            .expect("sign")
    }

    fn verifies_with(provider: &CryptoProvider, key: &DecodingKey, msg: &[u8], sig: &[u8]) -> bool {
        (provider.verifier_factory)(&Algorithm::EdDSA, key)
            .expect("verifier")
            .verify(msg, &sig.to_vec())
            .is_ok()
    }

    #[test]
    fn signatures_are_those_of_the_default_provider() {
        let (enc, _, _) = keys(1);
        let msg = b"header.payload";
        assert_eq!(
            sign_with(provider(), &enc, msg),
            sign_with(&rust_crypto::DEFAULT_PROVIDER, &enc, msg),
            "Ed25519 is deterministic: both providers must produce the same bytes"
        );
    }

    #[test]
    fn verification_agrees_with_the_default_provider_on_good_and_bad_signatures() {
        let (enc, dec, _) = keys(2);
        let (_, other_dec, _) = keys(3);
        let msg = b"header.payload";
        let good = sign_with(provider(), &enc, msg);
        let mut flipped = good.clone();
        flipped[5] ^= 1;
        // s >= l: the canonical-s check must refuse it in both.
        let mut high_s = good.clone();
        high_s[63] |= 0xf0;
        let cases: [(&DecodingKey, &[u8], &[u8]); 6] = [
            (&dec, msg, &good),
            (&dec, b"header.payloaD", &good),
            (&dec, msg, &flipped),
            (&dec, msg, &high_s),
            (&dec, msg, &good[..63]),
            (&other_dec, msg, &good),
        ];
        for (i, (key, m, sig)) in cases.into_iter().enumerate() {
            assert_eq!(
                verifies_with(provider(), key, m, sig),
                verifies_with(&rust_crypto::DEFAULT_PROVIDER, key, m, sig),
                "case {i}"
            );
        }
        assert!(verifies_with(provider(), &dec, msg, &good));
    }

    #[test]
    fn other_algorithms_go_to_the_default_provider() {
        let secret = EncodingKey::from_secret(&[9; 32]);
        let a = (provider().signer_factory)(&Algorithm::HS256, &secret)
            .expect("signer")
            .try_sign(b"m")
            .expect("sign");
        let b = (rust_crypto::DEFAULT_PROVIDER.signer_factory)(&Algorithm::HS256, &secret)
            .expect("signer")
            .try_sign(b"m")
            .expect("sign");
        assert_eq!(a, b);
    }

    #[test]
    fn an_ed_key_under_another_algorithm_is_refused_as_before() {
        let (enc, _, _) = keys(4);
        assert!((provider().signer_factory)(&Algorithm::HS256, &enc).is_err());
    }

    #[test]
    fn a_bad_public_key_is_an_error_not_a_panic() {
        let short = DecodingKey::from_ed_der(&[1; 5]);
        assert!((provider().verifier_factory)(&Algorithm::EdDSA, &short).is_err());
        let garbage = EncodingKey::from_ed_der(&[0xAB; 40]);
        assert!((provider().signer_factory)(&Algorithm::EdDSA, &garbage).is_err());
    }

    #[test]
    fn the_maps_are_bounded() {
        let map = KeyMap::<u32>::default();
        for i in 0..=MAX_KEYS {
            let mut id = [0; 32];
            id[0] = u8::try_from(i % 256).expect("small");
            id[1] = u8::try_from(i / 256).expect("small");
            map.get_or_insert(id, || Ok(1)).expect("insert");
            assert!(map.len() <= MAX_KEYS);
        }
        map.clear();
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn a_cached_key_is_reused() {
        let map = KeyMap::<u32>::default();
        map.get_or_insert([1; 32], || Ok(7)).expect("insert");
        let again = map
            .get_or_insert([1; 32], || panic!("decoded twice"))
            .expect("hit");
        assert_eq!(*again, 7);
    }
}
