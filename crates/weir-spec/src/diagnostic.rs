//! Diagnostics: what is wrong, where, and how to fix it.

use std::fmt;

/// A position in a source file. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file, as given by the caller.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// A location in `file` at `line`:`column` (both 1-based).
    pub fn new(file: &str, line: usize, column: usize) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The pipeline cannot be used.
    Error,
    /// The pipeline works but probably not as intended.
    Warning,
}

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where the problem is.
    pub loc: Location,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
    /// The offending source line, kept for diagnostics in a file other than
    /// the one whose text the caller holds (a contract file a pipeline
    /// references); [`Diagnostic::render`] prefers it to the text it is given.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// An error at `loc`.
    pub fn error(loc: Location, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            loc,
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    /// A warning at `loc`.
    pub fn warning(loc: Location, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            loc,
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the diagnostic with the offending source line and a caret.
    ///
    /// `source` is the text of the file the diagnostic points into; a
    /// diagnostic that carries its own [`Diagnostic::source_line`] uses that.
    pub fn render(&self, source: &str) -> String {
        let mut out = self.to_string();
        let line = match &self.source_line {
            Some(line) => Some(line.as_str()),
            None => source.lines().nth(self.loc.line.saturating_sub(1)),
        };
        if let Some(line) = line {
            let gutter = self.loc.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret = " ".repeat(self.loc.column.saturating_sub(1));
            out.push_str(&format!(
                "\n {pad} |\n {gutter} | {line}\n {pad} | {caret}^"
            ));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  = hint: {hint}"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {level}: {}", self.loc, self.message)
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The closest candidate to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("input", ["inputs", "outputs"]), Some("inputs"));
        assert_eq!(did_you_mean("sqll", ["sql", "name"]), Some("sql"));
        assert_eq!(did_you_mean("zzzzzz", ["inputs", "sql"]), None);
    }

    #[test]
    fn render_points_at_the_column() {
        let d = Diagnostic::error(Location::new("p.yaml", 2, 3), "bad").with_hint("fix it");
        let text = d.render("a: 1\nb: 2\n");
        assert!(text.starts_with("p.yaml:2:3: error: bad"));
        assert!(text.contains(" 2 | b: 2\n   |   ^"));
        assert!(text.ends_with("= hint: fix it"));
    }

    #[test]
    fn render_prefers_the_kept_source_line() {
        let mut d = Diagnostic::error(Location::new("c.yaml", 7, 1), "bad");
        d.source_line = Some("columns: 3".to_owned());
        assert!(d.render("a: 1\n").contains(" 7 | columns: 3\n"));
    }
}
