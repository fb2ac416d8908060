//! The parameterized-SQL check (security invariant 8): every SQL statement a
//! crate runs is static text with bound values.
//!
//! [`scan_dir`] reads a crate's sources and reports
//!
//! - a `format!`/`format_args!`/`write!`/`writeln!`/`push_str`/`+ "..."`
//!   that builds text containing SQL keywords (values spliced into SQL);
//! - `AssertSqlSafe` (sqlx 0.9 accepts only `&'static str` SQL without it,
//!   so this is the one way to pass dynamic SQL);
//! - a `sqlx::query*`, `sqlx::raw_sql` or `begin_with` call, or a
//!   rusqlite `prepare*`, `execute_batch`, `query_row`, `query_one` or
//!   two-argument `execute` method call, that takes
//!   anything but a string literal or an UPPER_CASE constant; every such
//!   constant must be built from literals with `concat!` and `macro_rules!`
//!   called with nothing or with string literals, and every `macro_rules!`
//!   may take only `literal` fragments (compile-time text; a runtime value
//!   does not match `:literal`), so no constant can contain a runtime value.
//!
//! [`check`] runs the same rules on a snippet, so each crate's test can show
//! the scanner fails on hostile code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const SQL_WORDS: [&str; 10] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "WHERE", "VALUES", "DROP", "TRUNCATE", "ALTER",
    "CREATE",
];
const BUILDERS: [&str; 5] = [
    "format!(",
    "format_args!(",
    "write!(",
    "writeln!(",
    "push_str(",
];
/// Built-in macros that turn a literal into text from outside the source
/// (the environment, a file): not allowed in SQL constants.
const READS_OUTSIDE_TEXT: [&str; 5] = [
    "env",
    "option_env",
    "include_str",
    "include",
    "include_bytes",
];
/// sqlx's entry points, then rusqlite's (`.prepare` also matches
/// `.prepare_cached`).
const SQL_CALLS: [&str; 7] = [
    "sqlx::query",
    "sqlx::raw_sql",
    ".begin_with",
    ".prepare",
    ".execute_batch",
    ".query_row",
    ".query_one",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder is readable") {
        let path = entry.expect("source folder is readable").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Removes the contents of string literals (keeps the quotes), so that
/// parens and keywords inside literals do not confuse the scanner.
fn blank_strings(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in src.chars() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
                out.push('"');
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        out.push(c);
    }
    out
}

/// The text from `open` (an index of `(`) to its matching `)`, skipping
/// parens inside string literals.
fn group(src: &str, open: usize) -> &str {
    let mut depth = 0usize;
    for (i, b) in code_bytes(&src[open..]) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return &src[open..=open + i];
                }
            }
            _ => {}
        }
    }
    &src[open..]
}

/// The bytes of `text` with their indices, leaving out string literals
/// (their quotes included), so that brackets, commas and `;` inside them
/// do not count.
fn code_bytes(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut in_str, mut escaped) = (false, false);
    text.bytes().enumerate().filter(move |&(_, b)| {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            return false;
        }
        in_str = b == b'"';
        !in_str
    })
}

fn has_sql_word(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|w| SQL_WORDS.contains(&w))
}

fn is_const_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `const NAME: &str = <rhs>;` definitions.
pub fn str_consts(src: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (at, _) in src.match_indices("const ") {
        let rest = &src[at + 6..];
        let Some((name, tail)) = rest.split_once(':') else {
            continue;
        };
        let Some(rhs) = tail.trim_start().strip_prefix("&str =") else {
            continue;
        };
        let end = statement_end(rhs);
        out.insert(name.trim().to_owned(), rhs[..end].trim().to_owned());
    }
    out
}

/// Index of the `;` ending a const initializer (outside literals and parens).
fn statement_end(rhs: &str) -> usize {
    let mut depth = 0i32;
    for (i, b) in code_bytes(rhs) {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b';' if depth == 0 => return i,
            _ => {}
        }
    }
    rhs.len()
}

/// Whether `expr` is only literals, `concat!` and macro calls that take
/// nothing or one string literal.
fn literal_only(expr: &str) -> bool {
    let mut rest = blank_strings(expr).replace("concat!", "");
    // Macro calls `name!()` and `name!("...")` (contents already blanked),
    // innermost first.
    for call in ["!()", "!(\"\")"] {
        while let Some(bang) = rest.find(call) {
            let start = rest[..bang]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            if READS_OUTSIDE_TEXT.contains(&&rest[start..bang]) {
                return false;
            }
            rest.replace_range(start..bang + call.len(), "");
        }
    }
    let rest = rest.replace("\"\"", "");
    rest.chars()
        .all(|c| c.is_whitespace() || matches!(c, '(' | ')' | ','))
}

/// Every `macro_rules!` may take only `literal` fragments: each `$` starts
/// either a `$name:literal` declaration or a use of such a name.
/// Repetitions (`$(...)`), `$crate` and every other fragment kind (`expr`,
/// `tt`, `ident`, ...) could carry code, so each is reported.
fn macros_have_no_parameters(src: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (at, _) in src.match_indices("macro_rules!") {
        let Some(open) = src[at..].find('{').map(|i| at + i) else {
            continue;
        };
        let (mut depth, mut end) = (0, src.len());
        for (i, b) in src.bytes().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        if !only_literal_fragments(&blank_strings(&src[open..end])) {
            bad.push(src[at..open].trim().to_owned());
        }
    }
    bad
}

/// Whether every `$` in a macro body is `$name:literal` or a plain `$name`.
fn only_literal_fragments(body: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    body.match_indices('$').all(|(at, _)| {
        let after = &body[at + 1..];
        let name_len = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        if name_len == 0 || &after[..name_len] == "crate" {
            return false;
        }
        match after[name_len..].strip_prefix(':') {
            None => true,
            Some(kind) => {
                let kind = kind.trim_start();
                kind.starts_with("literal") && !kind[7..].starts_with(is_ident)
            }
        }
    })
}

/// For `sqlx::query_scalar::<T>(` etc.: the index of the call's `(`, or
/// `None` if this is a path (`sqlx::query::Query`), not a call.
fn call_paren(src: &str, mut i: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
    {
        i += 1;
    }
    if src[i..].starts_with("::<") {
        i += src[i..].find('>')? + 1;
    }
    (bytes.get(i) == Some(&b'(')).then_some(i)
}

/// Every problem found in one file, given the string constants of its crate
/// ([`str_consts`] of every file).
pub fn problems(src: &str, consts: &HashMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    if src.contains(concat!("AssertSql", "Safe")) {
        found.push("uses AssertSqlSafe (dynamic SQL)".to_owned());
    }
    for builder in BUILDERS {
        for (at, _) in src.match_indices(builder) {
            let args = group(src, at + builder.len() - 1);
            if has_sql_word(args) {
                found.push(format!("{builder} builds SQL text: {args}"));
            }
        }
    }
    for (at, _) in src.match_indices("+ \"") {
        let literal = &src[at + 2..];
        let end = literal[1..].find('"').map_or(literal.len(), |i| i + 2);
        if has_sql_word(&literal[..end]) {
            found.push(format!(
                "string concatenation builds SQL: {}",
                &literal[..end]
            ));
        }
    }
    for call in SQL_CALLS {
        for (at, _) in src.match_indices(call) {
            let Some(open) = call_paren(src, at + call.len()) else {
                continue;
            };
            // The SQL is the first argument (`query_row(SQL, params, f)`).
            let (sql, _) = split_first_argument(group(src, open));
            check_sql_argument(call, sql, consts, &mut found);
        }
    }
    // rusqlite's `Connection::execute(SQL, params)`. sqlx's
    // `.execute(executor)` and a prepared statement's `.execute(params)`
    // take one argument, which is not SQL.
    for (at, _) in src.match_indices(".execute(") {
        let (first, more) = split_first_argument(group(src, at + ".execute".len()));
        if more {
            check_sql_argument(".execute", first, consts, &mut found);
        }
    }
    found.extend(
        macros_have_no_parameters(src)
            .into_iter()
            .map(|m| format!("{m} takes parameters")),
    );
    found
}

/// A call's first argument, given the call's parenthesized group, and
/// whether more arguments follow it (commas inside nested brackets or
/// string literals do not count).
fn split_first_argument(group: &str) -> (&str, bool) {
    let inner = group
        .strip_prefix('(')
        .map_or(group, |g| g.strip_suffix(')').unwrap_or(g));
    let mut depth = 0usize;
    for (i, b) in code_bytes(inner) {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                let more = !inner[i + 1..].trim().is_empty();
                return (inner[..i].trim(), more);
            }
            _ => {}
        }
    }
    (inner.trim(), false)
}

/// Whether `arg` is exactly one string literal (`"..."`, `r"..."` or
/// `r#"..."#`), not a literal followed by more (`"..." .to_owned() + x`).
fn is_one_literal(arg: &str) -> bool {
    if arg.starts_with('"') {
        return blank_strings(arg) == "\"\"";
    }
    let raw = |open: &str, close: &str| {
        arg.strip_prefix(open)
            .and_then(|rest| rest.strip_suffix(close))
            .is_some_and(|body| !body.contains(close))
    };
    raw("r\"", "\"") || raw("r#\"", "\"#")
}

/// Records a problem unless `arg`, the SQL argument of `call`, is a
/// string literal or an UPPER_CASE constant built only from literals.
fn check_sql_argument(
    call: &str,
    arg: &str,
    consts: &HashMap<String, String>,
    found: &mut Vec<String>,
) {
    if is_one_literal(arg) {
        return;
    }
    match consts.get(arg) {
        Some(rhs) if is_const_name(arg) && literal_only(rhs) => {}
        Some(_) => found.push(format!("{call}({arg}): constant is not literal-only")),
        None => found.push(format!(
            "{call}({arg}): not a literal or a literal constant"
        )),
    }
}

/// What [`scan_dir`] found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Files scanned.
    pub files: Vec<PathBuf>,
    /// SQL calls seen (see the module docs).
    pub calls: usize,
    /// Every problem, as `path: problem`.
    pub problems: Vec<String>,
}

/// Scans every `.rs` file under `dir` whose text passes `include`; string
/// constants are shared across the scanned files.
///
/// # Panics
///
/// If `dir` cannot be read.
pub fn scan_dir(dir: &Path, include: impl Fn(&Path, &str) -> bool) -> Scan {
    let mut files = Vec::new();
    sources(dir, &mut files);
    files.sort();
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("source file is readable");
            (f, text)
        })
        .filter(|(f, text)| include(f, text))
        .collect();
    let mut consts = HashMap::new();
    for (_, src) in &texts {
        consts.extend(str_consts(src));
    }
    let mut scan = Scan::default();
    for (path, src) in &texts {
        scan.calls += SQL_CALLS
            .iter()
            .map(|c| src.matches(c).count())
            .sum::<usize>();
        for p in problems(src, &consts) {
            scan.problems.push(format!("{}: {p}", path.display()));
        }
        scan.files.push(path.clone());
    }
    scan
}

/// The problems in one snippet (its own constants only).
pub fn check(snippet: &str) -> Vec<String> {
    problems(snippet, &str_consts(snippet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_format_built_sql() {
        let bad = r#"let q = format!("SELECT * FROM t WHERE actor = '{}'", actor);"#;
        assert_eq!(check(bad).len(), 1);
    }

    #[test]
    fn flags_concatenated_sql() {
        assert!(!check(r#"let q = prefix.to_owned() + " WHERE actor = 'x'";"#).is_empty());
        assert!(!check(r#"q.push_str("DELETE FROM t");"#).is_empty());
    }

    #[test]
    fn flags_dynamic_query_arguments() {
        assert!(!check("sqlx::query(&sql).execute(&pool)").is_empty());
        assert!(!check("sqlx::query(AssertSqlSafe(s))").is_empty());
        let via_const = "const Q: &str = concat!(\"SELECT \", env!(\"X\"));\nsqlx::query(Q)";
        assert!(!check(via_const).is_empty());
    }

    #[test]
    fn flags_dynamic_rusqlite_statements() {
        for bad in [
            "conn.prepare_cached(&sql)",
            "conn.prepare(sql.as_str())",
            "conn.execute_batch(&text)",
            "conn.query_row(q, [], |r| r.get(0))",
        ] {
            assert!(!check(bad).is_empty(), "{bad}");
        }
        assert!(!check("conn.query_row(&format!(\"SELECT {x}\"), [], f)").is_empty());
        assert!(!check("conn.execute(&sql, params![a, b])").is_empty());
        // A literal that is only the start of the argument.
        let glued = "conn.execute(\"DELETE FROM t WHERE id = \".to_owned() + &id, [])";
        assert!(!check(glued).is_empty());
        assert!(!check("conn.prepare(\"SELECT {}\".replace(\"{}\", &v))").is_empty());
        assert!(!check("conn.query_one(&sql, [], f)").is_empty());
        assert!(!check("conn.execute(\n    sql.as_str(),\n    (a, b),\n)").is_empty());
        // One argument: an executor (sqlx) or a statement's parameters.
        assert_eq!(check("q.execute(&mut *conn)"), Vec::<String>::new());
        assert_eq!(check("q.execute(\n    &mut conn,\n)"), Vec::<String>::new());
        assert_eq!(
            check("statement.execute((a, b, f(c, d)))"),
            Vec::<String>::new()
        );
        let good = "const Q: &str = \"SELECT 1\";\nconn.prepare_cached(Q); \
                    conn.execute_batch(\"COMMIT\"); conn.query_row(Q, [], |r| r.get(0)); \
                    conn.execute(Q, (a, b)); conn.execute(\"DELETE FROM t WHERE a = ?1, b\", [a]);";
        assert_eq!(check(good), Vec::<String>::new());
    }

    #[test]
    fn flags_parameterized_macros() {
        let bad = "macro_rules! sql { ($t:expr) => { concat!(\"SELECT \", $t) }; }";
        assert!(!check(bad).is_empty());
        for bad in [
            "macro_rules! m { ($($t:tt)*) => { concat!($($t)*) }; }",
            "macro_rules! m { ($t:ident) => { $t!() }; }",
            "macro_rules! m { ($t:literals) => { $t }; }",
            "macro_rules! m { ($t: tt) => { $t }; }",
            "macro_rules! m { () => { $crate::x() }; }",
        ] {
            assert!(!check(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn accepts_macros_of_literal_fragments() {
        let good = "macro_rules! rows_2 { ($row:literal) => { concat!($row, \",\", $row) }; }\n\
                    const Q: &str = concat!(\"INSERT INTO t VALUES \", rows_2!(\"(?,?)\"));\n\
                    sqlx::query(Q);";
        assert_eq!(check(good), Vec::<String>::new());
        let via_call = "const Q: &str = concat!(\"SELECT \", m!(x));\nsqlx::query(Q)";
        assert!(!check(via_call).is_empty(), "a non-literal macro argument");
    }

    #[test]
    fn accepts_static_parameterized_sql() {
        let good = "macro_rules! cols { () => { \"a, b\" }; }\n\
                    const Q: &str = concat!(\"SELECT \", cols!(), \" FROM t WHERE a = ?1\");\n\
                    sqlx::query(Q).bind(x); sqlx::query(\"SELECT 1\"); sqlx::query::<Postgres>(Q);";
        assert_eq!(check(good), Vec::<String>::new());
    }
}
