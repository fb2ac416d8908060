//! Validated, canonical object paths within a store.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Most segments accepted in a path.
pub const MAX_PATH_SEGMENTS: usize = 64;

/// A validated object path within a store: segments separated by `/`.
///
/// # Guarantees
///
/// A `ScopePath` is canonical: the string it was parsed from is its only
/// spelling, so two paths naming the same object compare equal and a prefix
/// test on segments is a prefix test on meaning. Parsing refuses (rather than
/// normalizes):
///
/// - empty segments (`a//b`, a leading or trailing `/`);
/// - `.` and `..` segments, and any segment ending with `.`;
/// - backslashes and control characters;
/// - percent escapes of `.`, `/`, `\` and `%` itself (`%2e`, `%2f`, `%5c`,
///   `%25`, any letter case), so a later decoding step cannot produce a
///   traversal;
/// - more than [`MAX_PATH_BYTES`] bytes or [`MAX_PATH_SEGMENTS`] segments.
///
/// The empty string parses to the root path, which [`covers`](Self::covers)
/// everything; a [`Scope`](crate::Scope) never contains it.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopePath(String);

impl ScopePath {
    /// Parses and validates `s`. See the [type docs](Self) for the rules.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScopePath`] naming the rule `s` broke.
    pub fn parse(s: &str) -> Result<Self> {
        validate(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The root path (no segments).
    #[must_use]
    pub fn root() -> Self {
        Self(String::new())
    }

    /// Whether this is the root path.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical string form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order (none for the root).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// Whether `other` is `self` or lies below it, segment by segment:
    /// `raw/train` covers `raw/train` and `raw/train/x.parquet` but never
    /// `raw/training`.
    #[must_use]
    pub fn covers(&self, other: &ScopePath) -> bool {
        if self.is_root() {
            return true;
        }
        match other.0.strip_prefix(self.0.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidScopePath { reason }
}

fn validate(s: &str) -> Result<()> {
    if s.len() > MAX_PATH_BYTES {
        return Err(invalid("longer than 1024 bytes"));
    }
    if s.is_empty() {
        return Ok(());
    }
    if s.chars().any(char::is_control) {
        return Err(invalid("contains a control character"));
    }
    if s.contains('\\') {
        return Err(invalid("contains a backslash"));
    }
    if has_dangerous_escape(s.as_bytes()) {
        return Err(invalid(
            "contains a percent escape of '.', '/', '\\' or '%'",
        ));
    }
    let mut count = 0usize;
    for segment in s.split('/') {
        count += 1;
        if count > MAX_PATH_SEGMENTS {
            return Err(invalid("more than 64 segments"));
        }
        if segment.is_empty() {
            return Err(invalid("empty segment (leading, trailing or doubled '/')"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid("'.' or '..' segment"));
        }
        if segment.ends_with('.') {
            return Err(invalid("segment ends with '.'"));
        }
    }
    Ok(())
}

/// `%2e`, `%2f`, `%5c` or `%25` in any letter case.
fn has_dangerous_escape(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| match w {
        [b'%', hi, lo] => matches!(
            (*hi, lo.to_ascii_lowercase()),
            (b'2', b'e' | b'f' | b'5') | (b'5', b'c')
        ),
        _ => false,
    })
}

impl TryFrom<String> for ScopePath {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        validate(&s)?;
        Ok(Self(s))
    }
}

impl From<ScopePath> for String {
    fn from(p: ScopePath) -> String {
        p.0
    }
}

impl fmt::Display for ScopePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ScopePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopePath({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> ScopePath {
        ScopePath::parse(s).unwrap()
    }

    #[test]
    fn accepts_ordinary_paths() {
        for s in [
            "raw",
            "raw/train",
            "raw/train/part-0001.parquet",
            "a b/c%20d",
            "ünïcode/ok",
            ".hidden/x",
            "a.b/c..d",
        ] {
            assert_eq!(p(s).as_str(), s);
        }
        assert!(p("").is_root());
        assert_eq!(p("a/b/c").segments().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn refuses_escapes_and_non_canonical_forms() {
        for s in [
            "/raw",
            "raw/",
            "raw//train",
            ".",
            "..",
            "raw/../secret",
            "raw/./x",
            "raw/x.",
            "raw/...",
            "raw\\..\\secret",
            "raw/%2e%2e/secret",
            "raw/%2E%2E/secret",
            "raw%2fsecret",
            "raw%2Fsecret",
            "raw%5c..",
            "raw%5C..",
            "raw/%252e%252e",
            "raw/\u{0}x",
            "raw/\nx",
            "raw/\u{7f}",
            "raw/\u{85}",
        ] {
            assert!(ScopePath::parse(s).is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn limits() {
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        assert!(ScopePath::parse(&long).is_err());
        assert!(ScopePath::parse(&"a".repeat(MAX_PATH_BYTES)).is_ok());
        let many = vec!["s"; MAX_PATH_SEGMENTS].join("/");
        assert!(ScopePath::parse(&many).is_ok());
        let too_many = vec!["s"; MAX_PATH_SEGMENTS + 1].join("/");
        assert!(ScopePath::parse(&too_many).is_err());
    }

    #[test]
    fn covers_is_segment_aware() {
        let train = p("raw/train");
        assert!(train.covers(&p("raw/train")));
        assert!(train.covers(&p("raw/train/x.parquet")));
        assert!(!train.covers(&p("raw/training")));
        assert!(!train.covers(&p("raw/training/x")));
        assert!(!train.covers(&p("raw")));
        assert!(!train.covers(&ScopePath::root()));
        assert!(ScopePath::root().covers(&train));
    }

    #[test]
    fn serde_validates() {
        let ok: ScopePath = serde_json::from_str(r#""raw/train""#).unwrap();
        assert_eq!(ok, p("raw/train"));
        assert!(serde_json::from_str::<ScopePath>(r#""raw/../x""#).is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#""raw/train""#);
    }

    fn model_covers(a: &[String], b: &[String]) -> bool {
        a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
    }

    proptest! {
        #[test]
        fn covers_matches_reference_model(
            a in prop::collection::vec("[ab]{1,2}", 0..5),
            b in prop::collection::vec("[ab]{1,2}", 0..5),
        ) {
            let pa = p(&a.join("/"));
            let pb = p(&b.join("/"));
            prop_assert_eq!(pa.covers(&pb), model_covers(&a, &b));
        }

        #[test]
        fn parse_never_panics_and_round_trips(s in any::<String>()) {
            if let Ok(path) = ScopePath::parse(&s) {
                prop_assert_eq!(path.as_str(), s.as_str());
                prop_assert_eq!(ScopePath::parse(&path.to_string()).unwrap(), path);
            }
        }

        #[test]
        fn parse_round_trips_on_path_like_strings(s in "[a./%25cCeEfF\\\\]{0,24}") {
            if let Ok(path) = ScopePath::parse(&s) {
                prop_assert!(!path.segments().any(|seg| seg == ".." || seg == "."));
                let lower = s.to_ascii_lowercase();
                for escape in ["%2e", "%2f", "%5c", "%25"] {
                    prop_assert!(!lower.contains(escape));
                }
                prop_assert_eq!(ScopePath::parse(path.as_str()).unwrap(), path);
            }
        }
    }
}
