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
pub struct Ctx {
    /// Diagnostics recorded so far.
    pub diags: Vec<Diagnostic>,
}

impl Ctx {
    /// How many errors (not warnings) were recorded so far.
    pub fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == crate::diagnostic::Severity::Error)
            .count()
    }

    /// Records an error; chain `.hint(...)` to add a hint.
    pub fn error(&mut self, loc: &Location, message: impl Into<String>) -> ErrorBuilder<'_> {
        self.diags.push(Diagnostic::error(loc.clone(), message));
        ErrorBuilder { ctx: self }
    }

    /// Records a warning; chain `.hint(...)` to add a hint.
    pub fn warning(&mut self, loc: &Location, message: impl Into<String>) -> ErrorBuilder<'_> {
        self.diags.push(Diagnostic::warning(loc.clone(), message));
        ErrorBuilder { ctx: self }
    }
}

/// Lets a caller attach a hint to the diagnostic just recorded.
pub struct ErrorBuilder<'a> {
    ctx: &'a mut Ctx,
}

impl ErrorBuilder<'_> {
    /// Attaches `hint` to the diagnostic just recorded.
    pub fn hint(self, hint: impl Into<String>) {
        if let Some(last) = self.ctx.diags.last_mut() {
            last.hint = Some(hint.into());
        }
    }
}

/// The fields of a mapping, checked against the names a schema allows.
pub struct Fields<'n> {
    /// Where the mapping starts.
    pub loc: Location,
    values: HashMap<&'n str, &'n Node>,
    /// Known names an unknown key was reported as a likely typo of.
    suggested: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// The field's node, if present.
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.values.get(name).copied()
    }

    /// The field's node, or an error naming the missing field with `hint`.
    ///
    /// No error is recorded when an unknown key was already reported as a
    /// likely typo of `name` (`stage:` for `stages:`): one mistake, one message.
    pub fn required(&self, cx: &mut Ctx, name: &str, what: &str, hint: &str) -> Option<&'n Node> {
        let node = self.get(name);
        if node.is_none() && !self.suggested.contains(&name) {
            cx.error(
                &self.loc,
                format!("{what} is missing required field `{name}`"),
            )
            .hint(hint);
        }
        node
    }
}

/// Reads `node` as a mapping whose keys must be among `known`.
///
/// Unknown keys are reported (with a suggestion) and skipped; `special`
/// lets a caller give a tailored message for a known-but-unsupported key.
pub fn fields<'n>(
    cx: &mut Ctx,
    node: &'n Node,
    what: &str,
    known: &[&'static str],
    special: &dyn Fn(&str) -> Option<String>,
) -> Option<Fields<'n>> {
    let NodeKind::Map(pairs) = &node.kind else {
        cx.error(
            &node.loc,
            format!("{what} must be a mapping, found {}", node.type_name()),
        )
        .hint(format!(
            "write its fields as `key: value` lines, e.g. `{}: ...`",
            known.first().copied().unwrap_or("name")
        ));
        return None;
    };
    let mut values = HashMap::new();
    let mut suggested = Vec::new();
    for (key, value) in pairs {
        let NodeKind::Scalar { value: name, .. } = &key.kind else {
            continue;
        };
        if known.contains(&name.as_str()) {
            values.entry(name.as_str()).or_insert(value);
        } else if let Some(message) = special(name) {
            cx.error(&key.loc, message);
        } else {
            let builder = cx.error(
                &key.loc,
                format!("unknown field `{}` in {what}", truncate(name)),
            );
            match did_you_mean(name, known.iter().copied()) {
                Some(close) => {
                    builder.hint(format!("did you mean `{close}`?"));
                    suggested.push(close);
                }
                None => builder.hint(format!("expected one of: {}", known.join(", "))),
            }
        }
    }
    Some(Fields {
        loc: node.loc.clone(),
        values,
        suggested,
    })
}

/// Plain scalars that YAML 1.1 tools read as booleans.
pub(crate) fn yaml11_bool(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false"
    ) && (value.chars().all(|c| c.is_ascii_lowercase())
        || value.chars().all(|c| c.is_ascii_uppercase())
        || value.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
}

/// Reads `node` as a string. Refuses nulls, numbers and booleans, including
/// YAML 1.1 booleans such as `no`, unless quoted.
pub fn string(cx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
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
                    .hint("write a value after the `:`; nothing, `~` or `null` there is null");
                None
            } else if yaml11_bool(value) {
                cx.error(
                    &node.loc,
                    format!("{what} must be a string, found `{value}`, which YAML 1.1 reads as a boolean"),
                )
                .hint(format!("quote it: \"{value}\""));
                None
            } else if value.parse::<f64>().is_ok() {
                cx.error(
                    &node.loc,
                    format!("{what} must be a string, found {}", node.type_name()),
                )
                .hint(format!("quote it: \"{value}\""));
                None
            } else {
                Some(value.clone())
            }
        }
        NodeKind::Seq(_) => {
            cx.error(&node.loc, format!("{what} must be a string, found a list"))
                .hint("write a single value here, not a list");
            None
        }
        NodeKind::Map(_) => {
            cx.error(
                &node.loc,
                format!("{what} must be a string, found a mapping"),
            )
            .hint("write a single value here; if the text contains `: `, quote it");
            None
        }
    }
}

/// Reads `true` or `false`, unquoted. YAML 1.1 spellings (`yes`, `on`) are
/// refused rather than guessed.
pub fn boolean(cx: &mut Ctx, node: &Node, what: &str) -> Option<bool> {
    if let NodeKind::Scalar {
        value,
        style: Style::Plain,
    } = &node.kind
    {
        match value.as_str() {
            "true" => return Some(true),
            "false" => return Some(false),
            _ => {}
        }
    }
    cx.error(
        &node.loc,
        format!(
            "{what} must be `true` or `false`, found {}",
            node.type_name()
        ),
    )
    .hint("write `true` or `false`, unquoted; `yes`, `on` and the like are not booleans in weir");
    None
}

/// Reads `node` as an integer in `min..=max`.
pub fn integer(cx: &mut Ctx, node: &Node, what: &str, min: u64, max: u64) -> Option<u64> {
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
            let hint = if n < min {
                format!("the smallest allowed value is {min}")
            } else {
                format!("the largest allowed value is {max}")
            };
            cx.error(
                &node.loc,
                format!("{what} must be between {min} and {max}, found {n}"),
            )
            .hint(hint);
            None
        }
        None => {
            let builder = cx.error(
                &node.loc,
                format!("{what} must be an integer, found {}", node.type_name()),
            );
            match &node.kind {
                NodeKind::Scalar {
                    value,
                    style: Style::Quoted,
                } if value.parse::<u64>().is_ok() => {
                    builder.hint(format!("remove the quotes: `{value}`"))
                }
                _ if max == u64::MAX => builder.hint("write a whole number"),
                _ => builder.hint(format!("write a whole number between {min} and {max}")),
            }
            None
        }
    }
}

/// Reads a duration such as `90s`, `15m`, `2h` or `1h30m`, at most 7 days.
pub fn duration(cx: &mut Ctx, node: &Node, what: &str) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(7 * 24 * 3600);
    const FORM: &str =
        "write a number with a unit (`ms`, `s`, `m`, `h`, `d`), e.g. `30s`, `15m`, `2h` or `1h30m`";
    // A bare number is a plain scalar YAML types as a number; say "add a
    // unit" rather than `string`'s "quote it", which would not help.
    if let NodeKind::Scalar {
        value,
        style: Style::Plain,
    } = &node.kind
        && value.parse::<f64>().is_ok()
    {
        let builder = cx.error(
            &node.loc,
            format!(
                "{what} must be a duration with a unit, found the number `{}`",
                truncate(value)
            ),
        );
        match value.parse::<u64>() {
            Ok(n) => builder.hint(format!(
                "add a unit: `{n}s` for seconds, `{n}m` for minutes"
            )),
            Err(_) => builder.hint(FORM),
        }
        return None;
    }
    let text = string(cx, node, what)?;
    match parse_duration(&text) {
        Some(d) if d > Duration::ZERO && d <= MAX => Some(d),
        Some(d) if d == Duration::ZERO => {
            cx.error(
                &node.loc,
                format!(
                    "{what} must be longer than zero, found `{}`",
                    truncate(&text)
                ),
            )
            .hint(FORM);
            None
        }
        Some(_) => {
            cx.error(
                &node.loc,
                format!("{what} must be at most 7 days, found `{}`", truncate(&text)),
            )
            .hint("write a duration up to `7d`");
            None
        }
        None => {
            let builder = cx.error(
                &node.loc,
                format!("{what} is not a valid duration: `{}`", truncate(&text)),
            );
            match spelled_out_duration(&text) {
                Some(fixed) => builder.hint(format!("write `{fixed}`")),
                None => builder.hint(FORM),
            }
            None
        }
    }
}

/// `10 minutes` -> `10m`: the short form of a duration written in words.
fn spelled_out_duration(text: &str) -> Option<String> {
    let (num, unit) = text.trim().split_once(char::is_whitespace)?;
    let num: u64 = num.parse().ok()?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        _ => return None,
    };
    Some(format!("{num}{unit}"))
}

/// What a store `url` names, before any diagnostics are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreUrl<'a> {
    /// A local folder: the text after `file://`, or the whole plain path.
    Local(&'a str),
    /// An `s3://` URL.
    S3,
    /// Some other `scheme://`.
    UnknownScheme(&'a str),
}

/// Classifies a store `url`, so pipelines and policies read URLs the same way.
pub fn classify_store_url(url: &str) -> StoreUrl<'_> {
    if let Some(rest) = url.strip_prefix("file://") {
        StoreUrl::Local(rest)
    } else if url.starts_with("s3://") {
        StoreUrl::S3
    } else if let Some((scheme, _)) = url.split_once("://") {
        StoreUrl::UnknownScheme(scheme)
    } else {
        StoreUrl::Local(url)
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
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
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

/// Reads a list of names of `kind`; `item` names one entry in messages
/// ("dataset name in `inputs`"). Returns the valid names with their
/// locations; invalid entries are reported and left out.
pub fn name_list(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    item: &str,
    kind: NameKind,
) -> Option<Vec<(String, Location)>> {
    let NodeKind::Seq(items) = &node.kind else {
        let builder = cx.error(
            &node.loc,
            format!("{what} must be a list, found {}", node.type_name()),
        );
        if let NodeKind::Scalar { value, .. } = &node.kind {
            builder.hint(format!("write a list: [{}]", truncate(value)));
        }
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for node in items {
        if let Some(name) = name(cx, node, item, kind) {
            if out.iter().any(|(n, _)| *n == name) {
                cx.error(&node.loc, format!("`{name}` is listed twice in {what}"))
                    .hint("remove the repeated entry");
            } else {
                out.push((name, node.loc.clone()));
            }
        }
    }
    Some(out)
}

/// The kinds of names weir checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Pipelines and stages: `[a-z][a-z0-9_-]{0,62}`.
    Stage,
    /// Datasets and stores, usable as SQL identifiers: `[a-z][a-z0-9_]{0,62}`.
    Identifier,
    /// Principals: `[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}`.
    Principal,
}

/// Whether `name` is a valid name of `kind`.
pub fn valid_name(name: &str, kind: NameKind) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    match kind {
        NameKind::Stage => {
            name.len() <= 63
                && first.is_ascii_lowercase()
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
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
pub fn name(cx: &mut Ctx, node: &Node, what: &str, kind: NameKind) -> Option<String> {
    let value = string(cx, node, what)?;
    if valid_name(&value, kind) {
        return Some(value);
    }
    let rule = match kind {
        NameKind::Stage => {
            "a name starts with a lowercase letter, then lowercase letters, digits, `_` or `-`; at most 63 characters"
        }
        NameKind::Identifier => {
            "a name starts with a lowercase letter, then lowercase letters, digits or `_` (it is used as a SQL table name); at most 63 characters"
        }
        NameKind::Principal => {
            "a principal is letters, digits and `_ . @ : -`, starting with a letter or digit; at most 128 characters"
        }
    };
    let builder = cx.error(&node.loc, format!("invalid {what} `{}`", truncate(&value)));
    match suggest_name(&value, kind) {
        Some(fixed) => builder.hint(format!("{rule}; try `{fixed}`")),
        None => builder.hint(rule),
    }
    None
}

/// A valid spelling of `name` when only case or separators are wrong:
/// `Raw-Events` -> `raw_events` (identifier) or `raw-events` (stage).
fn suggest_name(name: &str, kind: NameKind) -> Option<String> {
    let fixed: String = match kind {
        NameKind::Stage => name
            .chars()
            .map(|c| {
                if c == ' ' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        NameKind::Identifier => name
            .chars()
            .map(|c| {
                if c == ' ' || c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        NameKind::Principal => name
            .chars()
            .map(|c| if c == ' ' { '-' } else { c })
            .collect(),
    };
    (fixed != name && valid_name(&fixed, kind)).then_some(fixed)
}

/// Checks a dataset path: relative, `/`-separated, no empty, `.` or `..`
/// segments, no backslashes, percent signs or control characters.
pub fn object_path(cx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    let value = string(cx, node, what)?;
    let problem = path_problem(&value);
    match problem {
        None => Some(value),
        Some(problem) => {
            cx.error(
                &node.loc,
                format!("invalid {what} `{}`: {problem}", truncate(&value)),
            )
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
    fn durations_in_words_get_a_suggestion() {
        assert_eq!(spelled_out_duration("10 minutes").as_deref(), Some("10m"));
        assert_eq!(spelled_out_duration("2 Hours").as_deref(), Some("2h"));
        assert_eq!(spelled_out_duration("1 fortnight"), None);
        assert_eq!(spelled_out_duration("ten minutes"), None);
    }

    #[test]
    fn names_with_wrong_case_or_separators_get_a_suggestion() {
        assert_eq!(
            suggest_name("Raw-Events", NameKind::Identifier).as_deref(),
            Some("raw_events")
        );
        assert_eq!(
            suggest_name("Clean Orders", NameKind::Stage).as_deref(),
            Some("clean-orders")
        );
        assert_eq!(suggest_name("9lives", NameKind::Stage), None);
        assert_eq!(suggest_name("ok", NameKind::Stage), None);
    }

    #[test]
    fn yaml11_booleans() {
        for b in [
            "no", "No", "NO", "yes", "on", "OFF", "y", "N", "true", "False",
        ] {
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
