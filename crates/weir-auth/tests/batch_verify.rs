//! `StageVerifier::verify_batch` answers, token by token, exactly what
//! `verify` answers: good tokens pass, each hostile one fails alone with the
//! same error, whatever else is in the batch.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use weir_auth::{
    Action, ActionSet, DEFAULT_MAX_LIFETIME, FixedClock, MintRequest, Minter, PathKind, Scope,
    ScopeEntry, ScopePath, StageKeySet,
};

const NOW: i64 = 1_700_000_000;

struct Fixture {
    _state: tempfile::TempDir,
    minter: Minter,
    /// The same key, with a clock two hours behind: its tokens have expired.
    past: Minter,
    /// Another key set's minter: its tokens name a kid the verifier lacks.
    stranger: Minter,
    _stranger_state: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let minter_at = |state: &tempfile::TempDir, now: i64| {
        Minter::new(
            StageKeySet::open(state.path(), NOW).unwrap(),
            "weir",
            "weir-worker",
            DEFAULT_MAX_LIFETIME,
        )
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(now)))
    };
    let state = tempfile::tempdir().unwrap();
    let stranger_state = tempfile::tempdir().unwrap();
    Fixture {
        minter: minter_at(&state, NOW),
        past: minter_at(&state, NOW - 7_200),
        stranger: minter_at(&stranger_state, NOW),
        _state: state,
        _stranger_state: stranger_state,
    }
}

fn mint(minter: &Minter, stage: &str, ttl: u64) -> String {
    let entry = ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse("raw/train").unwrap(),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(Action::Read),
        columns: None,
    };
    minter
        .mint(MintRequest {
            principal: "svc-train".into(),
            run: "01J0000000000000000000RUN1".into(),
            stage: stage.into(),
            attempt: 1,
            scope: Scope::new(vec![entry]).unwrap(),
            ttl: Duration::from_secs(ttl),
        })
        .unwrap()
        .token
        .expose()
        .to_owned()
}

/// The kinds of token a batch is made of.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Good,
    /// One payload byte changed, signature kept.
    TamperedPayload,
    /// One signature bit flipped.
    FlippedSignature,
    /// The signature of another good token.
    SwappedSignature,
    /// Signed by a key the verifier does not hold.
    UnknownKid,
    /// Expired long ago.
    Expired,
    /// `alg: none` with no signature.
    AlgNone,
    /// Not a JWT at all.
    Garbage,
}

const KINDS: [Kind; 8] = [
    Kind::Good,
    Kind::TamperedPayload,
    Kind::FlippedSignature,
    Kind::SwappedSignature,
    Kind::UnknownKid,
    Kind::Expired,
    Kind::AlgNone,
    Kind::Garbage,
];

fn make(f: &Fixture, kind: Kind, n: usize) -> String {
    let stage = format!("stage-{n}");
    let good = || mint(&f.minter, &stage, 600);
    match kind {
        Kind::Good => good(),
        Kind::TamperedPayload => {
            let t = good();
            let parts: Vec<&str> = t.split('.').collect();
            let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
            let at = payload.len() / 2;
            payload[at] = if payload[at] == b'a' { b'b' } else { b'a' };
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(&payload),
                parts[2]
            )
        }
        Kind::FlippedSignature => {
            let t = good();
            let (input, sig) = t.rsplit_once('.').unwrap();
            let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            sig[10] ^= 0x01;
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig))
        }
        Kind::SwappedSignature => {
            let t = good();
            let other = mint(&f.minter, &format!("other-{n}"), 600);
            let (input, _) = t.rsplit_once('.').unwrap();
            let (_, sig) = other.rsplit_once('.').unwrap();
            format!("{input}.{sig}")
        }
        Kind::UnknownKid => mint(&f.stranger, &stage, 600),
        Kind::Expired => mint(&f.past, &stage, 60),
        Kind::AlgNone => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let t = good();
            let payload = t.split('.').nth(1).unwrap().to_owned();
            format!("{header}.{payload}.")
        }
        Kind::Garbage => "not-a-token".to_owned(),
    }
}

/// What `verify` says, as comparable text (the error's Display names the
/// check that failed and never the token).
fn answer(result: &weir_auth::Result<weir_auth::StageClaims>) -> String {
    match result {
        Ok(claims) => format!("ok {}", claims.stage),
        Err(e) => format!("err {e}"),
    }
}

fn check_batch(f: &Fixture, kinds: &[Kind]) {
    let tokens: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(n, k)| make(f, *k, n))
        .collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let single = f.minter.verifier().without_cache();
    let batch = f.minter.verifier().without_cache();
    let expected: Vec<String> = refs
        .iter()
        .map(|t| answer(&single.verify(t, NOW)))
        .collect();
    let got: Vec<String> = batch.verify_batch(&refs, NOW).iter().map(answer).collect();
    assert_eq!(got, expected, "kinds: {kinds:?}");
    for (kind, answer) in kinds.iter().zip(&got) {
        assert_eq!(
            matches!(kind, Kind::Good),
            answer.starts_with("ok "),
            "{kind:?} answered {answer}"
        );
    }
}

#[test]
fn a_batch_of_good_tokens_verifies_to_the_same_claims() {
    let f = fixture();
    let tokens: Vec<String> = (0..40)
        .map(|n| mint(&f.minter, &format!("s{n}"), 600))
        .collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let verifier = f.minter.verifier().without_cache();
    let batch = verifier.verify_batch(&refs, NOW);
    assert_eq!(batch.len(), refs.len());
    for (token, result) in refs.iter().zip(batch) {
        assert_eq!(result.unwrap(), verifier.verify(token, NOW).unwrap());
    }
}

#[test]
fn each_hostile_token_fails_alone_in_a_batch_of_good_ones() {
    let f = fixture();
    for hostile in KINDS.into_iter().filter(|k| !matches!(k, Kind::Good)) {
        check_batch(&f, &[Kind::Good, hostile, Kind::Good, Kind::Good]);
    }
}

#[test]
fn a_swapped_signature_fails_both_ways_and_spares_the_rest() {
    let f = fixture();
    check_batch(
        &f,
        &[
            Kind::SwappedSignature,
            Kind::Good,
            Kind::SwappedSignature,
            Kind::Good,
        ],
    );
}

#[test]
fn an_empty_batch_is_empty_and_a_batch_of_one_is_a_single_verify() {
    let f = fixture();
    let verifier = f.minter.verifier();
    assert!(verifier.verify_batch(&[], NOW).is_empty());
    check_batch(&f, &[Kind::Good]);
    check_batch(&f, &[Kind::FlippedSignature]);
}

#[test]
fn batch_results_are_cached_and_revocation_still_applies() {
    let f = fixture();
    let token = mint(&f.minter, "cached", 600);
    let verifier = f.minter.verifier();
    let claims = verifier.verify_batch(&[&token], NOW).remove(0).unwrap();
    assert_eq!(verifier.cache().unwrap().len(), 1);
    verifier.revoke(&claims).unwrap();
    let again = verifier.verify_batch(&[&token, &token], NOW);
    assert!(
        again
            .iter()
            .all(|r| matches!(r, Err(weir_auth::Error::Revoked)))
    );
}

#[test]
fn an_oversized_token_is_refused_by_length_in_a_batch() {
    let f = fixture();
    let huge = "a".repeat(weir_auth::MAX_TOKEN_BYTES + 1);
    let good = mint(&f.minter, "g", 600);
    let out = f.minter.verifier().verify_batch(&[&huge, &good], NOW);
    assert!(matches!(
        out[0],
        Err(weir_auth::Error::TokenTooLarge { .. })
    ));
    assert!(out[1].is_ok());
}

fn kind() -> impl Strategy<Value = Kind> {
    (0..KINDS.len()).prop_map(|i| KINDS[i])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any mix of good and hostile tokens: the batch answers exactly what
    /// single verification answers, token by token.
    #[test]
    fn batch_agrees_with_single_verification(kinds in proptest::collection::vec(kind(), 0..12)) {
        let f = fixture();
        check_batch(&f, &kinds);
    }
}
