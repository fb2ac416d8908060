//! Hostile stage tokens, one test per attack, each named after it.
//!
//! Tokens jsonwebtoken would refuse to produce are crafted by hand
//! (base64url header . payload . signature), signed where it matters with the
//! real active private key read from the key directory, so that each test
//! reaches the check it is about rather than failing on the signature.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tempfile::TempDir;
use weir_auth::{
    Action, ActionSet, DEFAULT_MAX_LIFETIME, Error, FixedClock, InMemoryRevocationList,
    MAX_TOKEN_BYTES, MintRequest, Minter, PathKind, RevocationList, Scope, ScopeEntry, ScopePath,
    StageKeySet, StageVerifier, VerifierConfig,
};

const NOW: i64 = 1_700_000_000;
const ISS: &str = "weir";
const AUD: &str = "weir-worker";

struct Fixture {
    _state: TempDir,
    minter: Minter,
    verifier: StageVerifier,
    /// The real active private key, read back from its 0600 file.
    signing: SigningKey,
    kid: String,
}

fn fixture() -> Fixture {
    let state = tempfile::tempdir().unwrap();
    let keys = StageKeySet::open(state.path(), NOW).unwrap();
    let kid = keys.active_kid().as_str().to_owned();
    let pem = std::fs::read_to_string(keys.dir().join(format!("{kid}.pem"))).unwrap();
    let signing = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let minter = Minter::new(keys, ISS, AUD, DEFAULT_MAX_LIFETIME)
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(NOW)));
    let verifier = minter.verifier();
    Fixture {
        _state: state,
        minter,
        verifier,
        signing,
        kid,
    }
}

fn scope() -> Scope {
    Scope::new(vec![ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse("raw/train").unwrap(),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(Action::Read).with(Action::List),
        columns: None,
    }])
    .unwrap()
}

fn request(ttl: Duration) -> MintRequest {
    MintRequest {
        principal: "svc-train".into(),
        run: "01J0000000000000000000RUN1".into(),
        stage: "prepare".into(),
        attempt: 1,
        scope: scope(),
        ttl,
    }
}

/// Valid stage claims as JSON, for editing.
fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "svc-train",
        "run": "run-1", "stage": "prepare", "attempt": 1,
        "scope": [{"store": "lake", "path": "raw/train", "kind": "prefix", "actions": ["read"]}],
        "iat": NOW, "nbf": NOW, "exp": NOW + 600,
        "jti": "01J00000000000000000000JTI", "typ": "weir/stage",
    })
}

fn header(f: &Fixture) -> Value {
    json!({"typ": "JWT", "alg": "EdDSA", "kid": f.kid})
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature` from raw JSON texts, Ed25519-signed by `key`.
fn craft_raw(header: &str, payload: &str, key: &SigningKey) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

fn craft(header: &Value, payload: &Value, key: &SigningKey) -> String {
    craft_raw(&header.to_string(), &payload.to_string(), key)
}

/// Verifies `token`, expects failure, and checks that neither the error's
/// Display nor its Debug contains the token or its signature.
fn reject(verifier: &StageVerifier, token: &str, now: i64) -> Error {
    let err = verifier
        .verify(token, now)
        .expect_err("hostile token accepted");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(token), "error leaks the token: {shown}");
    if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() >= 8) {
        assert!(!shown.contains(sig), "error leaks the signature: {shown}");
    }
    err
}

#[test]
fn round_trip_through_real_dependency_graph() {
    let f = fixture();
    let minted = f.minter.mint(request(Duration::from_secs(600))).unwrap();
    let token = minted.token.expose();
    // Minted by jsonwebtoken (rust_crypto provider), verified by our checks
    // plus jsonwebtoken's EdDSA verifier.
    let claims = f.verifier.verify(token, NOW).unwrap();
    assert_eq!(claims, minted.claims);
    assert_eq!(claims.exp, NOW + 600);
    let file = ScopePath::parse("raw/train/part-0.parquet").unwrap();
    assert!(claims.scope.allows("lake", &file, Action::Read).is_some());
    assert!(
        claims
            .scope
            .allows(
                "lake",
                &ScopePath::parse("raw/training").unwrap(),
                Action::Read
            )
            .is_none()
    );

    // jsonwebtoken's own decode path accepts it with the JWKS key.
    let jwks = f.minter.keys().public_jwks();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let key = jsonwebtoken::DecodingKey::from_ed_components(x).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.set_audience(&[AUD]);
    let decoded = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
    assert_eq!(decoded.claims["typ"], "weir/stage");
    assert_eq!(decoded.header.kid.as_deref(), Some(f.kid.as_str()));

    // A worker's verifier built from the JWKS only, uncached.
    let worker = StageVerifier::from_jwks(&jwks, f.minter.verifier_config())
        .unwrap()
        .without_cache();
    assert_eq!(worker.verify(token, NOW + 1).unwrap(), minted.claims);

    // Cached: a second verify returns the same claims.
    assert_eq!(f.verifier.verify(token, NOW + 2).unwrap(), minted.claims);
    assert_eq!(f.verifier.cache().unwrap().len(), 1);
}

#[test]
fn tokens_survive_rotation_until_retention_ends() {
    let mut f = fixture();
    let before = f.minter.mint(request(Duration::from_secs(600))).unwrap();
    f.minter.rotate().unwrap();
    let after = f.minter.mint(request(Duration::from_secs(600))).unwrap();
    let jwks = f.minter.keys().public_jwks();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let v = StageVerifier::from_jwks(&jwks, f.minter.verifier_config()).unwrap();
    assert!(v.verify(before.token.expose(), NOW).is_ok());
    assert!(v.verify(after.token.expose(), NOW).is_ok());
    // The old verifier does not know the new key.
    let err = reject(&f.verifier, after.token.expose(), NOW);
    assert!(matches!(err, Error::UnknownKid { .. }), "{err}");
}

#[test]
fn alg_none_every_letter_case() {
    let f = fixture();
    let payload = b64(claims().to_string().as_bytes());
    for mask in 0u8..16 {
        let alg: String = "none"
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if mask & (1 << i) != 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        for with_kid in [true, false] {
            let mut h = json!({"typ": "JWT", "alg": alg});
            if with_kid {
                h["kid"] = json!(f.kid);
            }
            let head = b64(h.to_string().as_bytes());
            // Unsigned, as `none` tokens are.
            reject(&f.verifier, &format!("{head}.{payload}."), NOW);
            // With a real EdDSA signature over the input: still refused.
            let signed = craft(&h, &claims(), &f.signing);
            let err = reject(&f.verifier, &signed, NOW);
            if with_kid {
                assert!(matches!(err, Error::AlgorithmMismatch), "{alg}: {err}");
            } else {
                assert!(matches!(err, Error::MissingKid), "{alg}: {err}");
            }
        }
    }
}

#[test]
fn hs256_signed_with_public_key() {
    let f = fixture();
    let jwks = f.minter.keys().public_jwks();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let raw = f.signing.verifying_key().to_bytes();
    let secrets: [&[u8]; 3] = [&raw, x.as_bytes(), &jwks.to_string().into_bytes()];
    for alg in ["HS256", "HS384", "HS512", "hs256"] {
        for secret in secrets {
            let h = json!({"typ": "JWT", "alg": alg, "kid": f.kid});
            let input = format!(
                "{}.{}",
                b64(h.to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
            let err = reject(&f.verifier, &token, NOW);
            assert!(matches!(err, Error::AlgorithmMismatch), "{alg}: {err}");
        }
    }
}

#[test]
fn kid_path_traversal() {
    let f = fixture();
    for kid in [
        "../../etc/passwd",
        "../keyset.json",
        "..%2f..%2fkeys",
        "/etc/passwd",
        "stage/../x",
        "C:\\keys\\x",
        "kid\0",
        "",
        "http://evil.example/jwks",
    ] {
        let h = json!({"typ": "JWT", "alg": "EdDSA", "kid": kid});
        let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
        assert!(matches!(err, Error::InvalidKid), "{kid:?}: {err}");
    }
    // A well-formed kid naming a file that exists in the key directory is
    // still just unknown: kids are looked up in memory, never on disk.
    let h = json!({"typ": "JWT", "alg": "EdDSA", "kid": "keyset"});
    let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
    assert!(matches!(err, Error::UnknownKid { .. }), "{err}");
}

#[test]
fn unknown_kid() {
    let f = fixture();
    let h = json!({"typ": "JWT", "alg": "EdDSA", "kid": "not-a-known-key"});
    let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
    assert!(
        matches!(&err, Error::UnknownKid { kid } if kid == "not-a-known-key"),
        "{err}"
    );
    let h = json!({"typ": "JWT", "alg": "EdDSA"});
    let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
    assert!(matches!(err, Error::MissingKid), "{err}");
}

#[test]
fn kid_10kb() {
    let f = fixture();
    let h = json!({"typ": "JWT", "alg": "EdDSA", "kid": "a".repeat(10 * 1024)});
    let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
    assert!(matches!(err, Error::TokenTooLarge { .. }), "{err}");
    // Small enough to pass the size cap: refused by kid validation.
    let h = json!({"typ": "JWT", "alg": "EdDSA", "kid": "a".repeat(2 * 1024)});
    let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
    assert!(matches!(err, Error::InvalidKid), "{err}");
}

#[test]
fn missing_exp() {
    let f = fixture();
    for claim in ["exp", "nbf", "iat", "aud", "iss", "typ", "jti", "scope"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
        assert!(
            matches!(err, Error::MalformedClaims { .. }),
            "{claim}: {err}"
        );
    }
}

#[test]
fn exp_as_string() {
    let f = fixture();
    for exp in [json!((NOW + 600).to_string()), json!(1e10), json!(null)] {
        let mut c = claims();
        c["exp"] = exp;
        let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
        assert!(matches!(err, Error::MalformedClaims { .. }), "{err}");
    }
}

#[test]
fn nbf_as_string() {
    let f = fixture();
    let mut c = claims();
    c["nbf"] = json!(NOW.to_string());
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(matches!(err, Error::MalformedClaims { .. }), "{err}");
}

#[test]
fn nbf_in_future() {
    let f = fixture();
    let mut c = claims();
    c["nbf"] = json!(NOW + 120);
    let token = craft(&header(&f), &c, &f.signing);
    let err = reject(&f.verifier, &token, NOW);
    assert!(matches!(err, Error::NotYetValid), "{err}");
    // Accepted once the time comes (within the leeway).
    assert!(f.verifier.verify(&token, NOW + 115).is_ok());
}

#[test]
fn iat_in_future() {
    let f = fixture();
    let mut c = claims();
    c["iat"] = json!(NOW + 120);
    c["nbf"] = json!(NOW + 120);
    c["exp"] = json!(NOW + 600);
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(matches!(err, Error::IssuedInFuture), "{err}");
}

#[test]
fn lifetime_beyond_max() {
    let f = fixture();
    let mut c = claims();
    c["exp"] = json!(NOW + 86_400 + 1);
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(
        matches!(
            err,
            Error::LifetimeTooLong {
                lifetime: 86_401,
                max: 86_400
            }
        ),
        "{err}"
    );
    // exp before iat is refused too.
    let mut c = claims();
    c["exp"] = json!(NOW - 1);
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(matches!(err, Error::InconsistentTimes), "{err}");
    // The minter caps the lifetime rather than minting such a token.
    let minted = f
        .minter
        .mint(request(Duration::from_secs(7 * 86_400)))
        .unwrap();
    assert_eq!(minted.claims.exp - minted.claims.iat, 86_400);
}

#[test]
fn wrong_aud() {
    let f = fixture();
    for aud in [json!("weir-server"), json!([AUD]), json!("")] {
        let mut c = claims();
        c["aud"] = aud;
        let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
        assert!(
            matches!(err, Error::WrongAudience | Error::MalformedClaims { .. }),
            "{err}"
        );
    }
    let other = f
        .minter
        .keys()
        .verifier(VerifierConfig::new(ISS, "someone-else"));
    let minted = f.minter.mint(request(Duration::from_secs(60))).unwrap();
    let err = reject(&other, minted.token.expose(), NOW);
    assert!(matches!(err, Error::WrongAudience), "{err}");
}

#[test]
fn wrong_iss() {
    let f = fixture();
    let mut c = claims();
    c["iss"] = json!("mallory");
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(matches!(err, Error::WrongIssuer), "{err}");
}

#[test]
fn api_token_as_stage_token() {
    let f = fixture();
    // Same shape, other kind.
    let mut c = claims();
    c["typ"] = json!("weir/api");
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(matches!(err, Error::WrongTokenType), "{err}");
    // An API-token-shaped payload.
    let api = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "role": "admin",
        "iat": NOW, "nbf": NOW, "exp": NOW + 600, "jti": "x", "typ": "weir/api",
    });
    let err = reject(&f.verifier, &craft(&header(&f), &api, &f.signing), NOW);
    assert!(matches!(err, Error::WrongTokenType), "{err}");
    // No kind at all.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("typ");
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(matches!(err, Error::MalformedClaims { .. }), "{err}");
}

#[test]
fn crit_header() {
    let f = fixture();
    for crit in [json!(["exp"]), json!([]), json!(["b64"])] {
        let mut h = header(&f);
        h["crit"] = crit;
        h["b64"] = json!(false);
        let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
        assert!(matches!(err, Error::CriticalHeader), "{err}");
    }
    // Key-bearing header parameters are refused: keys never come from the token.
    for (name, value) in [
        ("jwk", json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"})),
        ("jku", json!("https://evil.example/jwks")),
        ("x5u", json!("https://evil.example/cert")),
        ("x5c", json!(["AAAA"])),
    ] {
        let mut h = header(&f);
        h[name] = value;
        let err = reject(&f.verifier, &craft(&h, &claims(), &f.signing), NOW);
        assert!(matches!(err, Error::UnsupportedHeader), "{name}: {err}");
    }
}

#[test]
fn oversized_token() {
    let f = fixture();
    // Validly signed, but too big: refused on length alone.
    let mut c = claims();
    c["pad"] = json!("p".repeat(MAX_TOKEN_BYTES));
    let token = craft(&header(&f), &c, &f.signing);
    let err = reject(&f.verifier, &token, NOW);
    assert!(
        matches!(err, Error::TokenTooLarge { len, max } if len == token.len() && max == MAX_TOKEN_BYTES),
        "{err}"
    );
    // Junk of any size is refused before any decoding.
    let junk = "!".repeat(1024 * 1024);
    assert!(matches!(
        reject(&f.verifier, &junk, NOW),
        Error::TokenTooLarge { .. }
    ));
    let junk = "!".repeat(MAX_TOKEN_BYTES);
    assert!(matches!(
        reject(&f.verifier, &junk, NOW),
        Error::MalformedToken { .. }
    ));
}

#[test]
fn duplicate_claim_keys() {
    let f = fixture();
    let h = header(&f).to_string();
    let body = claims().to_string();
    let inner = body.trim_start_matches('{');
    for payload in [
        // A second exp, later in the object: a lenient parser keeps the last.
        format!("{{\"exp\":{},{inner}", NOW + 86_400 * 365),
        format!("{{\"typ\":\"weir/api\",{inner}"),
        // The same key spelled with an escape.
        format!("{{\"e\\u0078p\":{},{inner}", NOW + 1),
        // Nested, inside a scope entry.
        body.replace(
            "\"store\":\"lake\"",
            "\"store\":\"lake\",\"store\":\"other\"",
        ),
    ] {
        let err = reject(&f.verifier, &craft_raw(&h, &payload, &f.signing), NOW);
        assert!(
            matches!(err, Error::DuplicateKey { part: "payload" }),
            "{payload}: {err}"
        );
    }
    let dup_header = format!(r#"{{"alg":"none","alg":"EdDSA","kid":"{}"}}"#, f.kid);
    let err = reject(&f.verifier, &craft_raw(&dup_header, &body, &f.signing), NOW);
    assert!(
        matches!(err, Error::DuplicateKey { part: "header" }),
        "{err}"
    );
}

#[test]
fn tampered_payload() {
    let f = fixture();
    let minted = f.minter.mint(request(Duration::from_secs(600))).unwrap();
    let token = minted.token.expose();
    let mut parts = token.split('.');
    let (head, _, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // Widen the scope and swap in the edited payload, keeping the signature.
    let mut c = serde_json::to_value(&minted.claims).unwrap();
    c["scope"][0]["path"] = json!("raw");
    c["scope"][0]["actions"] = json!(["delete", "list", "read", "write"]);
    let forged = format!("{head}.{}.{sig}", b64(c.to_string().as_bytes()));
    let err = reject(&f.verifier, &forged, NOW);
    assert!(matches!(err, Error::BadSignature), "{err}");
    // One flipped signature character.
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.len() - 2;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    let err = reject(&f.verifier, &flipped, NOW);
    assert!(matches!(err, Error::BadSignature), "{err}");
    // Signature dropped or truncated.
    let cut = &token[..token.len() - 10];
    reject(&f.verifier, cut, NOW);
    reject(
        &f.verifier,
        &format!("{head}.{}.", token.split('.').nth(1).unwrap()),
        NOW,
    );
}

#[test]
fn unknown_signing_key() {
    let f = fixture();
    // The attacker's own key, claiming to be ours.
    let other_state = tempfile::tempdir().unwrap();
    let other = StageKeySet::open(other_state.path(), NOW).unwrap();
    let pem =
        std::fs::read_to_string(other.dir().join(format!("{}.pem", other.active_kid()))).unwrap();
    let attacker = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let err = reject(&f.verifier, &craft(&header(&f), &claims(), &attacker), NOW);
    assert!(matches!(err, Error::BadSignature), "{err}");
    // And under its own kid, which we do not trust.
    let h = json!({"typ": "JWT", "alg": "EdDSA", "kid": other.active_kid().as_str()});
    let err = reject(&f.verifier, &craft(&h, &claims(), &attacker), NOW);
    assert!(matches!(err, Error::UnknownKid { .. }), "{err}");
}

#[test]
fn expired() {
    let f = fixture();
    let minted = f.minter.mint(request(Duration::from_secs(60))).unwrap();
    let token = minted.token.expose();
    let leeway = 10;
    assert!(
        f.verifier.verify(token, NOW + 30).is_ok(),
        "fresh, now cached"
    );
    // Past exp but within leeway: accepted by a full verify, not from cache.
    assert!(f.verifier.verify(token, NOW + 60 + leeway - 1).is_ok());
    let err = reject(&f.verifier, token, NOW + 60 + leeway);
    assert!(matches!(err, Error::Expired), "{err}");
    let err = reject(&f.verifier, token, NOW + 86_400 * 365);
    assert!(matches!(err, Error::Expired), "{err}");
    assert!(
        f.verifier.cache().unwrap().is_empty(),
        "cache entry outlived exp"
    );
}

#[test]
fn revoked() {
    let f = fixture();
    let list = Arc::new(InMemoryRevocationList::new());
    let shared: Arc<dyn RevocationList> = list.clone();
    let cached = f.minter.verifier().with_revocation(shared.clone());
    let uncached = f.minter.verifier().with_revocation(shared).without_cache();
    let minted = f.minter.mint(request(Duration::from_secs(600))).unwrap();
    let token = minted.token.expose();
    assert!(cached.verify(token, NOW).is_ok());
    assert!(uncached.verify(token, NOW).is_ok());
    cached.revoke(&minted.claims).unwrap();
    assert!(list.is_revoked(&minted.claims.jti));
    let err = reject(&cached, token, NOW + 1);
    assert!(matches!(err, Error::Revoked), "cached path: {err}");
    let err = reject(&uncached, token, NOW + 1);
    assert!(matches!(err, Error::Revoked), "uncached path: {err}");
    // Other tokens are unaffected.
    let other = f.minter.mint(request(Duration::from_secs(600))).unwrap();
    assert!(cached.verify(other.token.expose(), NOW).is_ok());
}

#[test]
fn empty_scope_never_minted() {
    let f = fixture();
    assert!(matches!(
        Scope::new(vec![]),
        Err(Error::InvalidScope { .. })
    ));
    assert!(serde_json::from_str::<Scope>("[]").is_err());
    // A token carrying one, even validly signed, is refused.
    for empty in [json!([]), json!(null), json!({})] {
        let mut c = claims();
        c["scope"] = empty;
        let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
        assert!(matches!(err, Error::MalformedClaims { .. }), "{err}");
    }
    let mut c = claims();
    c["scope"][0]["actions"] = json!([]);
    let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
    assert!(matches!(err, Error::MalformedClaims { .. }), "{err}");
}

#[test]
fn root_scope_never_minted() {
    let f = fixture();
    let root = ScopeEntry {
        store: "lake".into(),
        path: ScopePath::root(),
        kind: PathKind::Prefix,
        actions: ActionSet::all(),
        columns: None,
    };
    assert!(matches!(
        Scope::new(vec![root]),
        Err(Error::InvalidScope { .. })
    ));
    for path in ["", "/", ".", "..", "raw/../..", "%2e%2e"] {
        let mut c = claims();
        c["scope"][0]["path"] = json!(path);
        let err = reject(&f.verifier, &craft(&header(&f), &c, &f.signing), NOW);
        assert!(
            matches!(err, Error::MalformedClaims { .. }),
            "{path:?}: {err}"
        );
    }
}
