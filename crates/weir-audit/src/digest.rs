//! SHA-256 digests and the canonical byte encoding they are taken over.
//!
//! # Encoding (format 1)
//!
//! This is the hash of [`EventFormat::V1`](crate::EventFormat) events; a
//! format-2 event's hash is the SHA-256 of its stored JSON record instead
//! ([`AuditEvent::to_record`]).
//!
//! A format-1 event hash is `SHA-256(encode(event))`, where `encode` writes, in this
//! order and with nothing in between:
//!
//! | # | field | encoding |
//! |---|---|---|
//! | 0 | domain tag `"weir-audit/event/v1"` | `str` |
//! | 1 | chain | `str` |
//! | 2 | seq | `u64` |
//! | 3 | time (µs since the Unix epoch, UTC) | `i64` |
//! | 4 | actor | `str` |
//! | 5 | run | `opt(str)` |
//! | 6 | stage | `opt(str)` |
//! | 7 | attempt | `opt(u32)` |
//! | 8 | action (`read`, `run_start`, ...) | `str` |
//! | 9 | store | `opt(str)` |
//! | 10 | path | `opt(str)` |
//! | 11 | decision (`allow`, `deny`, `none`) | `str` |
//! | 12 | reason | `opt(str)` |
//! | 13 | token id HMAC (hex) | `opt(str)` |
//! | 14 | origin (`cli`, `api`, `worker:<host>`) | `str` |
//! | 15 | prev_hash | 32 raw bytes |
//!
//! with `str` = big-endian `u32` byte length then the UTF-8 bytes; `u32`,
//! `u64`, `i64` = big-endian fixed width; `opt(x)` = byte `0x00` for absent,
//! or `0x01` followed by `x`. Every variable-length item carries its length
//! and every optional one its presence, so two different events never encode
//! to the same bytes.
//!
//! A checkpoint signs `str("weir-audit/checkpoint/v1") str(chain) u64(seq)
//! 32 bytes(hash) i64(time µs)`.

use std::fmt;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::event::AuditEvent;

const EVENT_DOMAIN: &str = "weir-audit/event/v1";
const CHECKPOINT_DOMAIN: &str = "weir-audit/checkpoint/v1";

/// A SHA-256 digest: an event's hash or the `prev_hash` link to its
/// predecessor. Prints as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventHash([u8; 32]);

impl EventHash {
    /// The `prev_hash` of the first event of every chain: 32 zero bytes.
    pub const GENESIS: Self = Self([0; 32]);

    /// Wraps raw digest bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 lowercase hex digits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDigest`] for anything else.
    pub fn from_hex(hex: &str) -> Result<Self> {
        // Hot in `verify` (once or twice per row): one pass, no allocation,
        // and only lowercase digits accepted (so every hash has one
        // spelling).
        let bad = || Error::InvalidDigest {
            reason: "hash must be 64 lowercase hex digits",
        };
        let digits: &[u8; 64] = hex.as_bytes().try_into().map_err(|_| bad())?;
        let mut out = [0u8; 32];
        let mut invalid = 0u8;
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_value(*hi), hex_value(*lo)),
                _ => (INVALID, INVALID),
            };
            invalid |= (hi | lo) & INVALID;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        if invalid == 0 {
            Ok(Self(out))
        } else {
            Err(bad())
        }
    }

    /// 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        lower_hex(&self.0)
    }
}

/// `bytes` as lowercase hex, in one allocation (the `hex` crate's
/// `encode` collects an iterator of chars, which showed in the API's
/// profile: it runs for every token id the log records).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(lower_hex_digit(b >> 4));
        out.push(lower_hex_digit(b & 0x0f));
    }
    out
}

/// The lowercase hex digit of a nibble (`n < 16`).
pub(crate) fn lower_hex_digit(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' + (n - 10) })
}

/// Marks a byte that is no lowercase hex digit in [`LOWER_HEX`].
const INVALID: u8 = 0x80;

/// The value of a lowercase hex digit, or [`INVALID`].
fn hex_value(c: u8) -> u8 {
    LOWER_HEX.get(usize::from(c)).copied().unwrap_or(INVALID)
}

/// The value of each lowercase hex digit, [`INVALID`] for every other byte.
#[allow(
    clippy::indexing_slicing,
    reason = "const evaluation: a bad index fails the build"
)]
const LOWER_HEX: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

impl Serialize for EventHash {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Where encoded bytes go: a hasher or a buffer.
trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes the canonical encoding straight into a hasher (or a buffer).
struct Encoder<W>(W);

impl<W: Out> Encoder<W> {
    fn raw(&mut self, bytes: &[u8]) {
        self.0.put(bytes);
    }

    fn str(&mut self, s: &str) {
        // Field caps keep every string far below u32::MAX; saturating keeps
        // the encoding total (the bytes that follow still differ).
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.raw(&len.to_be_bytes());
        self.raw(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.raw(&[0]),
            Some(s) => {
                self.raw(&[1]);
                self.str(s);
            }
        }
    }

    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.raw(&[0]),
            Some(v) => {
                self.raw(&[1]);
                self.raw(&v.to_be_bytes());
            }
        }
    }
}

/// The hash of `event` over every field but `hash` itself.
pub(crate) fn hash_event(event: &AuditEvent) -> EventHash {
    let mut enc = Encoder(Sha256::new());
    enc.str(EVENT_DOMAIN);
    enc.str(event.chain.as_str());
    enc.raw(&event.seq.to_be_bytes());
    enc.raw(&event.time.timestamp_micros().to_be_bytes());
    enc.str(&event.actor);
    enc.opt_str(event.run.as_deref());
    enc.opt_str(event.stage.as_deref());
    enc.opt_u32(event.attempt);
    enc.str(event.action.as_str());
    enc.opt_str(event.store.as_deref());
    enc.opt_str(event.path.as_deref());
    enc.str(event.decision.as_str());
    enc.opt_str(event.reason.as_deref());
    enc.opt_str(event.token_id_hmac.as_ref().map(|t| t.as_str()));
    enc.str(&event.origin.encode());
    enc.raw(event.prev_hash.as_bytes());
    EventHash(enc.0.finalize().into())
}

/// SHA-256 of `bytes`: the hash of a format-2 event is that of its record.
pub(crate) fn hash_bytes(bytes: &[u8]) -> EventHash {
    EventHash(Sha256::digest(bytes).into())
}

/// The bytes a checkpoint signature covers.
pub(crate) fn checkpoint_message(chain: &str, seq: u64, hash: &EventHash, time_us: i64) -> Vec<u8> {
    let mut enc = Encoder(Vec::with_capacity(128));
    enc.str(CHECKPOINT_DOMAIN);
    enc.str(chain);
    enc.raw(&seq.to_be_bytes());
    enc.raw(hash.as_bytes());
    enc.raw(&time_us.to_be_bytes());
    enc.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_hex_is_the_hex_crates_encoding() {
        let every_byte: Vec<u8> = (0..=u8::MAX).collect();
        assert_eq!(lower_hex(&every_byte), hex::encode(&every_byte));
        assert_eq!(lower_hex(&[]), "");
    }

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let h = EventHash::from_bytes([0xab; 32]);
        assert_eq!(EventHash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(EventHash::from_hex("ab").is_err());
        assert!(EventHash::from_hex(&"AB".repeat(32)).is_err());
        assert!(EventHash::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(EventHash::GENESIS.to_hex(), "0".repeat(64));
    }

    #[test]
    fn length_prefixes_keep_adjacent_fields_apart() {
        // ("ab", "c") and ("a", "bc") must not encode alike.
        let mut a = Encoder(Vec::new());
        a.str("ab");
        a.str("c");
        let mut b = Encoder(Vec::new());
        b.str("a");
        b.str("bc");
        assert_ne!(a.0, b.0);
        let mut none = Encoder(Vec::new());
        none.opt_str(None);
        let mut empty = Encoder(Vec::new());
        empty.opt_str(Some(""));
        assert_ne!(none.0, empty.0);
    }

    #[test]
    fn checkpoint_message_binds_every_field() {
        let h = EventHash::from_bytes([1; 32]);
        let base = checkpoint_message("c", 1, &h, 5);
        assert_ne!(base, checkpoint_message("d", 1, &h, 5));
        assert_ne!(base, checkpoint_message("c", 2, &h, 5));
        assert_ne!(base, checkpoint_message("c", 1, &EventHash::GENESIS, 5));
        assert_ne!(base, checkpoint_message("c", 1, &h, 6));
    }
}
