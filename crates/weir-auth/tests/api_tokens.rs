//! API tokens: round trips, then hostile tokens, one test per attack, each
//! named after it.
//!
//! weir tokens are crafted by hand where jsonwebtoken would refuse to
//! produce them, HMAC-signed with the real active secret read back from its
//! 0600 file, so that each test reaches the check it is about rather than
//! failing on the signature. External tokens are signed with the test-only
//! identity-provider keys in `tests/fixtures/`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::Sha256;
use tempfile::TempDir;
use weir_auth::{
    API_KEYS_FILE, ApiAuthError, ApiKeySet, ApiMinter, ApiVerifier, ApiVerifierConfig, Error,
    FixedClock, InMemoryRevocationList, Kid, MAX_TOKEN_BYTES, RevocationList, Role, StageKeySet,
    StageVerifier,
};

const NOW: i64 = 1_700_000_000;
const ISS: &str = "weir";
const AUD: &str = "weir-api";
const IDP_ISS: &str = "https://idp.example.com/";
const IDP_AUD: &str = "weir";
const TTL: Duration = Duration::from_secs(600);
const LEEWAY: i64 = 10;

/// One test-only external signing key.
struct IdpKey {
    kid: &'static str,
    alg: Algorithm,
    header_alg: &'static str,
    encoding: EncodingKey,
    /// Its public JWK (with `kid` and `alg`).
    jwk: Value,
    /// Its public key as PEM text (for key-confusion attempts).
    public_pem: String,
}

struct Fixture {
    state: TempDir,
    keys: ApiKeySet,
    clock: Arc<FixedClock>,
    minter: ApiMinter,
    verifier: ApiVerifier,
    /// The active HS256 secret, read back from its 0600 file.
    secret: Vec<u8>,
    kid: String,
    idp: Vec<IdpKey>,
}

fn fixture_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn idp_key(kid: &'static str, alg: Algorithm, header_alg: &'static str, stem: &str) -> IdpKey {
    let pem = fixture_file(&format!("idp-{stem}.test-key.pem"));
    let encoding = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .unwrap();
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    IdpKey {
        kid,
        alg,
        header_alg,
        encoding,
        jwk,
        public_pem: fixture_file(&format!("idp-{stem}.test-pub.pem")),
    }
}

fn idp_keys() -> Vec<IdpKey> {
    vec![
        idp_key("idp-rsa", Algorithm::RS256, "RS256", "rs256"),
        idp_key("idp-ec", Algorithm::ES256, "ES256", "es256"),
        idp_key("idp-ed", Algorithm::EdDSA, "EdDSA", "eddsa"),
    ]
}

fn idp_jwks(idp: &[IdpKey]) -> Value {
    json!({ "keys": idp.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

fn read_active_secret(state: &Path) -> (String, Vec<u8>) {
    let text = std::fs::read_to_string(state.join("keys/api").join(API_KEYS_FILE)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let active = v["active"].as_str().unwrap().to_owned();
    let key = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == active.as_str())
        .unwrap();
    let secret = URL_SAFE_NO_PAD
        .decode(key["secret"].as_str().unwrap())
        .unwrap();
    (active, secret)
}

fn config() -> ApiVerifierConfig {
    ApiVerifierConfig::new(ISS, AUD)
}

fn fixture() -> Fixture {
    let state = tempfile::tempdir().unwrap();
    let keys = ApiKeySet::load_or_create_at(state.path(), NOW).unwrap();
    let clock = Arc::new(FixedClock::new(NOW));
    let minter = keys.minter(ISS, AUD).with_clock(clock.clone());
    let idp = idp_keys();
    let verifier = ApiVerifier::new(&keys, config())
        .with_clock(clock.clone())
        .with_external_jwks(&idp_jwks(&idp), IDP_ISS, IDP_AUD)
        .unwrap();
    let (kid, secret) = read_active_secret(state.path());
    assert_eq!(kid, keys.active_kid().as_str());
    Fixture {
        state,
        keys,
        clock,
        minter,
        verifier,
        secret,
        kid,
        idp,
    }
}

impl Fixture {
    fn idp(&self, alg: Algorithm) -> &IdpKey {
        self.idp.iter().find(|k| k.alg == alg).unwrap()
    }

    fn header(&self) -> Value {
        json!({"typ": "JWT", "alg": "HS256", "kid": self.kid})
    }

    /// A weir token with these claims, signed with the real secret.
    fn weir_token(&self, claims: &Value) -> String {
        hs256(&self.header(), claims, &self.secret)
    }

    fn mint(&self, roles: &[Role]) -> (String, String, i64) {
        let minted = self.minter.mint("alice", roles, TTL).unwrap();
        (minted.token.expose().to_owned(), minted.jti, minted.exp)
    }
}

/// Valid weir API claims as JSON, for editing.
fn weir_claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "roles": ["engineer"],
        "iat": NOW, "nbf": NOW, "exp": NOW + 600,
        "jti": "01J00000000000000000000JTI", "typ": "weir/api",
    })
}

/// Valid external claims as JSON, for editing.
fn idp_claims() -> Value {
    json!({
        "iss": IDP_ISS, "aud": [IDP_AUD, "other-app"], "sub": "auth0|bob",
        "roles": ["auditor", "idp-only-role"], "iat": NOW, "exp": NOW + 600,
        "scope": "openid profile",
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

fn hs256_raw(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = signing_input(header, payload);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
    hs256_raw(&header.to_string(), &payload.to_string(), secret)
}

/// An external token with any header and payload, signed by `key`.
fn external_raw(key: &IdpKey, header: &Value, payload: &Value) -> String {
    let input = signing_input(&header.to_string(), &payload.to_string());
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, key.alg).unwrap();
    format!("{input}.{sig}")
}

fn external(key: &IdpKey, payload: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": key.header_alg, "kid": key.kid});
    external_raw(key, &header, payload)
}

/// Verifies `token`, expects failure, and checks that neither the error's
/// Display nor its Debug contains the token or its signature.
fn reject(verifier: &ApiVerifier, token: &str) -> ApiAuthError {
    let err = verifier.verify(token).expect_err("hostile token accepted");
    let shown = format!("{err} / {err:?} / {}", err.reason());
    // (A token of a few characters may occur in any text by chance.)
    if token.len() >= 8 {
        assert!(!shown.contains(token), "error leaks the token: {shown}");
    }
    if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() >= 8) {
        assert!(!shown.contains(sig), "error leaks the signature: {shown}");
    }
    err
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_each_role() {
    let f = fixture();
    for role in Role::ALL {
        let (token, jti, exp) = f.mint(&[role]);
        let who = f.verifier.verify(&token).unwrap();
        assert_eq!(who.sub, "alice");
        assert_eq!(who.roles, [role].into());
        assert!(who.has_role(role));
        assert_eq!(who.jti.as_deref(), Some(jti.as_str()));
        assert_eq!(who.exp, exp);
        assert_eq!(exp, NOW + 600);
        assert_eq!(who.issuer, ISS);
        assert!(!who.external);
        // Cached: the same answer again.
        assert_eq!(f.verifier.verify(&token).unwrap(), who);
    }
    let (token, _, _) = f.mint(&[Role::Auditor, Role::Admin]);
    let who = f.verifier.verify(&token).unwrap();
    assert_eq!(who.roles, [Role::Admin, Role::Auditor].into());
    // An uncached verifier agrees.
    let uncached = ApiVerifier::new(&f.keys, config())
        .with_clock(f.clock.clone())
        .without_cache();
    assert_eq!(uncached.verify(&token).unwrap(), who);
    assert_eq!(uncached.cache_len(), None);
}

#[test]
fn minted_token_has_the_documented_shape() {
    let f = fixture();
    let minted = f.minter.mint("alice", &[Role::Worker], TTL).unwrap();
    let token = minted.token.expose();
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    assert_eq!(header, json!({"typ": "JWT", "alg": "HS256", "kid": f.kid}));
    assert_eq!(claims, serde_json::to_value(&minted.claims).unwrap());
    assert_eq!(claims["typ"], "weir/api");
    assert_eq!(claims["roles"], json!(["worker"]));
    assert_eq!(claims["jti"].as_str().unwrap().len(), 26, "a ULID");
}

#[test]
fn tokens_survive_rotation() {
    let mut f = fixture();
    let (before, _, _) = f.mint(&[Role::Admin]);
    let new_kid = f.keys.rotate_at(f.state.path(), NOW).unwrap();
    let minter = f.keys.minter(ISS, AUD).with_clock(f.clock.clone());
    assert_eq!(minter.kid(), &new_kid);
    let after = minter.mint("alice", &[Role::Admin], TTL).unwrap();
    let verifier = ApiVerifier::new(&f.keys, config()).with_clock(f.clock.clone());
    assert!(verifier.verify(&before).is_ok());
    assert!(verifier.verify(after.token.expose()).is_ok());
    // A verifier built before the rotation does not know the new key.
    assert_eq!(
        reject(&f.verifier, after.token.expose()),
        ApiAuthError::UnknownKid
    );
    // Reloaded from disk: both keys.
    let reloaded = ApiKeySet::load_or_create_at(f.state.path(), NOW + 1).unwrap();
    assert_eq!(reloaded.kids().count(), 2);
}

#[test]
fn external_jwks_rs256_es256_eddsa() {
    let f = fixture();
    for key in &f.idp {
        let token = external(key, &idp_claims());
        let who = f
            .verifier
            .verify(&token)
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(who.sub, "auth0|bob");
        assert_eq!(
            who.roles,
            [Role::Auditor].into(),
            "unknown role names ignored"
        );
        assert_eq!(who.issuer, IDP_ISS);
        assert!(who.external);
        assert_eq!(who.jti, None);
        assert_eq!(who.exp, NOW + 600);
        // jsonwebtoken's own encoder gives the same result.
        let mut header = jsonwebtoken::Header::new(key.alg);
        header.kid = Some(key.kid.to_owned());
        let encoded = jsonwebtoken::encode(&header, &idp_claims(), &key.encoding).unwrap();
        assert_eq!(f.verifier.verify(&encoded).unwrap(), who);
    }
    // No roles claim: an identity with no role (the HTTP layer answers 403).
    let key = f.idp(Algorithm::ES256);
    let who = f
        .verifier
        .verify(&external(key, &without(idp_claims(), "roles")))
        .unwrap();
    assert!(who.roles.is_empty());
    // A single-string audience, a jti, and an RFC 9068 access-token header.
    let mut c = idp_claims();
    c["aud"] = json!(IDP_AUD);
    c["jti"] = json!("idp-token-1");
    let header = json!({"typ": "at+jwt", "alg": "RS256", "kid": "idp-rsa"});
    let who = f
        .verifier
        .verify(&external_raw(f.idp(Algorithm::RS256), &header, &c))
        .unwrap();
    assert_eq!(who.jti.as_deref(), Some("idp-token-1"));
}

#[test]
fn external_jwks_without_alg_infers_it_from_the_key_type() {
    let f = fixture();
    let mut jwks = idp_jwks(&f.idp);
    for key in jwks["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("alg");
        key.as_object_mut().unwrap().remove("use");
    }
    let verifier = ApiVerifier::new(&f.keys, config())
        .with_clock(f.clock.clone())
        .with_external_jwks(&jwks, IDP_ISS, IDP_AUD)
        .unwrap();
    for key in &f.idp {
        assert!(
            verifier.verify(&external(key, &idp_claims())).is_ok(),
            "{:?}",
            key.alg
        );
    }
}

#[test]
fn external_jwks_refusals() {
    let f = fixture();
    let base = || ApiVerifier::new(&f.keys, config());
    // A kid already used by weir's own key.
    let mut clash = f.idp(Algorithm::EdDSA).jwk.clone();
    clash["kid"] = json!(f.kid);
    let err = base()
        .with_external_jwks(&json!({"keys": [clash]}), IDP_ISS, IDP_AUD)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidJwks { .. }), "{err}");
    // The same provider added twice: every kid clashes.
    let twice = base()
        .with_external_jwks(&idp_jwks(&f.idp), IDP_ISS, IDP_AUD)
        .unwrap()
        .with_external_jwks(&idp_jwks(&f.idp), "https://other.example/", IDP_AUD);
    assert!(matches!(twice, Err(Error::InvalidJwks { .. })));
    // Symmetric keys and HMAC or none algorithms are refused outright.
    for bad in [
        json!({"kty": "oct", "kid": "hmac", "k": b64(&f.secret), "alg": "HS256"}),
        {
            let mut k = f.idp(Algorithm::RS256).jwk.clone();
            k["alg"] = json!("HS256");
            k
        },
        {
            let mut k = f.idp(Algorithm::ES256).jwk.clone();
            k["alg"] = json!("none");
            k
        },
    ] {
        let err = base()
            .with_external_jwks(&json!({"keys": [bad]}), IDP_ISS, IDP_AUD)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidJwks { .. }), "{err}");
        assert!(!err.to_string().contains(&b64(&f.secret)));
    }
    // Unusable issuer or audience.
    assert!(
        base()
            .with_external_jwks(&idp_jwks(&f.idp), "", IDP_AUD)
            .is_err()
    );
    assert!(
        base()
            .with_external_jwks(&idp_jwks(&f.idp), IDP_ISS, "a\nb")
            .is_err()
    );
}

// ------------------------------------------------------------------- hostile

#[test]
fn empty_token() {
    let f = fixture();
    assert_eq!(f.verifier.verify(""), Err(ApiAuthError::Missing));
}

#[test]
fn expired() {
    let f = fixture();
    let (token, _, exp) = f.mint(&[Role::Engineer]);
    assert!(f.verifier.verify(&token).is_ok());
    f.clock.set(exp + LEEWAY);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::Expired);
    f.clock.set(NOW + 365 * 86_400);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::Expired);
    // External tokens too.
    let key = f.idp(Algorithm::EdDSA);
    assert_eq!(
        reject(&f.verifier, &external(key, &idp_claims())),
        ApiAuthError::Expired
    );
}

#[test]
fn not_yet_valid() {
    let f = fixture();
    let mut c = weir_claims();
    c["nbf"] = json!(NOW + 120);
    let token = f.weir_token(&c);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::NotYetValid);
    f.clock.set(NOW + 120 - LEEWAY);
    assert!(
        f.verifier.verify(&token).is_ok(),
        "valid once its time comes"
    );

    let f = fixture();
    let mut c = idp_claims();
    c["nbf"] = json!(NOW + 120);
    let token = external(f.idp(Algorithm::ES256), &c);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::NotYetValid);
}

#[test]
fn issued_in_future() {
    let f = fixture();
    let mut c = weir_claims();
    c["iat"] = json!(NOW + 120);
    c["nbf"] = json!(NOW + 120);
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::IssuedInFuture
    );
    let mut c = idp_claims();
    c["iat"] = json!(NOW + 120);
    let token = external(f.idp(Algorithm::EdDSA), &c);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::IssuedInFuture);
}

#[test]
fn lifetime_too_long() {
    let f = fixture();
    let mut c = weir_claims();
    c["exp"] = json!(NOW + 31 * 86_400);
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::LifetimeTooLong
    );
    // External without iat: measured from now.
    let mut c = without(idp_claims(), "iat");
    c["exp"] = json!(NOW + 31 * 86_400);
    let token = external(f.idp(Algorithm::EdDSA), &c);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::LifetimeTooLong);
    // exp before iat.
    let mut c = weir_claims();
    c["exp"] = json!(NOW - 1);
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::InconsistentTimes
    );
    // The minter caps instead of minting such a token.
    let long = f
        .minter
        .mint("alice", &[Role::Admin], Duration::from_secs(365 * 86_400))
        .unwrap();
    assert_eq!(long.exp - NOW, 30 * 86_400);
    assert!(f.verifier.verify(long.token.expose()).is_ok());
}

#[test]
fn wrong_iss() {
    let f = fixture();
    let mut c = weir_claims();
    c["iss"] = json!("mallory");
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::WrongIssuer
    );
    // A weir-issued token is not an IdP token and vice versa: the issuer is
    // bound to the key.
    let mut c = idp_claims();
    c["iss"] = json!(ISS);
    let token = external(f.idp(Algorithm::RS256), &c);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::WrongIssuer);
    let mut c = weir_claims();
    c["iss"] = json!(IDP_ISS);
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::WrongIssuer
    );
}

#[test]
fn wrong_aud() {
    let f = fixture();
    let mut c = weir_claims();
    c["aud"] = json!("weir-worker");
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::WrongAudience
    );
    let mut c = idp_claims();
    c["aud"] = json!(["other-app"]);
    let token = external(f.idp(Algorithm::ES256), &c);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::WrongAudience);
    // A verifier for another audience refuses a real minted token.
    let other = ApiVerifier::new(&f.keys, ApiVerifierConfig::new(ISS, "someone-else"))
        .with_clock(f.clock.clone());
    let (token, _, _) = f.mint(&[Role::Admin]);
    assert_eq!(reject(&other, &token), ApiAuthError::WrongAudience);
}

#[test]
fn missing_sub() {
    let f = fixture();
    let token = f.weir_token(&without(weir_claims(), "sub"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("sub")
    );
    let token = external(f.idp(Algorithm::RS256), &without(idp_claims(), "sub"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("sub")
    );
    let mut c = idp_claims();
    c["sub"] = Value::Null;
    let token = external(f.idp(Algorithm::RS256), &c);
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("sub")
    );
}

#[test]
fn missing_exp() {
    let f = fixture();
    let token = f.weir_token(&without(weir_claims(), "exp"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("exp")
    );
    let token = external(f.idp(Algorithm::ES256), &without(idp_claims(), "exp"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("exp")
    );
    // Mistyped rather than missing.
    for exp in [json!((NOW + 600).to_string()), json!(1e10), json!(true)] {
        let mut c = weir_claims();
        c["exp"] = exp;
        assert_eq!(
            reject(&f.verifier, &f.weir_token(&c)),
            ApiAuthError::MalformedClaims
        );
    }
}

#[test]
fn missing_iss() {
    let f = fixture();
    let token = f.weir_token(&without(weir_claims(), "iss"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("iss")
    );
    let token = external(f.idp(Algorithm::EdDSA), &without(idp_claims(), "iss"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("iss")
    );
}

#[test]
fn missing_aud() {
    let f = fixture();
    let token = f.weir_token(&without(weir_claims(), "aud"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("aud")
    );
    let token = external(f.idp(Algorithm::EdDSA), &without(idp_claims(), "aud"));
    assert_eq!(
        reject(&f.verifier, &token),
        ApiAuthError::MissingClaim("aud")
    );
}

#[test]
fn missing_other_weir_claims() {
    let f = fixture();
    for claim in ["iat", "nbf", "jti", "roles", "typ"] {
        let token = f.weir_token(&without(weir_claims(), claim));
        assert_eq!(
            reject(&f.verifier, &token),
            ApiAuthError::MissingClaim(claim),
            "{claim}"
        );
    }
    // And no claim beyond the documented ones.
    let mut c = weir_claims();
    c["admin"] = json!(true);
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::MalformedClaims
    );
}

#[test]
fn alg_none() {
    let f = fixture();
    let payload = b64(weir_claims().to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE"] {
        for kid in [f.kid.as_str(), "idp-rsa", "idp-ec", "idp-ed"] {
            let h = json!({"typ": "JWT", "alg": alg, "kid": kid});
            let head = b64(h.to_string().as_bytes());
            // Unsigned, as `none` tokens are: an empty third part.
            let err = reject(&f.verifier, &format!("{head}.{payload}."));
            assert_eq!(err, ApiAuthError::Malformed, "{alg}");
            // With a real signature over the input: still refused.
            let signed = hs256(&h, &weir_claims(), &f.secret);
            assert_eq!(
                reject(&f.verifier, &signed),
                ApiAuthError::AlgorithmMismatch,
                "{alg} {kid}"
            );
        }
        let h = json!({"typ": "JWT", "alg": alg});
        let signed = hs256(&h, &weir_claims(), &f.secret);
        assert_eq!(reject(&f.verifier, &signed), ApiAuthError::MissingKid);
    }
}

/// HS256 keyed with the public key of an asymmetric IdP key: the classic
/// key-confusion forgery. Refused because the key is bound to its own
/// algorithm and the header's `alg` is only compared with it.
fn key_confusion(alg: Algorithm) {
    let f = fixture();
    let key = f.idp(alg);
    let mut secrets: Vec<Vec<u8>> = vec![
        key.public_pem.clone().into_bytes(),
        key.public_pem.trim_end().as_bytes().to_vec(),
        key.jwk.to_string().into_bytes(),
    ];
    for member in ["n", "x", "y"] {
        if let Some(m) = key.jwk[member].as_str() {
            secrets.push(m.as_bytes().to_vec());
            secrets.push(URL_SAFE_NO_PAD.decode(m).unwrap());
        }
    }
    let mut c = idp_claims();
    c["roles"] = json!(["admin"]);
    for header_alg in ["HS256", "HS384", "HS512", "hs256"] {
        for secret in &secrets {
            let h = json!({"typ": "JWT", "alg": header_alg, "kid": key.kid});
            let token = hs256(&h, &c, secret);
            assert_eq!(
                reject(&f.verifier, &token),
                ApiAuthError::AlgorithmMismatch,
                "{header_alg}"
            );
        }
    }
    // Nor is any other asymmetric algorithm taken from the header.
    for other in &f.idp {
        if other.alg != alg {
            let h = json!({"typ": "JWT", "alg": other.header_alg, "kid": key.kid});
            let token = external_raw(other, &h, &c);
            assert_eq!(reject(&f.verifier, &token), ApiAuthError::AlgorithmMismatch);
        }
    }
}

#[test]
fn hs256_header_on_rsa_key() {
    key_confusion(Algorithm::RS256);
}

#[test]
fn hs256_header_on_ec_key() {
    key_confusion(Algorithm::ES256);
}

#[test]
fn hs256_header_on_ed25519_key() {
    key_confusion(Algorithm::EdDSA);
}

#[test]
fn asymmetric_header_on_weir_hmac_key() {
    let f = fixture();
    for key in &f.idp {
        let h = json!({"typ": "JWT", "alg": key.header_alg, "kid": f.kid});
        let token = external_raw(key, &h, &weir_claims());
        assert_eq!(reject(&f.verifier, &token), ApiAuthError::AlgorithmMismatch);
    }
}

#[test]
fn unknown_kid() {
    let f = fixture();
    for kid in [
        "api-not-a-known-key",
        "keyset",
        "api-keys",
        "../../etc/passwd",
        "",
        "http://evil/jwks",
    ] {
        let h = json!({"typ": "JWT", "alg": "HS256", "kid": kid});
        let token = hs256(&h, &weir_claims(), &f.secret);
        assert_eq!(
            reject(&f.verifier, &token),
            ApiAuthError::UnknownKid,
            "{kid:?}"
        );
    }
    // The attacker's own IdP key under its own kid.
    let attacker = SigningKey::from_bytes(&[7; 32]);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&attacker).unwrap();
    let key = IdpKey {
        kid: "attacker",
        alg: Algorithm::EdDSA,
        header_alg: "EdDSA",
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        jwk: Value::Null,
        public_pem: String::new(),
    };
    assert_eq!(
        reject(&f.verifier, &external(&key, &idp_claims())),
        ApiAuthError::UnknownKid
    );
}

#[test]
fn foreign_key_claiming_a_trusted_kid() {
    let f = fixture();
    let attacker = SigningKey::from_bytes(&[9; 32]);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&attacker).unwrap();
    let key = IdpKey {
        kid: "idp-ed",
        alg: Algorithm::EdDSA,
        header_alg: "EdDSA",
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        jwk: Value::Null,
        public_pem: String::new(),
    };
    assert_eq!(
        reject(&f.verifier, &external(&key, &idp_claims())),
        ApiAuthError::BadSignature
    );
    // weir's kid with another secret.
    let token = hs256(&f.header(), &weir_claims(), &[0u8; 32]);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::BadSignature);
}

#[test]
fn tampered_payload() {
    let f = fixture();
    let minted = f.minter.mint("alice", &[Role::Auditor], TTL).unwrap();
    let token = minted.token.expose();
    let (head, rest) = token.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    // Escalate to admin, keep the signature.
    let mut c = serde_json::to_value(&minted.claims).unwrap();
    c["roles"] = json!(["admin"]);
    let forged = format!("{head}.{}.{sig}", b64(c.to_string().as_bytes()));
    assert_eq!(reject(&f.verifier, &forged), ApiAuthError::BadSignature);
    // Same for an external token.
    let token = external(f.idp(Algorithm::RS256), &idp_claims());
    let (head, rest) = token.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    let mut c = idp_claims();
    c["roles"] = json!(["admin"]);
    let forged = format!("{head}.{}.{sig}", b64(c.to_string().as_bytes()));
    assert_eq!(reject(&f.verifier, &forged), ApiAuthError::BadSignature);
}

#[test]
fn tampered_signature() {
    let f = fixture();
    let (weir, _, _) = f.mint(&[Role::Engineer]);
    let mut tokens = vec![weir];
    tokens.extend(f.idp.iter().map(|k| external(k, &idp_claims())));
    for token in tokens {
        let sig_start = token.rfind('.').unwrap() + 1;
        for pos in [sig_start, sig_start + 5, token.len() - 3] {
            let mut bytes = token.clone().into_bytes();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let flipped = String::from_utf8(bytes).unwrap();
            assert_eq!(reject(&f.verifier, &flipped), ApiAuthError::BadSignature);
        }
        // A signature from another token.
        let other_sig = b64(&[1u8; 64]);
        let swapped = format!("{}.{other_sig}", &token[..sig_start - 1]);
        assert!(matches!(
            reject(&f.verifier, &swapped),
            ApiAuthError::BadSignature | ApiAuthError::Malformed
        ));
    }
}

#[test]
fn truncated() {
    let f = fixture();
    let (token, _, _) = f.mint(&[Role::Engineer]);
    let dots: Vec<usize> = token.match_indices('.').map(|(i, _)| i).collect();
    for cut in [
        1,
        10,
        dots[0],
        dots[0] + 1,
        dots[1] - 1,
        dots[1],
        dots[1] + 1,
        token.len() - 10,
        token.len() - 1,
    ] {
        let err = reject(&f.verifier, &token[..cut]);
        assert!(
            matches!(err, ApiAuthError::Malformed | ApiAuthError::BadSignature),
            "{cut}: {err:?}"
        );
    }
}

#[test]
fn oversized_9_kib() {
    let f = fixture();
    // Validly signed, but 9 KiB: refused on length alone.
    let mut c = weir_claims();
    c["pad"] = json!("p".repeat(9 * 1024));
    let token = f.weir_token(&c);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::TooLarge);
    // Junk of any size, refused before any decoding.
    assert_eq!(
        reject(&f.verifier, &"!".repeat(9 * 1024)),
        ApiAuthError::TooLarge
    );
    assert_eq!(
        reject(&f.verifier, &"!".repeat(MAX_TOKEN_BYTES)),
        ApiAuthError::Malformed
    );
    assert_eq!(f.verifier.cache_len(), Some(0));
}

#[test]
fn crit_header() {
    let f = fixture();
    for crit in [json!(["exp"]), json!([]), json!(["b64"])] {
        let mut h = f.header();
        h["crit"] = crit.clone();
        h["b64"] = json!(false);
        assert_eq!(
            reject(&f.verifier, &f.weir_token_with_header(&h)),
            ApiAuthError::CritHeader
        );
        let key = f.idp(Algorithm::ES256);
        let h = json!({"alg": "ES256", "kid": key.kid, "crit": crit});
        assert_eq!(
            reject(&f.verifier, &external_raw(key, &h, &idp_claims())),
            ApiAuthError::CritHeader
        );
    }
}

#[test]
fn key_bearing_header() {
    let f = fixture();
    for (name, value) in [
        ("jwk", f.idp(Algorithm::EdDSA).jwk.clone()),
        ("jku", json!("https://evil.example/jwks")),
        ("x5u", json!("https://evil.example/cert")),
        ("x5c", json!(["AAAA"])),
        ("zip", json!("DEF")),
    ] {
        let mut h = f.header();
        h[name] = value;
        assert_eq!(
            reject(&f.verifier, &f.weir_token_with_header(&h)),
            ApiAuthError::UnsupportedHeader,
            "{name}"
        );
    }
    // Certificate thumbprints are hints some providers add: tolerated.
    let key = f.idp(Algorithm::RS256);
    let h = json!({"alg": "RS256", "kid": key.kid, "typ": "JWT", "x5t": "abc"});
    assert!(
        f.verifier
            .verify(&external_raw(key, &h, &idp_claims()))
            .is_ok()
    );
}

#[test]
fn duplicate_claim_keys() {
    let f = fixture();
    let body = weir_claims().to_string();
    let inner = body.trim_start_matches('{');
    let h = f.header().to_string();
    for payload in [
        format!("{{\"roles\":[\"admin\"],{inner}"),
        format!("{{\"exp\":{},{inner}", NOW + 86_400 * 365),
        format!("{{\"s\\u0075b\":\"root\",{inner}"),
    ] {
        let token = hs256_raw(&h, &payload, &f.secret);
        assert_eq!(
            reject(&f.verifier, &token),
            ApiAuthError::DuplicateKey,
            "{payload}"
        );
    }
    let dup_header = format!(r#"{{"alg":"none","alg":"HS256","kid":"{}"}}"#, f.kid);
    let token = hs256_raw(&dup_header, &body, &f.secret);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::DuplicateKey);
}

#[test]
fn stage_token_as_api_token() {
    let f = fixture();
    let stage_keys = StageKeySet::open(f.state.path(), NOW).unwrap();
    let stage_kid = stage_keys.active_kid().as_str().to_owned();
    let pem = std::fs::read_to_string(stage_keys.dir().join(format!("{stage_kid}.pem"))).unwrap();
    let stage_signing = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let stage_key = IdpKey {
        kid: "unused",
        alg: Algorithm::EdDSA,
        header_alg: "EdDSA",
        encoding: EncodingKey::from_ed_der(
            ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&stage_signing)
                .unwrap()
                .as_bytes(),
        ),
        jwk: Value::Null,
        public_pem: String::new(),
    };
    let stage_claims = json!({
        "iss": IDP_ISS, "aud": IDP_AUD, "sub": "svc-train",
        "run": "run-1", "stage": "prepare", "attempt": 1,
        "scope": [{"store": "lake", "path": "raw/train", "kind": "prefix", "actions": ["read"]}],
        "iat": NOW, "nbf": NOW, "exp": NOW + 600,
        "jti": "01J00000000000000000000JTI", "typ": "weir/stage",
    });
    let header = json!({"typ": "JWT", "alg": "EdDSA", "kid": stage_kid});
    let token = external_raw(&stage_key, &header, &stage_claims);

    // 1. The API verifier does not know the stage key.
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::UnknownKid);
    // 2. Even if an operator lists weir's stage keys as an identity provider
    //    with a matching issuer and audience, a stage token is refused by type.
    let confused = ApiVerifier::new(&f.keys, config())
        .with_clock(f.clock.clone())
        .with_external_jwks(&stage_keys.public_jwks(), IDP_ISS, IDP_AUD)
        .unwrap();
    assert_eq!(reject(&confused, &token), ApiAuthError::WrongType);
    // 3. A token with the stage type under weir's own API key.
    let mut c = weir_claims();
    c["typ"] = json!("weir/stage");
    assert_eq!(
        reject(&f.verifier, &f.weir_token(&c)),
        ApiAuthError::WrongType
    );
    let token = f.weir_token(&stage_claims);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::WrongType);
}

#[test]
fn api_token_as_stage_token() {
    let f = fixture();
    let stage_keys = StageKeySet::open(f.state.path(), NOW).unwrap();
    let stage = stage_keys.verifier(weir_auth::VerifierConfig::new(ISS, AUD));
    let (token, _, _) = f.mint(&[Role::Admin]);
    let err = stage.verify(&token, NOW).unwrap_err();
    assert!(matches!(err, Error::UnknownKid { .. }), "{err}");
    assert!(!err.to_string().contains(&token));
    // Under a kid the stage verifier trusts, the HS256 header is refused.
    let h = json!({"typ": "JWT", "alg": "HS256", "kid": stage_keys.active_kid().as_str()});
    let token = hs256(&h, &weir_claims(), &f.secret);
    assert!(matches!(
        stage.verify(&token, NOW),
        Err(Error::AlgorithmMismatch)
    ));
    // Signed with the real stage key but typed as an API token.
    let kid = stage_keys.active_kid().as_str().to_owned();
    let pem = std::fs::read_to_string(stage_keys.dir().join(format!("{kid}.pem"))).unwrap();
    let signing = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&signing).unwrap();
    let key = IdpKey {
        kid: "unused",
        alg: Algorithm::EdDSA,
        header_alg: "EdDSA",
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        jwk: Value::Null,
        public_pem: String::new(),
    };
    let h = json!({"typ": "JWT", "alg": "EdDSA", "kid": kid});
    let token = external_raw(&key, &h, &weir_claims());
    assert!(matches!(
        stage.verify(&token, NOW),
        Err(Error::WrongTokenType)
    ));
    let _: &StageVerifier = &stage;
}

#[test]
fn revoked_while_cached() {
    let f = fixture();
    let list = Arc::new(InMemoryRevocationList::new());
    let shared: Arc<dyn RevocationList> = list.clone();
    let cached = ApiVerifier::new(&f.keys, config())
        .with_clock(f.clock.clone())
        .with_revocation(shared.clone())
        .with_cache(64);
    let uncached = ApiVerifier::new(&f.keys, config())
        .with_clock(f.clock.clone())
        .with_revocation(shared)
        .without_cache();
    let (token, jti, exp) = f.mint(&[Role::Engineer]);
    let (other, _, _) = f.mint(&[Role::Engineer]);
    assert!(cached.verify(&token).is_ok());
    assert!(cached.verify(&other).is_ok());
    assert_eq!(cached.cache_len(), Some(2), "both cached");
    cached.revoke(&jti, exp).unwrap();
    assert!(list.is_revoked(&jti));
    assert_eq!(cached.cache_len(), Some(2), "the entry is still cached");
    assert_eq!(reject(&cached, &token), ApiAuthError::Revoked);
    assert_eq!(reject(&uncached, &token), ApiAuthError::Revoked);
    assert!(cached.verify(&other).is_ok(), "other tokens unaffected");
    // The revocation outlives the token's acceptance window.
    assert_eq!(list.purge_expired(exp + LEEWAY), 0);
    // External tokens with a jti are revocable too.
    let mut c = idp_claims();
    c["jti"] = json!("idp-1");
    let ext = external(f.idp(Algorithm::EdDSA), &c);
    let cached = cached
        .with_external_jwks(&idp_jwks(&f.idp), IDP_ISS, IDP_AUD)
        .unwrap();
    assert!(cached.verify(&ext).is_ok());
    cached.revoke("idp-1", NOW + 600).unwrap();
    assert_eq!(reject(&cached, &ext), ApiAuthError::Revoked);
}

#[test]
fn cached_entry_never_outlives_exp() {
    let f = fixture();
    // Zero leeway: at exp the token is expired, whatever the cache holds.
    let strict = ApiVerifier::new(&f.keys, config().with_leeway(Duration::ZERO).unwrap())
        .with_clock(f.clock.clone());
    let (token, _, exp) = f.mint(&[Role::Engineer]);
    assert!(strict.verify(&token).is_ok());
    f.clock.set(exp - 1);
    assert!(strict.verify(&token).is_ok(), "cache hit");
    assert_eq!(strict.cache_len(), Some(1));
    // The controlled clock jumps to exp; moka's wall-clock timer has not fired.
    f.clock.set(exp);
    assert_eq!(reject(&strict, &token), ApiAuthError::Expired);
    assert_eq!(strict.cache_len(), Some(0), "entry dropped");

    // Default leeway: within it a full verification still accepts, but the
    // cache never serves the token at or after exp, nor re-caches it.
    f.clock.set(NOW);
    let (token, _, exp) = f.mint(&[Role::Engineer]);
    assert!(f.verifier.verify(&token).is_ok());
    assert_eq!(f.verifier.cache_len(), Some(1));
    f.clock.set(exp);
    assert!(
        f.verifier.verify(&token).is_ok(),
        "within leeway, verified in full"
    );
    assert_eq!(f.verifier.cache_len(), Some(0), "not served or re-cached");
    f.clock.set(exp + LEEWAY);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::Expired);
}

#[test]
fn clock_set_back_while_cached() {
    let f = fixture();
    let (token, _, _) = f.mint(&[Role::Engineer]);
    assert!(f.verifier.verify(&token).is_ok());
    assert_eq!(f.verifier.cache_len(), Some(1));
    // A hit passes the same time checks as a full verification.
    f.clock.set(NOW - 3_600);
    assert_eq!(reject(&f.verifier, &token), ApiAuthError::IssuedInFuture);
    assert_eq!(f.verifier.cache_len(), Some(1), "refused from the cache");
}

#[test]
fn shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ApiVerifier>();
    send_sync::<ApiKeySet>();
    send_sync::<ApiMinter>();
    send_sync::<weir_auth::Identity>();
    send_sync::<ApiAuthError>();
    let f = fixture();
    let (token, _, _) = f.mint(&[Role::Worker]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert!(f.verifier.verify(&token).is_ok());
                }
            });
        }
    });
}

#[test]
fn config_limits() {
    assert!(config().with_leeway(Duration::from_secs(31)).is_err());
    assert_eq!(
        config()
            .with_leeway(Duration::from_secs(30))
            .unwrap()
            .leeway(),
        Duration::from_secs(30)
    );
    assert_eq!(config().leeway(), Duration::from_secs(10));
    assert!(config().with_max_lifetime(Duration::ZERO).is_err());
    assert!(
        config()
            .with_max_lifetime(Duration::from_secs(30 * 86_400 + 1))
            .is_err()
    );
    let f = fixture();
    let short = ApiVerifier::new(
        &f.keys,
        config().with_max_lifetime(Duration::from_secs(60)).unwrap(),
    )
    .with_clock(f.clock.clone());
    let (token, _, _) = f.mint(&[Role::Admin]);
    assert_eq!(reject(&short, &token), ApiAuthError::LifetimeTooLong);
}

#[test]
fn key_file_with_wider_permissions_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let path = f.state.path().join("keys/api").join(API_KEYS_FILE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = ApiKeySet::load_or_create(f.state.path()).unwrap_err();
    assert!(matches!(err, Error::InsecurePermissions { .. }), "{err}");
    assert!(!err.to_string().contains(&b64(&f.secret)));
}

#[test]
fn debug_never_shows_token_or_secret() {
    let f = fixture();
    let minted = f.minter.mint("alice", &[Role::Admin], TTL).unwrap();
    let token = minted.token.expose().to_owned();
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let who = f.verifier.verify(&token).unwrap();
    let err = reject(&f.verifier, &format!("{token}x"));
    let kid = Kid::parse(&f.kid).unwrap();
    let shown = [
        format!("{:?}", f.keys),
        format!("{:?}", f.minter),
        format!("{minted:?}"),
        format!("{}", minted.token),
        format!("{:?}", minted.claims),
        format!("{:?}", f.verifier),
        format!("{:?}", f.verifier.config()),
        format!("{who:?}"),
        format!("{err:?} {err}"),
        format!("{:?} {}", Role::Admin, Role::Admin),
        format!("{kid:?}"),
    ];
    let secret_b64 = b64(&f.secret);
    let secret_std = base64::engine::general_purpose::STANDARD.encode(&f.secret);
    let secret_list = format!("{:?}", f.secret);
    let secret_hex: String = f.secret.iter().map(|b| format!("{b:02x}")).collect();
    for out in &shown {
        for needle in [
            &token,
            &signature,
            &secret_b64,
            &secret_std,
            &secret_list,
            &secret_hex,
        ] {
            assert!(!out.contains(needle.as_str()), "leak in {out}");
        }
    }
    assert!(shown[2].contains("***"), "token redacted: {}", shown[2]);
    assert!(shown[0].contains(&f.kid), "key ids are shown");
}

impl Fixture {
    fn weir_token_with_header(&self, header: &Value) -> String {
        hs256(header, &weir_claims(), &self.secret)
    }
}

// ----------------------------------------------------------------- proptest

fn fuzz_verifier() -> (Fixture, ApiVerifier) {
    let f = fixture();
    let v = ApiVerifier::new(&f.keys, config())
        .with_clock(f.clock.clone())
        .with_external_jwks(&idp_jwks(&f.idp), IDP_ISS, IDP_AUD)
        .unwrap()
        .with_cache(16);
    (f, v)
}

const CASES: u32 = 512;

#[test]
fn random_bytes_never_panic() {
    let (_f, v) = fuzz_verifier();
    proptest!(ProptestConfig::with_cases(CASES), |(bytes in proptest::collection::vec(any::<u8>(), 0..10_000))| {
        let token = String::from_utf8_lossy(&bytes);
        prop_assert!(v.verify(&token).is_err());
    });
}

#[test]
fn random_three_part_tokens_never_panic() {
    let (_f, v) = fuzz_verifier();
    proptest!(ProptestConfig::with_cases(CASES), |(
        head in "[A-Za-z0-9_-]{0,200}",
        body in "[A-Za-z0-9_-]{0,400}",
        sig in "[A-Za-z0-9_-]{0,400}",
    )| {
        let token = format!("{head}.{body}.{sig}");
        prop_assert!(v.verify(&token).is_err());
    });
}

/// Random but well-formed headers naming real keys, with base64url of
/// random bytes as payload: reaches the signature check.
#[test]
fn random_headers_never_panic() {
    let (f, v) = fuzz_verifier();
    let kids = [
        f.kid.clone(),
        "idp-rsa".into(),
        "idp-ec".into(),
        "idp-ed".into(),
    ];
    proptest!(ProptestConfig::with_cases(CASES), |(
        kid in 0..4usize,
        alg in prop_oneof![
            Just("HS256".to_owned()), Just("RS256".to_owned()), Just("ES256".to_owned()),
            Just("EdDSA".to_owned()), Just("none".to_owned()), ".{0,8}",
        ],
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        sig in proptest::collection::vec(any::<u8>(), 0..600),
    )| {
        let h = json!({"alg": alg, "kid": kids[kid]});
        let token = format!("{}.{}.{}", b64(h.to_string().as_bytes()), b64(&payload), b64(&sig));
        prop_assert!(v.verify(&token).is_err());
    });
}

/// Random JSON payloads with real weir signatures: reaches the claim
/// checks, which must not panic.
#[test]
fn signed_random_payloads_never_panic() {
    let (f, v) = fuzz_verifier();
    let names = prop_oneof![
        Just("iss".to_owned()),
        Just("aud".to_owned()),
        Just("sub".to_owned()),
        Just("exp".to_owned()),
        Just("iat".to_owned()),
        Just("nbf".to_owned()),
        Just("roles".to_owned()),
        Just("jti".to_owned()),
        Just("typ".to_owned()),
        "[a-z]{1,4}",
    ];
    let values = prop_oneof![
        any::<i64>().prop_map(Value::from),
        (NOW - 100..NOW + 100).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        Just(json!(["admin", 1, null])),
        Just(json!(["admin"])),
        Just(json!("weir/api")),
        Just(json!(ISS)),
        Just(json!(AUD)),
        Just(Value::Null),
    ];
    proptest!(ProptestConfig::with_cases(CASES), |(
        payload in proptest::collection::btree_map(names, values, 0..10),
    )| {
        let payload = Value::Object(payload.into_iter().collect());
        // Must not panic; may succeed if the random claims happen to be valid.
        let _ = v.verify(&f.weir_token(&payload));
    });
}

#[test]
fn external_keys_are_replaced_whole_and_a_dropped_key_stops_verifying_at_once() {
    let f = fixture();
    let rsa = external(f.idp(Algorithm::RS256), &idp_claims());
    let ed = external(f.idp(Algorithm::EdDSA), &idp_claims());
    assert!(f.verifier.verify(&rsa).is_ok(), "verified and cached");
    let only_ed = json!({"keys": [f.idp(Algorithm::EdDSA).jwk.clone()]});
    assert!(f.verifier.replace_external_jwks(&only_ed, IDP_ISS).unwrap());
    assert_eq!(
        f.verifier.verify(&rsa).unwrap_err(),
        ApiAuthError::UnknownKid,
        "not served from the cache"
    );
    assert!(f.verifier.verify(&ed).is_ok());
    assert!(!f.verifier.replace_external_jwks(&only_ed, IDP_ISS).unwrap());
    // Refused documents leave the keys in use unchanged.
    let mut clash = f.idp(Algorithm::EdDSA).jwk.clone();
    clash["kid"] = json!(f.kid);
    for bad in [json!({"keys": []}), json!({"keys": [clash]}), json!([])] {
        assert!(f.verifier.replace_external_jwks(&bad, IDP_ISS).is_err());
        assert!(f.verifier.verify(&ed).is_ok());
    }
    let unknown = f
        .verifier
        .replace_external_jwks(&only_ed, "https://other.example/");
    assert!(matches!(unknown, Err(Error::InvalidConfig { .. })));
    assert_eq!(f.verifier.external_issuers(), [IDP_ISS]);
}

#[test]
fn a_rotated_api_key_set_is_swapped_into_a_running_verifier() {
    let f = fixture();
    let (old, _, _) = f.mint(&[Role::Engineer]);
    let mut rotated = ApiKeySet::read_at(f.state.path(), NOW).unwrap();
    let new_kid = rotated.rotate_at(f.state.path(), NOW).unwrap();
    let new = rotated
        .minter(ISS, AUD)
        .with_clock(f.clock.clone())
        .mint("bob", &[Role::Engineer], TTL)
        .unwrap();
    assert_eq!(
        f.verifier.verify(new.token.expose()).unwrap_err(),
        ApiAuthError::UnknownKid
    );
    let on_disk = ApiKeySet::read_at(f.state.path(), NOW).unwrap();
    assert_eq!(on_disk.active_kid(), &new_kid);
    assert!(f.verifier.reload_api_keys(&on_disk).unwrap());
    assert!(!f.verifier.reload_api_keys(&on_disk).unwrap(), "unchanged");
    assert_eq!(f.verifier.verify(new.token.expose()).unwrap().sub, "bob");
    assert!(f.verifier.verify(&old).is_ok(), "the previous key verifies");
    assert!(
        f.verifier
            .verify(&external(f.idp(Algorithm::EdDSA), &idp_claims()))
            .is_ok(),
        "external keys kept"
    );
}

#[test]
fn reading_api_keys_never_creates_them() {
    let state = tempfile::tempdir().unwrap();
    assert!(ApiKeySet::read_at(state.path(), NOW).is_err());
    assert!(!state.path().join("keys/api").join(API_KEYS_FILE).exists());
}
