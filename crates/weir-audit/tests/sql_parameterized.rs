//! Security invariant 8: every SQL statement is parameterized.
//!
//! Scans this crate's own `src/**/*.rs` with [`weir_testkit::sql`]: no SQL
//! text built with `format!`, `push_str` or `+`, no `AssertSqlSafe`, and
//! every `sqlx::query*`/`raw_sql`/`begin_with` and every rusqlite
//! `prepare*`/`execute_batch`/`query_row`/`query_one`/`execute(SQL, ..)`
//! (the SQLite writer's connection) takes a literal or a literal-only
//! constant. The scanner's own tests show it fails on hostile
//! snippets; one more here proves it runs on this crate's rules.

use std::path::Path;

use weir_testkit::sql;

#[test]
fn every_sql_statement_in_src_is_static_and_parameterized() {
    let scan = sql::scan_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        |_, _| true,
    );
    assert!(scan.files.len() >= 10, "scanner found the sources");
    assert!(
        scan.calls >= 20,
        "scanner saw the SQL calls ({})",
        scan.calls
    );
    assert!(
        scan.problems.is_empty(),
        "non-parameterized SQL:\n{}",
        scan.problems.join("\n")
    );
}

#[test]
fn scanner_flags_format_built_sql() {
    let bad = r#"let q = format!("SELECT * FROM audit_events WHERE actor = '{}'", actor);"#;
    assert_eq!(sql::check(bad).len(), 1);
}

#[test]
fn scanner_flags_dynamic_query_arguments() {
    assert!(!sql::check("sqlx::query(&sql).execute(&pool)").is_empty());
    assert!(!sql::check("sqlx::query(AssertSqlSafe(s))").is_empty());
}
