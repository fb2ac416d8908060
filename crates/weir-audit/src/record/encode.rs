//! Writes a format-2 record, byte for byte as `serde_json` would write it.
//!
//! Sealing encodes every appended event on the audit writer's thread, the
//! one every appender waits for. Through `serde_json` that was a fifth of
//! the writer's CPU (a growing buffer, and an escape check on every byte,
//! hashes included); here the record is written into one buffer sized up
//! front, hex digests are written without a check, and a string is copied
//! whole unless it holds a byte JSON must escape.
//!
//! # Guarantee
//!
//! For every event the output is exactly `serde_json::to_string` of the
//! record's fields in order (tested against it on generated events,
//! including quotes, backslashes, control characters and non-ASCII text),
//! so records written before and after this encoder hash alike and the
//! decoders read both.

use crate::digest::{EventHash, lower_hex_digit};

/// What JSON must escape in a string: `"`, `\` and the control characters.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A record being written: `{"key":value,...}`, keys in call order.
pub(super) struct RecordWriter {
    out: String,
    /// Whether a key has been written (the next one needs a comma).
    started: bool,
}

impl RecordWriter {
    /// An empty record with room for `text_bytes` of string values plus
    /// the keys, numbers and hash.
    pub(super) fn with_room(text_bytes: usize) -> Self {
        /// Keys, punctuation, numbers and the 64-digit hash of a record.
        const FIXED: usize = 320;
        let mut out = String::with_capacity(FIXED + text_bytes + text_bytes / 8);
        out.push('{');
        Self {
            out,
            started: false,
        }
    }

    /// The finished record.
    pub(super) fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }

    fn key(&mut self, key: &str) {
        if self.started {
            self.out.push(',');
        }
        self.started = true;
        // Keys are this module's callers' literals: plain ASCII.
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    pub(super) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_str(&mut self.out, value);
    }

    pub(super) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.null(key),
        }
    }

    pub(super) fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(&mut self.out, value);
    }

    pub(super) fn i64(&mut self, key: &str, value: i64) {
        self.key(key);
        if value < 0 {
            self.out.push('-');
        }
        push_u64(&mut self.out, value.unsigned_abs());
    }

    pub(super) fn opt_u32(&mut self, key: &str, value: Option<u32>) {
        match value {
            Some(value) => self.u64(key, u64::from(value)),
            None => self.null(key),
        }
    }

    /// A digest as a string of 64 lowercase hex digits (never escaped).
    pub(super) fn hash(&mut self, key: &str, value: &EventHash) {
        self.key(key);
        self.out.push('"');
        for b in value.as_bytes() {
            self.out.push(lower_hex_digit(b >> 4));
            self.out.push(lower_hex_digit(b & 0x0f));
        }
        self.out.push('"');
    }

    fn null(&mut self, key: &str) {
        self.key(key);
        self.out.push_str("null");
    }
}

/// Appends `value` as a JSON string, escaped exactly as `serde_json`
/// escapes it: runs of plain characters (any UTF-8 other than `"`, `\` and
/// U+0000 to U+001F) are copied whole.
fn push_json_str(out: &mut String, value: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in value.bytes().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        // `b` is ASCII, so `i` is a character boundary.
        out.push_str(value.get(plain_from..i).unwrap_or_default());
        push_escape(out, b);
        plain_from = i + 1;
    }
    out.push_str(value.get(plain_from..).unwrap_or_default());
    out.push('"');
}

/// The escape of one byte for which [`needs_escape`] holds.
fn push_escape(out: &mut String, b: u8) {
    match b {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        _ => {
            // Lowercase, as `serde_json` writes them.
            out.push_str("\\u00");
            out.push(lower_hex_digit(b >> 4));
            out.push(lower_hex_digit(b & 0x0f));
        }
    }
}

/// Appends `n` in decimal.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `n % 10 < 10`: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (n % 10) as u8;
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + digit;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in digits.get(start..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &str) -> String {
        let mut out = String::new();
        push_json_str(&mut out, value);
        out
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut every_ascii = String::new();
        for b in 0u8..=0x7f {
            every_ascii.push(char::from(b));
        }
        for value in [
            "",
            "plain",
            "\"",
            "\\",
            "a\"b\\c",
            "ünï日\u{7f}\u{2028}",
            "\u{0}\u{1f}\n\r\t\u{8}\u{c}",
            &every_ascii,
        ] {
            assert_eq!(
                json(value),
                serde_json::to_string(value).unwrap(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn numbers_print_as_serde_json_does() {
        for n in [0, 1, 9, 10, 99, 1_700_000_000_123_456, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for n in [i64::MIN, -1, 0, 1, i64::MAX] {
            let mut w = RecordWriter::with_room(0);
            w.i64("n", n);
            assert_eq!(w.finish(), format!(r#"{{"n":{n}}}"#));
        }
    }
}
