//! What may enter the log: size caps, no control characters, no credentials.
//!
//! The log is read by people and exported to other systems, so it must never
//! become a place where secrets live. Every text field of a
//! [`NewEvent`](crate::NewEvent) is checked before it is queued; a field that
//! looks like a JWT (three base64url parts separated by dots, the first one
//! a base64url JSON object `eyJ...`, or three long base64url parts) is
//! refused, as is anything over its size cap or holding control characters.
//!
//! # Non-goals
//!
//! Detecting every possible secret: a password typed into a reason field
//! cannot be told from prose. Callers must not put secrets in events; this
//! check catches the common accident (a bearer token in a path or reason).

use crate::error::{Error, Result};

/// Longest actor, run, stage, store or origin host, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest resource path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest reason, in bytes.
pub const MAX_REASON_BYTES: usize = 2048;

/// The shortest first part that counts as a JWT header (`{"alg":"x"}` is
/// already 16 base64url characters).
const MIN_JWT_HEADER: usize = 8;
/// Three dot-separated base64url parts at least this long look like a token
/// whatever they start with.
const MIN_OPAQUE_PART: usize = 16;

/// Checks one text field; `cap` is its size limit in bytes.
pub(crate) fn check_text(field: &'static str, value: &str, cap: usize) -> Result<()> {
    if value.len() > cap {
        return Err(Error::event(field, "too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::event(field, "contains control characters"));
    }
    if looks_like_jwt(value) {
        return Err(Error::event(
            field,
            "looks like a JWT; secrets are never stored",
        ));
    }
    Ok(())
}

/// Checks an optional text field.
pub(crate) fn check_opt(field: &'static str, value: Option<&str>, cap: usize) -> Result<()> {
    value.map_or(Ok(()), |v| check_text(field, v, cap))
}

/// Whether `text` contains something shaped like a JWS/JWE compact token.
pub(crate) fn looks_like_jwt(text: &str) -> bool {
    text.split(|c: char| !is_token_char(c))
        .any(run_looks_like_jwt)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// `run` is a maximal stretch of base64url characters and dots.
fn run_looks_like_jwt(run: &str) -> bool {
    // Three parts need two dots. Most runs (words, ids) have fewer, and
    // this check runs on every text field of every event: skip the split.
    if run.bytes().filter(|&b| b == b'.').nth(1).is_none() {
        return false;
    }
    let parts: Vec<&str> = run.split('.').collect();
    parts.windows(3).any(|w| match w {
        [a, b, c] => {
            let header = a.starts_with("eyJ") && a.len() >= MIN_JWT_HEADER && b.len() >= 2;
            let opaque = [a, b, c].iter().all(|p| p.len() >= MIN_OPAQUE_PART);
            header || opaque
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJzdmMtdHJhaW4ifQ.3q2-7wAbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-";

    #[test]
    fn jwt_in_a_field_is_refused() {
        assert!(looks_like_jwt(JWT));
        assert!(check_text("reason", JWT, MAX_REASON_BYTES).is_err());
    }

    #[test]
    fn bearer_header_in_reason_is_refused() {
        let text = format!("auth failed for Authorization: Bearer {JWT}");
        assert!(check_text("reason", &text, MAX_REASON_BYTES).is_err());
    }

    #[test]
    fn jwt_smuggled_into_a_path_is_refused() {
        let path = format!("raw/train/{JWT}/part-0.parquet");
        assert!(check_text("path", &path, MAX_PATH_BYTES).is_err());
    }

    #[test]
    fn unsigned_alg_none_jwt_is_refused() {
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."));
    }

    #[test]
    fn opaque_three_part_token_is_refused() {
        assert!(looks_like_jwt(
            "AAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB.CCCCCCCCCCCCCCCCCCCCCC"
        ));
    }

    #[test]
    fn ordinary_names_and_paths_pass() {
        for ok in [
            "raw/train/part-0.snappy.parquet",
            "data/v1.2.3/file.tar.gz",
            "svc-train",
            "stage prepare denied: no grant for lake:raw/train (read)",
            "eyJ",
            "x.y.z",
        ] {
            assert!(check_text("path", ok, MAX_PATH_BYTES).is_ok(), "{ok}");
        }
    }

    #[test]
    fn oversized_field_is_refused() {
        assert!(check_text("actor", &"a".repeat(MAX_NAME_BYTES + 1), MAX_NAME_BYTES).is_err());
        assert!(check_text("actor", &"a".repeat(MAX_NAME_BYTES), MAX_NAME_BYTES).is_ok());
    }

    #[test]
    fn log_injection_newline_is_refused() {
        assert!(check_text("reason", "ok\nFAKE ENTRY allow", MAX_REASON_BYTES).is_err());
        assert!(check_text("actor", "a\u{1b}[2Jb", MAX_NAME_BYTES).is_err());
    }
}
