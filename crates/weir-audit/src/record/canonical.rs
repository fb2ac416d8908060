//! A reader for records in exactly the form `encode` writes: keys in
//! order, no whitespace, strings holding no escape but `\"` and `\\`.
//!
//! It accepts a strict subset of what the `serde_json` reading accepts
//! (every string it passes is valid JSON without control characters, every
//! number in range), and makes the same field checks, so a record it
//! accepts is one [`super::decode`] accepts with the same values. It
//! returns `None` for anything else and the caller falls back to the
//! `serde_json` reading, which names the problem.

use crate::chain_id::ChainId;
use crate::digest::EventHash;

/// What verification needs of a canonical record, plus the fields it
/// checks. Strings are as stored (escapes not undone).
pub(super) struct Fields<'a> {
    pub(super) chain: &'a str,
    pub(super) seq: u64,
    time_us: i64,
    actor: &'a str,
    action: &'a str,
    decision: &'a str,
    token_id_hmac: Option<&'a str>,
    origin: &'a str,
    pub(super) prev_hash: EventHash,
}

impl Fields<'_> {
    /// Whether the record is of `chain` and passes the checks `check`
    /// makes on the `serde_json` reading (the chain is a valid id because
    /// it equals one). The fields checked here hold no escapes (the reader
    /// refuses them there), so their stored text is their value.
    pub(super) fn valid_in(&self, chain: &ChainId) -> bool {
        self.chain == chain.as_str()
            && super::check_values(
                0,
                self.time_us,
                self.actor,
                self.action,
                self.decision,
                self.token_id_hmac,
                self.origin,
            )
            .is_ok()
    }
}

/// Reads `record` if it is canonical.
pub(super) fn fields(record: &str) -> Option<Fields<'_>> {
    let mut r = Reader(record);
    r.expect(r#"{"format":"weir-audit/event/v2","chain":"#)?;
    let chain = r.plain_string()?;
    r.expect(r#","seq":"#)?;
    let seq = r.uint()?;
    r.expect(r#","time_us":"#)?;
    let time_us = r.int()?;
    r.expect(r#","actor":"#)?;
    let actor = r.string()?;
    r.expect(r#","run":"#)?;
    r.opt(Reader::string)?;
    r.expect(r#","stage":"#)?;
    r.opt(Reader::string)?;
    r.expect(r#","attempt":"#)?;
    r.opt(|r| r.uint().filter(|a| u32::try_from(*a).is_ok()))?;
    r.expect(r#","action":"#)?;
    let action = r.plain_string()?;
    r.expect(r#","store":"#)?;
    r.opt(Reader::string)?;
    r.expect(r#","path":"#)?;
    r.opt(Reader::string)?;
    r.expect(r#","decision":"#)?;
    let decision = r.plain_string()?;
    r.expect(r#","reason":"#)?;
    r.opt(Reader::string)?;
    r.expect(r#","token_id_hmac":"#)?;
    let token_id_hmac = r.opt(Reader::plain_string)?;
    r.expect(r#","origin":"#)?;
    let origin = r.plain_string()?;
    r.expect(r#","prev_hash":"#)?;
    let prev_hash = EventHash::from_hex(r.plain_string()?).ok()?;
    r.expect("}")?;
    r.0.is_empty().then_some(Fields {
        chain,
        seq,
        time_us,
        actor,
        action,
        decision,
        token_id_hmac,
        origin,
        prev_hash,
    })
}

/// The unread rest of a record.
struct Reader<'a>(&'a str);

impl<'a> Reader<'a> {
    fn expect(&mut self, literal: &str) -> Option<()> {
        self.0 = self.0.strip_prefix(literal)?;
        Some(())
    }

    /// `null` as `None`, or what `read` reads.
    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.expect("null").is_some() {
            Some(None)
        } else {
            read(self).map(Some)
        }
    }

    /// A string with no escape at all.
    fn plain_string(&mut self) -> Option<&'a str> {
        let s = self.string()?;
        (!s.contains('\\')).then_some(s)
    }

    /// A string whose only escapes are `\"` and `\\` and that holds no
    /// control character, as stored between its quotes.
    fn string(&mut self) -> Option<&'a str> {
        let body = self.0.strip_prefix('"')?;
        let bytes = body.as_bytes();
        let mut i = 0;
        loop {
            match *bytes.get(i)? {
                b'"' => break,
                b'\\' => match bytes.get(i + 1)? {
                    b'"' | b'\\' => i += 2,
                    _ => return None,
                },
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
        let (s, rest) = (body.get(..i)?, body.get(i + 1..)?);
        self.0 = rest;
        Some(s)
    }

    /// Digits with no leading zero (or `0`), in range.
    fn uint(&mut self) -> Option<u64> {
        let len = self.0.bytes().take_while(u8::is_ascii_digit).count();
        let digits = self.0.get(..len)?;
        if len == 0 || (len > 1 && digits.starts_with('0')) {
            return None;
        }
        let value = digits.parse().ok()?;
        self.0 = self.0.get(len..)?;
        Some(value)
    }

    /// An optional `-` and [`uint`](Self::uint) digits, in range (no `-0`).
    fn int(&mut self) -> Option<i64> {
        if self.expect("-").is_some() {
            let magnitude = self.uint().filter(|m| *m > 0)?;
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(self.uint()?).ok()
        }
    }
}
