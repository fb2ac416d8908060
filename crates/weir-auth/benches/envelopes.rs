//! Envelope throughput with a ~1 KiB body: seal; open (MAC, header, times
//! and nonce claim in an [`InMemoryNonces`] at steady state); open without
//! the nonce claim (`open_redelivered`); and the nonce claim alone.
//!
//! `cargo bench -p weir-auth --bench envelopes -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use weir_auth::FixedClock;
use weir_auth::envelope::{
    EnvelopeKeys, EnvelopeType, HmacKeySet, InMemoryNonces, NonceStore, Opener, Sealer,
};

const NOW: i64 = 1_700_000_000;
const TTL: Duration = Duration::from_secs(60);

fn envelopes(c: &mut Criterion) {
    let state = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(FixedClock::new(NOW));
    let keys = Arc::new(EnvelopeKeys::from_set(
        HmacKeySet::open(state.path(), NOW).expect("key set"),
    ));
    let sealer = Sealer::new(keys.clone(), clock.clone());
    // Expired nonces are purged as the clock moves, so the store stays at a
    // steady size (about TTL + leeway entries) however long the bench runs.
    let nonces = Arc::new(InMemoryNonces::new(1_000_000, clock.clone()));
    let opener = Opener::new(keys, clock.clone(), nonces.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let body: Vec<u8> =
        br#"{"run":"01J0000000000000000000RUN1","stage":"prepare","attempt":1,"token":""#
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b'x', 1024 - 80))
            .chain(*br#""}"#)
            .collect();
    let sealed = sealer.seal(EnvelopeType::Task, &body, TTL).expect("seal");

    let mut group = c.benchmark_group("envelope_1k");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal", |b| {
        b.iter(|| {
            sealer
                .seal(EnvelopeType::Task, black_box(&body), TTL)
                .expect("seal")
        })
    });
    group.bench_function("open", |b| {
        b.iter_batched(
            || {
                clock.advance(1);
                sealer.seal(EnvelopeType::Task, &body, TTL).expect("seal")
            },
            |raw| {
                runtime
                    .block_on(opener.open(black_box(&raw), EnvelopeType::Task))
                    .expect("open")
            },
            BatchSize::PerIteration,
        )
    });
    clock.set(NOW);
    group.bench_function("open_redelivered", |b| {
        b.iter(|| {
            runtime
                .block_on(opener.open_redelivered(black_box(&sealed), EnvelopeType::Task))
                .expect("open")
        })
    });
    let mut n = 0u64;
    group.bench_function("nonce_first_use", |b| {
        b.iter(|| {
            n += 1;
            clock.set(NOW + i64::try_from(n / 1000).unwrap_or(0));
            let nonce = format!("nonce-{n:016}-abcdef");
            runtime
                .block_on(nonces.first_use(
                    black_box(&nonce),
                    NOW + i64::try_from(n / 1000).unwrap_or(0) + 70,
                ))
                .expect("claim")
        })
    });
    group.finish();
}

// The macro defines an undocumented `pub fn`; keep it in a private module.
#[allow(missing_docs, unreachable_pub)]
mod entry {
    criterion::criterion_group!(benches, super::envelopes);
}

criterion_main!(entry::benches);
