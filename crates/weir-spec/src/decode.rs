//! Typed reading of YAML nodes, collecting every problem instead of stopping.
//!
//! These helpers are the "serde" of weir-spec: each one reads a node as a
//! value of some type, or records a diagnostic that says what was found
//! instead and how to fix it, and returns `None`.

use std::collections::HashMap;
use std::time::Duration;

use crate::diagnostic::{Diagnostic, Location, did_you_mean};
use crate::yaml::{Node, NodeKind, Style, is_null, truncate};

/// Collects diagnostics while decoding one file.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) diags: Vec<Diagnostic>,
}

impl Ctx {
    pub(crate) fn error(&mut self, loc: &Location, message: impl Into<String>) -> ErrorBuilder<'_> {
        self.diags.push(Diagnostic::error(loc.clone(), message));
        ErrorBuilder { ctx: self }
    }

    pub(crate) fn warning(&mut self, loc: &Location, message: impl Into<String>) -> ErrorBuilder<'_> {
        self.diags.push(Diagnostic::warning(loc.clone(), message));
        ErrorBuilder { ctx: self }
    }
}

/// Lets a caller attach a hint to the diagnostic just recorded.
pub(crate) struct ErrorBuilder<'a> {
    ctx: &'a mut Ctx,
}

impl ErrorBuilder<'_> {
    pub(crate) fn hint(self, hint: impl Into<String>) {
        if let Some(last) = self.ctx.diags.last_mut() {
            last.hint = Some(hint.into());
        }
    }
}

/// The fields of a mapping, checked against the names a schema allows.
pub(crate) struct Fields<'n> {
    pub(crate) loc: Location,
    values: HashMap<&'n str, &'n Node>,
}

impl<'n> Fields<'n> {
    /// The field's node, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&'n Node> {
        self.values.get(name).copied()
    }

    /// The field's node, or an error naming the missing field.
    pub(crate) fn required(&self, cx: &mut Ctx, name: &str, what: &str) -> Option<&'n Node> {
        let node = self.get(name);
        if node.is_none() {
            cx.error(&self.loc, format!("{what} is missing required field `{name}`"));
        }
        node
    }
}

/// Reads `node` as a mapping whose keys must be among `known`.
///
/// Unknown keys are reported (with a suggestion) and skipped; `special`
/// lets a caller give a tailored message for a known-but-unsupported key.
pub(crate) fn fields<'n>(
    cx: &mut Ctx,
    node: &'n Node,
    what: &str,
    known: &[&str],
    special: &dyn Fn(&str) -> Option<String>,
) -> Option<Fields<'n>> {
    let NodeKind::Map(pairs) = &node.kind else {
        cx.error(&node.loc, format!("{what} must be a mapping, found {}", node.type_name()));
        return None;
    };
    let mut values = HashMap::new();
    for (key, value) in pairs {
        let NodeKind::Scalar { value: name, .. } = &key.kind else {
            continue;
        };
        if known.contains(&name.as_str()) {
            values.entry(name.as_str()).or_insert(value);
        } else if let Some(message) = special(name) {
            cx.error(&key.loc, message);
        } else {
            let builder = cx.error(&key.loc, format!("unknown field `{}` in {what}", truncate(name)));
            match did_you_mean(name, known.iter().copied()) {
                Some(close) => builder.hint(format!("did you mean `{close}`?")),
                None => builder.hint(format!("expected one of: {}", known.join(", "))),
            }
        }
    }
    Some(Fields {
        loc: node.loc.clone(),
        values,
    })
}

/// Plain scalars that YAML 1.1 tools read as booleans.
fn yaml11_bool(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false"
    ) && (value.chars().all(|c| c.is_ascii_lowercase())
        || value.chars().all(|c| c.is_ascii_uppercase())
        || value.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
}

/// Reads `node` as a string. Refuses nulls, numbers and booleans, including
/// YAML 1.1 booleans such as `no`, unless quoted.
pub(crate) fn string(cx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    match &node.kind {
        NodeKind::Scalar {
            value,
            style: Style::Quoted,
        } => Some(value.clone()),
        NodeKind::Scalar {
            value,
            style: Style::Plain,
        } => {
            if is_null(value) {
                cx.error(&node.loc, format!("{what} must be a string, found null"))
                    .hint("write a value, or remove the field");
                None
            } else if yaml11_bool(value) {
                cx.error(
                    &node.loc,
                    format!("{what} must be a string, found `{value}`, which YAML reads as a boolean"),
                )
                .hint(format!("quote it: \"{value}\""));
                None
            } else if value.parse::<f64>().is_ok() {
                cx.error(&node.loc, format!("{what} must be a string, found {}", node.type_name()))
                    .hint(format!("quote it: \"{value}\""));
                None
            } else {
                Some(value.clone())
            }
        }
        _ => {
            cx.error(&node.loc, format!("{what} must be a string, found {}", node.type_name()));
            None
        }
    }
}

/// Reads `node` as an integer in `min..=max`.
pub(crate) fn integer(cx: &mut Ctx, node: &Node, what: &str, min: u64, max: u64) -> Option<u64> {
    let parsed = match &node.kind {
        NodeKind::Scalar {
            value,
            style: Style::Plain,
        } => value.parse::<u64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            cx.error(&node.loc, format!("{what} must be between {min} and {max}, found {n}"));
            None
        }
        None => {
            cx.error(&node.loc, format!("{what} must be an integer, found {}", node.type_name()))
                .hint(format!("write a whole number between {min} and {max}"));
            None
        }
    }
}

/// Reads a duration such as `90s`, `15m`, `2h` or `1h30m`.
pub(crate) fn duration(cx: &mut Ctx, node: &Node, what: &str) -> Option<Duration> {
    let text = string(cx, node, what)?;
    match parse_duration(&text) {
        Some(d) if d > Duration::ZERO && d <= Duration::from_secs(7 * 24 * 3600) => Some(d),
        _ => {
            cx.error(&node.loc, format!("{what} must be a duration up to 7 days, found `{}`", truncate(&text)))
                .hint("write a number with a unit, e.g. `30s`, `15m`, `2h` or `1h30m`");
            None
        }
    }
}

/// Parses `1h30m`, `90s`, `250ms`. Returns `None` on anything else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (num, tail) = rest.split_at(digits);
        let value: u64 = num.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.checked_mul(60)?),
            "h" => Duration::from_secs(value.checked_mul(3600)?),
            "d" => Duration::from_secs(value.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = tail;
    }
    Some(total)
}

/// Reads a list of names (each checked by `check`). Returns the names with
/// their locations.
pub(crate) fn name_list(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    kind: NameKind,
) -> Option<Vec<(String, Location)>> {
    let NodeKind::Seq(items) = &node.kind else {
        let builder = cx.error(&node.loc, format!("{what} must be a list, found {}", node.type_name()));
        if let NodeKind::Scalar { value, .. } = &node.kind {
            builder.hint(format!("write a list: [{}]", truncate(value)));
        }
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(name) = name(cx, item, what, kind) {
            if out.iter().any(|(n, _)| *n == name) {
                cx.error(&item.loc, format!("`{name}` is listed twice in {what}"));
            } else {
                out.push((name, item.loc.clone()));
            }
        }
    }
    Some(out)
}

/// The kinds of names weir checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// Pipelines and stages: `[a-z][a-z0-9_-]{0,62}`.
    Stage,
    /// Datasets and stores, usable as SQL identifiers: `[a-z][a-z0-9_]{0,62}`.
    Identifier,
    /// Principals: `[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}`.
    Principal,
}

/// Whether `name` is a valid name of `kind`.
pub(crate) fn valid_name(name: &str, kind: NameKind) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    match kind {
        NameKind::Stage => {
            name.len() <= 63
                && first.is_ascii_lowercase()
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        }
        NameKind::Identifier => {
            name.len() <= 63
                && first.is_ascii_lowercase()
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        }
        NameKind::Principal => {
            name.len() <= 128
                && first.is_ascii_alphanumeric()
                && chars.all(|c| c.is_ascii_alphanumeric() || "_.@:-".contains(c))
        }
    }
}

/// Reads a name and checks its form.
pub(crate) fn name(cx: &mut Ctx, node: &Node, what: &str, kind: NameKind) -> Option<String> {
    let value = string(cx, node, what)?;
    if valid_name(&value, kind) {
        return Some(value);
    }
    let rule = match kind {
        NameKind::Stage => {
            "start with a lowercase letter; then lowercase letters, digits, `_` or `-`; at most 63 characters"
        }
        NameKind::Identifier => {
            "start with a lowercase letter; then lowercase letters, digits or `_` (it is a SQL table name); at most 63 characters"
        }
        NameKind::Principal => {
            "letters, digits and `_ . @ : -`, starting with a letter or digit; at most 128 characters"
        }
    };
    cx.error(&node.loc, format!("invalid {what} `{}`", truncate(&value)))
        .hint(format!("a name must {rule}"));
    None
}

/// Checks a dataset path: relative, `/`-separated, no empty, `.` or `..`
/// segments, no backslashes, percent signs or control characters.
pub(crate) fn object_path(cx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    let value = string(cx, node, what)?;
    let problem = path_problem(&value);
    match problem {
        None => Some(value),
        Some(problem) => {
            cx.error(&node.loc, format!("invalid {what} `{}`: {problem}", truncate(&value)))
                .hint("write a relative path inside the store, such as `curated/customers`");
            None
        }
    }
}

fn path_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return Some("it is empty");
    }
    if value.len() > 1024 {
        return Some("it is longer than 1024 bytes");
    }
    if value.starts_with('/') {
        return Some("it is absolute");
    }
    if value.contains('\\') {
        return Some("it contains a backslash");
    }
    if value.contains('%') {
        return Some("it contains `%` (percent-encoding is not allowed)");
    }
    if value.chars().any(char::is_control) {
        return Some("it contains a control character");
    }
    for segment in value.split('/') {
        if segment.is_empty() {
            return Some("it has an empty segment (`//` or a trailing `/`)");
        }
        if segment == "." || segment == ".." {
            return Some("it contains a `.` or `..` segment");
        }
        if segment.ends_with('.') {
            return Some("a segment ends with `.`");
        }
        if segment.starts_with('_') && segment.len() > 1 && segment.starts_with("_weir") {
            return Some("`_weir` segments are reserved for weir's own metadata");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn yaml11_booleans() {
        for b in ["no", "No", "NO", "yes", "on", "OFF", "y", "N", "true", "False"] {
            assert!(yaml11_bool(b), "{b}");
        }
        for s in ["nO", "noo", "yess", "ok"] {
            assert!(!yaml11_bool(s), "{s}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("clean_customers", NameKind::Identifier));
        assert!(!valid_name("clean-customers", NameKind::Identifier));
        assert!(valid_name("clean-customers", NameKind::Stage));
        assert!(!valid_name("Clean", NameKind::Stage));
        assert!(!valid_name("", NameKind::Stage));
        assert!(valid_name("svc:features@prod", NameKind::Principal));
    }

    #[test]
    fn paths() {
        assert_eq!(path_problem("curated/customers"), None);
        assert!(path_problem("a/../b").is_some());
        assert!(path_problem("a//b").is_some());
        assert!(path_problem("/abs").is_some());
        assert!(path_problem("a/%2e%2e").is_some());
        assert!(path_problem("a\\b").is_some());
        assert!(path_problem("a/b.").is_some());
        assert!(path_problem("a/_weir/x").is_some());
    }
}
