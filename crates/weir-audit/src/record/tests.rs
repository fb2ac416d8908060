//! Format-2 records: encoding, decoding, links and hostile rows.

use super::*;
use crate::event::NewEvent;

fn sealed(new: NewEvent) -> (AuditEvent, String) {
    let time = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
    let chain = ChainId::parse("cli").unwrap();
    let prev = EventHash::from_bytes([7; 32]);
    let (event, record) = AuditEvent::seal(EventFormat::V2, chain, 3, time, prev, new).unwrap();
    (event, record.unwrap())
}

fn sample() -> (AuditEvent, String) {
    sealed(
        NewEvent::new("svc-train", Action::Read, Decision::Allow, Origin::Cli)
            .with_stage("01J0RUN", "prepare", 1)
            .with_resource("lake", "raw/\"quoted\"\\dir/part-0.parquet")
            .with_reason("grant g1 – ünïcode"),
    )
}

#[test]
fn record_round_trips_and_hashes_its_bytes() {
    let (event, record) = sample();
    assert!(record.starts_with(r#"{"format":"weir-audit/event/v2","chain":"cli","seq":3,"#));
    assert!(record.ends_with(&format!(r#""prev_hash":"{}"}}"#, "07".repeat(32))));
    assert_eq!(event.hash, hash_bytes(record.as_bytes()));
    assert_eq!(event.compute_hash(), event.hash);
    assert_eq!(event.to_record().unwrap(), record);
    assert_eq!(decode("cli", 3, &record).unwrap(), event);
    let link = link(&event.chain, 3, &record).unwrap();
    assert_eq!(
        (link.seq, link.in_chain, link.prev_hash, link.hash),
        (3, true, event.prev_hash, event.hash)
    );
}

#[test]
fn every_field_is_in_the_record() {
    let (event, record) = sample();
    let mut changed = event.clone();
    changed.actor = "other".into();
    assert_ne!(changed.to_record().unwrap(), record);
    changed = event.clone();
    changed.attempt = None;
    assert_ne!(changed.compute_hash(), event.hash);
    changed = event.clone();
    changed.prev_hash = EventHash::GENESIS;
    assert_ne!(changed.compute_hash(), event.hash);
}

#[test]
fn formats_never_share_a_hash() {
    let (event, _) = sample();
    let mut v1 = event.clone();
    v1.format = EventFormat::V1;
    assert_ne!(v1.compute_hash(), event.compute_hash());
}

#[test]
fn hostile_records_are_corrupt_rows_with_their_seq() {
    let (_, record) = sample();
    let cases = [
        String::new(),
        "null".into(),
        "{}".into(),
        record.replace("weir-audit/event/v2", "weir-audit/event/v9"),
        record.replace(r#""decision":"allow""#, r#""decision":"maybe""#),
        record.replace(r#""action":"read""#, r#""action":"READ""#),
        record.replace(r#""origin":"cli""#, r#""origin":"worker:""#),
        record.replace(r#""actor":"svc-train""#, r#""actor":"""#),
        record.replace(r#""attempt":1"#, r#""attempt":-1"#),
        record.replace(r#""seq":3"#, r#""seq":"3""#),
        record.replace("}", r#","extra":1}"#),
        record.replace(r#""stage":"prepare""#, r#""stage":"prepare","stage":"x""#),
        record.replace(&"07".repeat(32), &"AB".repeat(32)),
        record.replace(
            r#""time_us":1700000000123456"#,
            r#""time_us":9223372036854775807"#,
        ),
        record[..record.len() - 1].to_owned(),
    ];
    for bad in &cases {
        let err = decode("cli", 3, bad).unwrap_err();
        assert!(
            matches!(err, Error::CorruptRow { seq: 3, .. }),
            "{bad}: {err:?}"
        );
        assert!(
            link(&ChainId::parse("cli").unwrap(), 3, bad).is_err(),
            "{bad}"
        );
    }
}

/// The reference encoding: `serde_json` on the record's keys in order
/// (what [`encode`] wrote before it had a writer of its own).
mod matches_serde_json {
    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;
    use crate::audit_key::TokenIdHmac;

    #[derive(Serialize)]
    struct RecordOut<'a> {
        format: &'static str,
        chain: &'a str,
        seq: u64,
        time_us: i64,
        actor: &'a str,
        run: Option<&'a str>,
        stage: Option<&'a str>,
        attempt: Option<u32>,
        action: &'static str,
        store: Option<&'a str>,
        path: Option<&'a str>,
        decision: &'static str,
        reason: Option<&'a str>,
        token_id_hmac: Option<&'a str>,
        origin: Cow<'a, str>,
        prev_hash: &'a EventHash,
    }

    fn reference(event: &AuditEvent) -> String {
        serde_json::to_string(&RecordOut {
            format: RECORD_FORMAT,
            chain: event.chain.as_str(),
            seq: event.seq,
            time_us: event.time.timestamp_micros(),
            actor: &event.actor,
            run: event.run.as_deref(),
            stage: event.stage.as_deref(),
            attempt: event.attempt,
            action: event.action.as_str(),
            store: event.store.as_deref(),
            path: event.path.as_deref(),
            decision: event.decision.as_str(),
            reason: event.reason.as_deref(),
            token_id_hmac: event.token_id_hmac.as_ref().map(TokenIdHmac::as_str),
            origin: event.origin.encode(),
            prev_hash: &event.prev_hash,
        })
        .unwrap()
    }

    /// Any text, control characters included (admission refuses
    /// those, but the encoder must not depend on it).
    fn any_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                prop::char::range('\u{0}', '\u{7f}'),
                any::<char>(),
            ],
            0..40,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #[test]
        fn byte_for_byte(
            actor in any_text(),
            run in prop::option::of(any_text()),
            stage in prop::option::of(any_text()),
            attempt in prop::option::of(any::<u32>()),
            store in prop::option::of(any_text()),
            path in prop::option::of(any_text()),
            reason in prop::option::of(any_text()),
            worker in prop::option::of(any_text()),
            hmac in prop::option::of(any::<[u8; 32]>()),
            seq in any::<u64>(),
            time_us in -62_135_596_800_000_000i64..253_402_300_799_999_999,
            prev in any::<[u8; 32]>(),
        ) {
            let (mut event, _) = sealed(NewEvent::new("a", Action::Read, Decision::Allow, Origin::Cli));
            event.actor = actor;
            event.run = run;
            event.stage = stage;
            event.attempt = attempt;
            event.store = store;
            event.path = path;
            event.reason = reason;
            if let Some(host) = worker {
                event.origin = Origin::Worker { host };
            }
            event.token_id_hmac = hmac.map(|h| TokenIdHmac::from_hex(&hex::encode(h)).unwrap());
            event.seq = seq;
            event.time = DateTime::from_timestamp_micros(time_us).unwrap();
            event.prev_hash = EventHash::from_bytes(prev);
            prop_assert_eq!(encode(&event).unwrap(), reference(&event));
        }
    }

    #[test]
    fn the_sample_too() {
        let (event, record) = sample();
        assert_eq!(record, reference(&event));
    }
}

mod fast_path {
    use proptest::prelude::*;

    use super::*;

    fn arb_text() -> impl Strategy<Value = String> {
        // Quotes, backslashes, slashes, non-ASCII and DEL, but no
        // control characters (admission refuses those).
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('/'),
                Just('\u{7f}'),
                Just('é'),
                Just('日'),
                prop::char::range('a', 'z'),
            ],
            1..24,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        /// The fast reader takes every record the writer makes, and
        /// whatever it takes (after any one-byte edit) the strict
        /// reading takes too, with the same link.
        #[test]
        fn agrees_with_the_strict_reading(
            actor in arb_text(),
            path in prop::option::of(arb_text()),
            reason in prop::option::of(arb_text()),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut new = NewEvent::new(actor, Action::Write, Decision::Deny, Origin::Api)
                .with_run("r-1");
            if let Some(path) = path {
                new = new.with_resource("lake", path);
            }
            if let Some(reason) = reason {
                new = new.with_reason(reason);
            }
            let (event, record) = sealed(new);
            let chain = ChainId::parse("cli").unwrap();
            let fast = canonical::fields(&record).filter(|f| f.valid_in(&chain));
            prop_assert!(fast.is_some(), "{record}");
            prop_assert_eq!(link(&chain, 3, &record).unwrap(), link_strict(&chain, 3, &record).unwrap());
            prop_assert_eq!(decode("cli", 3, &record).unwrap(), event);

            let mut bytes = record.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let fast_takes = |m: &str| canonical::fields(m).is_some_and(|f| f.valid_in(&chain));
            if let Some(mutated) = String::from_utf8(bytes).ok().filter(|m| fast_takes(m)) {
                let strict = link_strict(&chain, 3, &mutated);
                prop_assert!(strict.is_ok(), "fast path took what strict refuses: {mutated}");
                prop_assert_eq!(link(&chain, 3, &mutated).unwrap(), strict.unwrap());
            }
        }
    }
}

#[test]
fn chunks_split_into_rows_or_refuse() {
    let (_, record) = sample();
    let joined = format!("{record}\u{1e}{record}");
    let rows = split_chunk("4,9", &joined).unwrap();
    assert_eq!(rows, vec![(4, record.as_str()), (9, record.as_str())]);
    assert_eq!(split_chunk("4", "x").unwrap(), vec![(4, "x")]);
    assert_eq!(
        split_chunk("4,5", "\u{1e}").unwrap(),
        vec![(4, ""), (5, "")]
    );
    for (positions, records) in [
        ("4,9", record.as_str()),
        ("4", joined.as_str()),
        ("9,4", joined.as_str()),
        ("4,4", joined.as_str()),
        ("0,1", joined.as_str()),
        ("4,x", joined.as_str()),
        ("", "x"),
    ] {
        assert!(split_chunk(positions, records).is_none(), "{positions}");
    }
}

#[test]
fn a_record_moved_to_another_row_is_caught() {
    let (_, record) = sample();
    assert!(decode("cli", 4, &record).is_err());
    assert!(decode("api", 3, &record).is_err());
    let chain = ChainId::parse("api").unwrap();
    let moved = link(&chain, 4, &record).unwrap();
    assert_eq!((moved.position, moved.seq, moved.in_chain), (4, 3, false));
    assert!(matches!(
        decode("cli", 0, &record),
        Err(Error::CorruptRow { seq: 0, .. })
    ));
}
