//! Path patterns in grants: `raw/**`, `raw/*/part.parquet`, `curated/customers`.

use std::fmt;

use weir_auth::{MAX_PATH_BYTES, MAX_PATH_SEGMENTS, ScopePath};

/// One segment of a [`PathPattern`] (the trailing `**` is kept apart).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Segment {
    /// Exactly this segment.
    Literal(String),
    /// `*`: any one segment.
    Any,
}

impl Segment {
    fn accepts(&self, segment: &str) -> bool {
        match self {
            Segment::Literal(l) => l == segment,
            Segment::Any => true,
        }
    }
}

/// A validated, segment-aware path pattern.
///
/// - `**` (only as the last segment) matches the path before it *and*
///   everything below it: `raw/**` matches `raw`, `raw/a` and `raw/a/b`;
///   `**` alone matches the whole store.
/// - `*` matches exactly one segment: `raw/*` matches `raw/a`, not `raw` nor
///   `raw/a/b`.
/// - Any other segment matches itself only.
///
/// Matching compares whole segments, so `raw/train/**` never matches
/// `raw/training`. Literal segments follow [`ScopePath`]'s rules (no `.`,
/// `..`, trailing dots, backslashes, control characters or percent escapes
/// of `.`, `/`, `\`, `%`), and a segment may not mix `*` with other text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
    recursive: bool,
}

impl PathPattern {
    /// Parses and validates `text`.
    ///
    /// # Errors
    ///
    /// The rule `text` broke, as a sentence for a diagnostic.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("a path pattern may not be empty (write `**` for the whole store)");
        }
        if text.len() > MAX_PATH_BYTES {
            return Err("a path pattern may be at most 1024 bytes");
        }
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > MAX_PATH_SEGMENTS {
            return Err("a path pattern may have at most 64 segments");
        }
        let mut segments = Vec::with_capacity(parts.len());
        let mut recursive = false;
        for (i, part) in parts.iter().enumerate() {
            if recursive {
                return Err("`**` may only be the last segment");
            }
            match *part {
                "**" if i + 1 == parts.len() => recursive = true,
                "**" => return Err("`**` may only be the last segment"),
                "*" => segments.push(Segment::Any),
                "" => return Err("empty segment (leading, trailing or doubled `/`)"),
                p if p.contains('*') => {
                    return Err(
                        "`*` must be a whole segment (`raw/*`), not part of one (`raw/a*`)",
                    );
                }
                p => {
                    ScopePath::parse(p).map_err(|e| match e {
                        weir_auth::Error::InvalidScopePath { reason } => reason,
                        _ => "invalid path segment",
                    })?;
                    segments.push(Segment::Literal(p.to_owned()));
                }
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
            recursive,
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern ends in `**`.
    #[must_use]
    pub fn is_recursive(&self) -> bool {
        self.recursive
    }

    /// Whether `path` matches.
    #[must_use]
    pub fn matches(&self, path: &ScopePath) -> bool {
        let mut segs = path.segments();
        for p in &self.segments {
            match segs.next() {
                Some(s) if p.accepts(s) => {}
                _ => return false,
            }
        }
        self.recursive || segs.next().is_none()
    }

    /// Whether `path` and every path below it match: the test for an allow
    /// grant to justify a prefix scope entry. Only a `**` pattern can.
    #[must_use]
    pub fn covers_prefix(&self, path: &ScopePath) -> bool {
        if !self.recursive {
            return false;
        }
        let mut segs = path.segments();
        self.segments
            .iter()
            .all(|p| segs.next().is_some_and(|s| p.accepts(s)))
    }

    /// Whether `path` or some path below it matches: the test for a deny
    /// grant to forbid a prefix scope entry.
    #[must_use]
    pub fn intersects_prefix(&self, path: &ScopePath) -> bool {
        let mut segs = path.segments();
        for p in &self.segments {
            match segs.next() {
                None => return true,
                Some(s) if p.accepts(s) => {}
                Some(_) => return false,
            }
        }
        self.recursive || segs.next().is_none()
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    fn p(s: &str) -> ScopePath {
        ScopePath::parse(s).unwrap()
    }

    #[test]
    fn double_star_matches_itself_and_below_segment_aware() {
        let train = pat("raw/train/**");
        assert!(train.matches(&p("raw/train")));
        assert!(train.matches(&p("raw/train/a/b")));
        assert!(!train.matches(&p("raw/training")));
        assert!(!train.matches(&p("raw/training/a")));
        assert!(!train.matches(&p("raw")));
        assert!(pat("**").matches(&p("anything/at/all")));
    }

    #[test]
    fn single_star_is_exactly_one_segment() {
        let one = pat("raw/*");
        assert!(one.matches(&p("raw/a")));
        assert!(!one.matches(&p("raw")));
        assert!(!one.matches(&p("raw/a/b")));
        assert!(pat("raw/*/x").matches(&p("raw/q/x")));
    }

    #[test]
    fn literal_is_exact_and_segment_aware() {
        let exact = pat("raw/customers.csv");
        assert!(exact.matches(&p("raw/customers.csv")));
        assert!(!exact.matches(&p("raw/customers.csv/x")));
        assert!(!exact.matches(&p("raw/customers.csvx")));
        assert!(!exact.matches(&p("raw")));
    }

    #[test]
    fn covers_prefix_needs_double_star() {
        assert!(pat("raw/**").covers_prefix(&p("raw/train")));
        assert!(pat("raw/train/**").covers_prefix(&p("raw/train")));
        assert!(pat("raw/*/**").covers_prefix(&p("raw/train")));
        assert!(!pat("raw/train/**").covers_prefix(&p("raw/training")));
        assert!(!pat("raw/train/**").covers_prefix(&p("raw")));
        assert!(!pat("raw/train").covers_prefix(&p("raw/train")));
        assert!(!pat("raw/*").covers_prefix(&p("raw/train")));
    }

    #[test]
    fn intersects_prefix_finds_any_overlap() {
        assert!(pat("raw/train/secret/**").intersects_prefix(&p("raw/train")));
        assert!(pat("raw/train/secret").intersects_prefix(&p("raw/train")));
        assert!(pat("raw/*").intersects_prefix(&p("raw/train")));
        assert!(pat("raw/**").intersects_prefix(&p("raw/train/x")));
        assert!(!pat("raw/*").intersects_prefix(&p("raw/train/x")));
        assert!(!pat("raw/training/**").intersects_prefix(&p("raw/train")));
        assert!(!pat("raw").intersects_prefix(&p("raw/train")));
    }

    #[test]
    fn refuses_traversal_and_malformed_patterns() {
        for bad in [
            "",
            "/raw",
            "raw/",
            "raw//x",
            "raw/../secret",
            "..",
            "raw/./x",
            "raw/%2e%2e",
            "raw\\..",
            "raw/x.",
            "**/raw",
            "raw/**/x",
            "raw/a*",
            "raw/***",
            "raw/\u{0}",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(PathPattern::parse("a/".repeat(64).trim_end_matches('/')).is_ok());
        assert!(PathPattern::parse("a/".repeat(65).trim_end_matches('/')).is_err());
    }
}
