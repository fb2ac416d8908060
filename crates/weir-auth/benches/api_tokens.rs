//! API-token throughput: mint, verify (full HS256), verify (cache hit),
//! SHA-256 of the token alone (the floor of a cache hit), and full
//! verification of external RS256, ES256 and EdDSA tokens (test-only keys
//! from `tests/fixtures/`).
//!
//! `cargo bench -p weir-auth --bench api_tokens -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};
use weir_auth::{ApiKeySet, ApiVerifier, ApiVerifierConfig, FixedClock, Role};

const NOW: i64 = 1_700_000_000;

fn api_tokens(c: &mut Criterion) {
    let state = tempfile::tempdir().expect("tempdir");
    let keys = ApiKeySet::load_or_create_at(state.path(), NOW).expect("key set");
    let clock = Arc::new(FixedClock::new(NOW));
    let minter = keys.minter("weir", "weir-api").with_clock(clock.clone());
    let token = minter
        .mint(
            "alice@example.com",
            &[Role::Engineer],
            Duration::from_secs(3600),
        )
        .expect("mint")
        .token;
    let config = ApiVerifierConfig::new("weir", "weir-api");
    let uncached = ApiVerifier::new(&keys, config.clone())
        .with_clock(clock.clone())
        .without_cache();
    let cached = ApiVerifier::new(&keys, config).with_clock(clock);
    cached.verify(token.expose()).expect("warm cache");

    let mut group = c.benchmark_group("api_token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mint", |b| {
        b.iter(|| {
            minter
                .mint(
                    black_box("alice"),
                    &[Role::Engineer],
                    Duration::from_secs(3600),
                )
                .expect("mint")
        })
    });
    group.bench_function("sha256_of_token", |b| {
        b.iter(|| Sha256::digest(black_box(token.expose()).as_bytes()))
    });
    group.bench_function("verify_uncached", |b| {
        b.iter(|| uncached.verify(black_box(token.expose())).expect("verify"))
    });
    group.bench_function("verify_cached", |b| {
        b.iter(|| cached.verify(black_box(token.expose())).expect("verify"))
    });
    for (alg, stem) in [
        (Algorithm::RS256, "rs256"),
        (Algorithm::ES256, "es256"),
        (Algorithm::EdDSA, "eddsa"),
    ] {
        let (verifier, token) = external(&keys, alg, stem);
        group.bench_function(format!("verify_uncached_external_{stem}"), |b| {
            b.iter(|| verifier.verify(black_box(&token)).expect("verify"))
        });
    }
    group.finish();
}

/// An uncached verifier trusting one test-only IdP key, and a token it signed.
fn external(keys: &ApiKeySet, alg: Algorithm, stem: &str) -> (ApiVerifier, String) {
    let path = format!(
        "{}/tests/fixtures/idp-{stem}.test-key.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let pem = std::fs::read(path).expect("fixture");
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .expect("key");
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&key, alg).expect("jwk")).expect("json");
    jwk["kid"] = json!("idp");
    let verifier = ApiVerifier::new(keys, ApiVerifierConfig::new("weir", "weir-api"))
        .with_clock(Arc::new(FixedClock::new(NOW)))
        .with_external_jwks(
            &json!({ "keys": [jwk] }),
            "https://idp.example.com/",
            "weir",
        )
        .expect("jwks")
        .without_cache();
    let mut header = Header::new(alg);
    header.kid = Some("idp".into());
    let claims = json!({"iss": "https://idp.example.com/", "aud": "weir", "sub": "bob",
                        "roles": ["engineer"], "iat": NOW, "exp": NOW + 3600});
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    (verifier, token)
}

// The macro defines an undocumented `pub fn`; keep it in a private module.
#[allow(missing_docs, unreachable_pub)]
mod entry {
    criterion::criterion_group!(benches, super::api_tokens);
}

criterion_main!(entry::benches);
