//! External identity-provider keys from a JWKS document (RFC 7517).
//!
//! # Invariants
//!
//! - Each key is bound to exactly one algorithm: RS256, ES256 or EdDSA,
//!   from the JWK's `alg`, or inferred from `kty`/`crv` when `alg` is absent
//!   (`RSA` -> RS256, `EC`/`P-256` -> ES256, `OKP`/`Ed25519` -> EdDSA).
//! - A document that offers a symmetric key (`kty: oct`, a `k` member), an
//!   HMAC or `none` algorithm, private key members, a key without a valid
//!   `kid`, a repeated `kid`, or invalid key material is refused whole: it
//!   is misconfigured or hostile.
//! - Keys that are merely not for us (`use` other than `sig`, `key_ops`
//!   without `verify`, any other key type, curve or algorithm, such as
//!   RS384, PS256, ES384, or an `alg` that does not fit the key type) are
//!   skipped and never trusted. At least one key must remain.
//! - RSA moduli are 2048 to 4096 bits and odd; exponents odd, 3 to 2^33-1.
//!   EC points are on P-256. Ed25519 points are valid and not weak.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::kid::Kid;
use crate::verifier::MAX_JWKS_KEYS;

/// Members that only private or symmetric keys have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 4096;
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;

/// A trusted external verification key.
pub(crate) struct ExternalKey {
    pub(crate) kid: Kid,
    pub(crate) algorithm: Algorithm,
    pub(crate) decoding: DecodingKey,
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidJwks { reason }
}

/// Parses a JWKS document's bytes as strict JSON: one value, no object
/// repeating a key at any depth. The keys are checked when the document is
/// given to an [`ApiVerifier`](crate::api::ApiVerifier).
///
/// # Errors
///
/// [`Error::InvalidJwks`] if `bytes` is not one JSON value or repeats a key.
pub fn parse_jwks_document(bytes: &[u8]) -> Result<Value> {
    crate::compact::check_unique_keys(bytes, "jwks").map_err(|e| match e {
        Error::DuplicateKey { .. } => invalid("a JSON object repeats a key"),
        _ => invalid("not JSON"),
    })?;
    serde_json::from_slice(bytes).map_err(|_| invalid("not JSON"))
}

/// Parses every usable key of `jwks` (see the module invariants).
pub(crate) fn parse(jwks: &Value) -> Result<Vec<ExternalKey>> {
    let list = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(invalid("no keys array"))?;
    if list.is_empty() || list.len() > MAX_JWKS_KEYS {
        return Err(invalid("must hold 1 to 64 keys"));
    }
    let mut keys: Vec<ExternalKey> = Vec::with_capacity(list.len());
    for jwk in list {
        let jwk = jwk
            .as_object()
            .ok_or(invalid("a key is not a JSON object"))?;
        let Some(key) = parse_key(jwk)? else {
            continue;
        };
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(invalid("repeated kid"));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(invalid("no RS256, ES256 or EdDSA signature key"));
    }
    Ok(keys)
}

/// One key: `Ok(None)` if it is skipped (not a signature key for us).
fn parse_key(jwk: &Map<String, Value>) -> Result<Option<ExternalKey>> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(invalid("a verifier refuses private and symmetric keys"));
    }
    let member = |name: &str| -> Result<Option<&str>> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid("a key member is not a string")),
        }
    };
    let kty = member("kty")?.ok_or(invalid("key has no kty"))?;
    if kty == "oct" {
        return Err(invalid("a verifier refuses symmetric keys"));
    }
    let alg = member("alg")?;
    if let Some(a) = alg
        && (a.eq_ignore_ascii_case("none") || a.to_ascii_uppercase().starts_with("HS"))
    {
        return Err(invalid("HMAC and none algorithms are refused"));
    }
    let kid = Kid::parse(member("kid")?.ok_or(invalid("key has no kid"))?)
        .map_err(|_| invalid("key has an invalid kid"))?;
    if !is_signature_key(jwk, member("use")?)? {
        return Ok(None);
    }
    let Some(algorithm) = bind_algorithm(kty, member("crv")?, alg) else {
        return Ok(None);
    };
    let decoding = match algorithm {
        Algorithm::RS256 => rsa_key(member("n")?, member("e")?)?,
        Algorithm::ES256 => p256_key(member("x")?, member("y")?)?,
        Algorithm::EdDSA => ed25519_key(member("x")?)?,
        _ => {
            return Err(Error::Internal {
                reason: "unbound JWKS algorithm",
            });
        }
    };
    Ok(Some(ExternalKey {
        kid,
        algorithm,
        decoding,
    }))
}

/// `use` absent or `sig`, and `key_ops` absent or listing `verify`.
fn is_signature_key(jwk: &Map<String, Value>, use_: Option<&str>) -> Result<bool> {
    if use_.is_some_and(|u| u != "sig") {
        return Ok(false);
    }
    match jwk.get("key_ops") {
        None => Ok(true),
        Some(Value::Array(ops)) => Ok(ops.iter().any(|op| op.as_str() == Some("verify"))),
        Some(_) => Err(invalid("key_ops is not an array")),
    }
}

/// The one algorithm a key is bound to: the algorithm weir verifies for
/// its key type, if `alg` is absent or names exactly that algorithm.
/// `None` (skip the key) for any other key type, curve or algorithm.
fn bind_algorithm(kty: &str, crv: Option<&str>, alg: Option<&str>) -> Option<Algorithm> {
    let supported = match (kty, crv) {
        ("RSA", _) => ("RS256", Algorithm::RS256),
        ("EC", Some("P-256")) => ("ES256", Algorithm::ES256),
        ("OKP", Some("Ed25519")) => ("EdDSA", Algorithm::EdDSA),
        _ => return None,
    };
    match alg {
        None => Some(supported.1),
        Some(a) if a == supported.0 => Some(supported.1),
        Some(_) => None,
    }
}

fn b64(part: Option<&str>, missing: &'static str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part.ok_or(invalid(missing))?)
        .map_err(|_| invalid("key material is not base64url"))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn bit_len(be: &[u8]) -> usize {
    be.first().map_or(0, |&top| {
        (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
    })
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<DecodingKey> {
    let n = b64(n, "RSA key has no n")?;
    let e = b64(e, "RSA key has no e")?;
    let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bit_len(n)) {
        return Err(invalid("RSA modulus must be 2048 to 4096 bits"));
    }
    if n.last().is_none_or(|b| b % 2 == 0) {
        return Err(invalid("RSA modulus is even"));
    }
    let exponent = (e.len() <= 8)
        .then(|| e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        .ok_or(invalid("RSA exponent out of range"))?;
    if !(3..=MAX_RSA_EXPONENT).contains(&exponent) || exponent % 2 == 0 {
        return Err(invalid("RSA exponent must be odd, 3 to 2^33-1"));
    }
    Ok(DecodingKey::from_rsa_raw_components(n, e))
}

fn p256_key(x: Option<&str>, y: Option<&str>) -> Result<DecodingKey> {
    let x = b64(x, "EC key has no x")?;
    let y = b64(y, "EC key has no y")?;
    if x.len() != 32 || y.len() != 32 {
        return Err(invalid("P-256 coordinates must be 32 bytes"));
    }
    // SEC1 uncompressed point: what jsonwebtoken's ES256 verifier decodes.
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    p256::PublicKey::from_sec1_bytes(&point).map_err(|_| invalid("not a point on P-256"))?;
    Ok(DecodingKey::from_ec_der(&point))
}

fn ed25519_key(x: Option<&str>) -> Result<DecodingKey> {
    let x = b64(x, "OKP key has no x")?;
    let x = <[u8; 32]>::try_from(x.as_slice()).map_err(|_| invalid("x is not 32 bytes"))?;
    let point = ed25519_dalek::VerifyingKey::from_bytes(&x)
        .map_err(|_| invalid("x is not a valid Ed25519 point"))?;
    if point.is_weak() {
        return Err(invalid("x is a weak key"));
    }
    // jsonwebtoken's EdDSA verifier takes the raw 32-byte key here.
    Ok(DecodingKey::from_ed_der(&x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 8037 A.2 public key.
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ed(kid: &str) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": kid})
    }

    fn one(key: Value) -> Result<Vec<ExternalKey>> {
        parse(&json!({ "keys": [key] }))
    }

    #[test]
    fn document_parsing_is_strict() {
        assert!(parse_jwks_document(br#"{"keys": []}"#).is_ok());
        for bad in [
            &br#"{"keys": [], "keys": []}"#[..],
            br#"{"keys": [{"kid": "a", "kid": "b"}]}"#,
            b"{\"keys\": [",
            b"<html>",
            b"{} {}",
        ] {
            assert!(matches!(
                parse_jwks_document(bad),
                Err(Error::InvalidJwks { .. })
            ));
        }
    }

    #[test]
    fn infers_eddsa_without_alg() {
        let keys = one(ed("a")).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.first().unwrap().algorithm, Algorithm::EdDSA);
    }

    #[test]
    fn refuses_symmetric_private_and_confused_keys() {
        let with = |name: &str, value: Value| {
            let mut k = ed("a");
            k[name] = value;
            k
        };
        for (why, bad) in [
            ("oct", json!({"kty": "oct", "k": "AAAA", "kid": "a"})),
            (
                "oct without k",
                json!({"kty": "oct", "kid": "a", "alg": "HS256"}),
            ),
            ("private d", with("d", json!("AAAA"))),
            ("HS256", with("alg", json!("HS256"))),
            ("hs512", with("alg", json!("hs512"))),
            ("none", with("alg", json!("none"))),
            (
                "RS256 on OKP: skipped, nothing left",
                with("alg", json!("RS256")),
            ),
            ("no kid", json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X})),
            ("bad kid", with("kid", json!("../k"))),
            ("short x", with("x", json!("AAAA"))),
            ("non-string x", with("x", json!(5))),
            (
                "weak x",
                with("x", json!(URL_SAFE_NO_PAD.encode([0u8; 32]))),
            ),
        ] {
            assert!(matches!(one(bad), Err(Error::InvalidJwks { .. })), "{why}");
        }
        assert!(
            parse(&json!({"keys": [ed("a"), ed("a")]})).is_err(),
            "repeated kid"
        );
        assert!(parse(&json!({"keys": []})).is_err());
        assert!(parse(&json!([])).is_err());
    }

    #[test]
    fn skips_keys_not_for_signature_verification() {
        let enc = json!({"kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "kid": "e", "n": "AQAB", "e": "AQAB"});
        let ps = json!({"kty": "RSA", "alg": "PS256", "kid": "p", "n": "AQAB", "e": "AQAB"});
        let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "c", "x": "AA", "y": "AA"});
        let ops = {
            let mut k = ed("o");
            k["key_ops"] = json!(["sign"]);
            k
        };
        let keys = parse(&json!({"keys": [enc.clone(), ps, p384, ops, ed("a")]})).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.first().unwrap().kid.as_str(), "a");
        assert!(parse(&json!({"keys": [enc]})).is_err(), "nothing usable");
    }

    #[test]
    fn rsa_and_ec_material_is_checked() {
        let n_small = URL_SAFE_NO_PAD.encode([0xffu8; 128]); // 1024 bits
        let n_even = URL_SAFE_NO_PAD.encode([0xfeu8; 256]);
        let n_ok = URL_SAFE_NO_PAD.encode([0xffu8; 256]);
        for (n, e) in [
            (&n_small, "AQAB"),
            (&n_even, "AQAB"),
            (&n_ok, "AQ"),
            (&n_ok, "Ag"),
            (&n_ok, "AQAAAAAAAAAAAQ"),
        ] {
            let key = json!({"kty": "RSA", "kid": "r", "n": n, "e": e});
            assert!(one(key).is_err(), "{e}");
        }
        let key = json!({"kty": "RSA", "kid": "r", "n": n_ok, "e": "AQAB"});
        assert_eq!(
            one(key).unwrap().first().unwrap().algorithm,
            Algorithm::RS256
        );
        let off_curve = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let key = json!({"kty": "EC", "crv": "P-256", "kid": "c", "x": off_curve, "y": off_curve});
        assert!(one(key).is_err());
    }

    #[test]
    fn bit_length() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(strip_leading_zeros(&[0, 0, 1]), &[1]);
        assert_eq!(strip_leading_zeros(&[0, 0]), &[] as &[u8]);
    }
}
