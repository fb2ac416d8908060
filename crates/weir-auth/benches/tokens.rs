//! Stage-token throughput: mint, verify (full), verify (cache hit).
//!
//! `cargo bench -p weir-auth -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use weir_auth::{
    Action, ActionSet, DEFAULT_MAX_LIFETIME, FixedClock, MintRequest, Minter, PathKind, Scope,
    ScopeEntry, ScopePath, StageKeySet,
};

const NOW: i64 = 1_700_000_000;

fn request() -> MintRequest {
    let entry = |path: &str, action| ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse(path).expect("valid path"),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(action),
        columns: None,
    };
    MintRequest {
        principal: "svc-train".into(),
        run: "01J0000000000000000000RUN1".into(),
        stage: "prepare".into(),
        attempt: 1,
        scope: Scope::new(vec![
            entry("raw/train", Action::Read),
            entry("raw/validation", Action::Read),
            entry("staging/prepare/out", Action::Write),
        ])
        .expect("valid scope"),
        ttl: Duration::from_secs(3600),
    }
}

fn tokens(c: &mut Criterion) {
    let state = tempfile::tempdir().expect("tempdir");
    let keys = StageKeySet::open(state.path(), NOW).expect("key set");
    let minter = Minter::new(keys, "weir", "weir-worker", DEFAULT_MAX_LIFETIME)
        .expect("minter")
        .with_clock(Arc::new(FixedClock::new(NOW)));
    let token = minter.mint(request()).expect("mint").token;
    let uncached = minter.verifier().without_cache();
    let cached = minter.verifier();
    cached.verify(token.expose(), NOW).expect("warm cache");

    let mut group = c.benchmark_group("stage_token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mint", |b| {
        b.iter(|| minter.mint(black_box(request())).expect("mint"))
    });
    group.bench_function("verify_uncached", |b| {
        b.iter(|| {
            uncached
                .verify(black_box(token.expose()), NOW)
                .expect("verify")
        })
    });
    for n in [16_usize, 64] {
        let batch: Vec<String> = (0..n)
            .map(|_| {
                minter
                    .mint(request())
                    .expect("mint")
                    .token
                    .expose()
                    .to_owned()
            })
            .collect();
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("verify_uncached_batch_{n}"), |b| {
            b.iter(|| {
                let out = uncached.verify_batch(black_box(&refs), NOW);
                assert!(out.iter().all(Result::is_ok));
                out
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_cached", |b| {
        b.iter(|| {
            cached
                .verify(black_box(token.expose()), NOW)
                .expect("verify")
        })
    });
    group.finish();
}

/// The Ed25519 arithmetic alone (ed25519-dalek, no JWT): what a verify or a
/// mint cannot go below, and what decoding a key on every call costs.
fn ed25519_floor(c: &mut Criterion) {
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

    let signing = SigningKey::from_bytes(&[7; 32]);
    let der = signing.to_pkcs8_der().expect("pkcs8");
    let public = signing.verifying_key().to_bytes();
    let verifying = VerifyingKey::from_bytes(&public).expect("public key");
    let message = [b'x'; 400];
    let signature = signing.sign(&message);

    let mut group = c.benchmark_group("ed25519_floor");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify", |b| {
        b.iter(|| {
            verifying
                .verify(black_box(&message), &signature)
                .expect("valid")
        })
    });
    group.bench_function("verify_strict", |b| {
        b.iter(|| {
            verifying
                .verify_strict(black_box(&message), &signature)
                .expect("valid")
        })
    });
    group.bench_function("decode_public_key", |b| {
        b.iter(|| VerifyingKey::from_bytes(black_box(&public)).expect("public key"))
    });
    for n in [16_usize, 64, 256] {
        let messages: Vec<&[u8]> = vec![&message[..]; n];
        let signatures = vec![signature; n];
        let keys = vec![verifying; n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("verify_batch_{n}"), |b| {
            b.iter(|| {
                ed25519_dalek::verify_batch(black_box(&messages), &signatures, &keys)
                    .expect("valid")
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| signing.sign(black_box(&message))));
    group.bench_function("decode_private_key", |b| {
        b.iter(|| SigningKey::from_pkcs8_der(black_box(der.as_bytes())).expect("pkcs8"))
    });
    group.finish();
}

// The macro defines an undocumented `pub fn`; keep it in a private module.
#[allow(missing_docs, unreachable_pub)]
mod entry {
    criterion::criterion_group!(benches, super::tokens, super::ed25519_floor);
}

criterion_main!(entry::benches);
