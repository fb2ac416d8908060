//! Hostile inputs, one test per attack, each loaded through
//! [`weir_spec::load_file`] from a file generated at test time.
//!
//! Each must be refused with a clear message, quickly and with bounded
//! memory. The elapsed time is printed (`--nocapture`), never asserted: a
//! loaded CI machine must not turn a correct refusal into a failure.

use std::path::{Path, PathBuf};
use std::time::Instant;

use proptest::prelude::*;
use weir_spec::{Diagnostic, Error, Severity};

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("weir-spec-hostile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `contents` to a fresh file, loads it, and returns the diagnostics
/// of the refusal.
fn refuse(name: &str, contents: &[u8]) -> Vec<Diagnostic> {
    let dir = TempDir::new(name);
    let path = dir.0.join(format!("{name}.yaml"));
    std::fs::write(&path, contents).expect("write hostile file");
    refuse_path(name, &path)
}

fn refuse_path(name: &str, path: &Path) -> Vec<Diagnostic> {
    let started = Instant::now();
    let result = weir_spec::load_file(path);
    eprintln!("{name}: refused in {:?}", started.elapsed());
    match result {
        Ok(_) => panic!("{name}: hostile input was accepted"),
        Err(Error::Invalid {
            diagnostics, file, ..
        }) => {
            assert_eq!(file, path.display().to_string());
            assert!(
                diagnostics.iter().any(|d| d.severity == Severity::Error),
                "{name}: no error"
            );
            diagnostics
        }
        Err(e) => panic!("{name}: expected a diagnostic, got {e}"),
    }
}

fn only_error(name: &str, diags: &[Diagnostic]) -> Diagnostic {
    assert_eq!(diags.len(), 1, "{name}: {diags:#?}");
    diags.first().cloned().expect("one diagnostic")
}

#[test]
fn oversized_file_60_mib() {
    // A valid-looking start followed by 60 MiB of comment: refused from the
    // file's size, before it is read.
    let dir = TempDir::new("oversized");
    let path = dir.0.join("big.yaml");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        f.write_all(b"name: big\n").expect("write");
        let line = format!("# {}\n", "x".repeat(1021));
        for _ in 0..60 * 1024 {
            f.write_all(line.as_bytes()).expect("write");
        }
    }
    let diags = refuse_path("oversized_file_60_mib", &path);
    let d = only_error("oversized", &diags);
    assert_eq!(
        d.message,
        format!(
            "file is {} bytes; the limit is 1048576 bytes",
            10 + 60 * 1024 * 1024
        )
    );
    assert_eq!((d.loc.line, d.loc.column), (1, 1));
    assert!(d.hint.is_some());
}

#[test]
fn endless_device_file() {
    // `/dev/zero` reports a size of 0 and never ends: the read is capped.
    let path = Path::new("/dev/zero");
    if !path.exists() {
        eprintln!("endless_device_file: SKIPPED, no /dev/zero on this system");
        return;
    }
    let diags = refuse_path("endless_device_file", path);
    let d = only_error("endless_device_file", &diags);
    assert_eq!(
        d.message,
        "file is more than 1048576 bytes; the limit is 1048576 bytes"
    );
}

#[test]
fn alias_bomb_billion_laughs() {
    // Ten levels of ten aliases each: 10^10 nodes if expanded.
    let mut src = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        src.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let diags = refuse("alias_bomb", src.as_bytes());
    let d = only_error("alias_bomb", &diags);
    assert_eq!(d.message, "the document expands to more than 100000 nodes");
    assert!(
        d.hint.as_deref().is_some_and(|h| h.contains("alias")),
        "{d:?}"
    );
}

#[test]
fn alias_bomb_in_a_pipeline_field() {
    // The same attack, hidden in a field of an otherwise plausible pipeline.
    let mut src = String::from(
        "name: p\nprincipal: svc\nx0: &x0 [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a]\n",
    );
    for i in 1..8 {
        let prev = format!("*x{}", i - 1);
        let items = [prev.as_str(); 16].join(", ");
        src.push_str(&format!("x{i}: &x{i} [{items}]\n"));
    }
    src.push_str("stages: *x7\n");
    let diags = refuse("alias_bomb_field", src.as_bytes());
    let d = only_error("alias_bomb_field", &diags);
    assert_eq!(d.message, "the document expands to more than 100000 nodes");
}

#[test]
fn node_flood_without_aliases() {
    // 200,000 one-character items fit in 1 MiB but exceed the node limit.
    let src = format!("[{}]", vec!["x"; 200_000].join(","));
    assert!(src.len() < 1024 * 1024);
    let diags = refuse("node_flood", src.as_bytes());
    let d = only_error("node_flood", &diags);
    assert_eq!(d.message, "the document expands to more than 100000 nodes");
}

fn assert_too_deep(name: &str, diags: &[Diagnostic]) {
    let d = only_error(name, diags);
    assert_eq!(d.message, "nesting is deeper than 64 levels", "{name}");
    assert_eq!(d.loc.line, 1, "{name}: {d:?}");
}

#[test]
fn deep_nesting_flow_sequences_20000() {
    let src = "[".repeat(20_000);
    assert_too_deep("flow_sequences", &refuse("flow_sequences", src.as_bytes()));
}

#[test]
fn deep_nesting_flow_sequences_closed_20000() {
    let src = format!("{}x{}", "[".repeat(20_000), "]".repeat(20_000));
    assert_too_deep(
        "flow_sequences_closed",
        &refuse("flow_sequences_closed", src.as_bytes()),
    );
}

#[test]
fn deep_nesting_flow_mappings_20000() {
    let src = format!("{}x{}", "{a: ".repeat(20_000), "}".repeat(20_000));
    assert_too_deep("flow_mappings", &refuse("flow_mappings", src.as_bytes()));
}

#[test]
fn deep_nesting_block_sequences_20000() {
    // `- - - - x`: compact nested block sequences, one level per `- `.
    let src = format!("{}x\n", "- ".repeat(20_000));
    assert_too_deep(
        "block_sequences",
        &refuse("block_sequences", src.as_bytes()),
    );
}

#[test]
fn deep_nesting_block_mappings() {
    // Indented block mappings cost n^2/2 bytes of indentation, so 20,000
    // levels cannot fit in 1 MiB; 1,000 levels (about 500 KB) still reach
    // far past the depth limit.
    let mut src = String::new();
    for level in 0..1_000 {
        src.push_str(&" ".repeat(level));
        src.push_str("a:\n");
    }
    assert!(src.len() < 1024 * 1024);
    let diags = refuse("block_mappings", src.as_bytes());
    let d = only_error("block_mappings", &diags);
    assert_eq!(d.message, "nesting is deeper than 64 levels");
    assert_eq!(d.loc.line, 65, "{d:?}");
}

#[test]
fn deep_nesting_block_mappings_20000_is_refused_by_size() {
    let mut src = String::new();
    for level in 0..20_000 {
        src.push_str(&" ".repeat(level));
        src.push_str("a:\n");
    }
    let diags = refuse("block_mappings_20000", src.as_bytes());
    let d = only_error("block_mappings_20000", &diags);
    assert!(d.message.contains("the limit is 1048576 bytes"), "{d:?}");
}

#[test]
fn not_utf8() {
    let diags_or_read = {
        let dir = TempDir::new("not_utf8");
        let path = dir.0.join("bin.yaml");
        std::fs::write(&path, [0xff, 0xfe, b'a', b':', b' ', 0x80]).expect("write");
        weir_spec::load_file(&path)
    };
    match diags_or_read {
        Err(Error::Read { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidData)
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

const EXAMPLE: &str = include_str!("../../../pipelines/customer_features.yaml");

/// One edit to the example pipeline.
#[derive(Debug, Clone)]
enum Mutation {
    /// Insert text at a byte position (rounded down to a char boundary).
    Insert(usize, String),
    /// Delete a range of bytes.
    Delete(usize, usize),
    /// Repeat a line.
    DuplicateLine(usize),
    /// Remove a line.
    DropLine(usize),
    /// Change a line's indentation.
    Reindent(usize, usize),
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(":".to_owned()),
        Just("- ".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("\t".to_owned()),
        Just("---\n".to_owned()),
        Just("no".to_owned()),
        Just("~".to_owned()),
        Just("!!binary ".to_owned()),
        Just("? ".to_owned()),
        Just("|".to_owned()),
        Just("#".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("é".to_owned()),
        ".{0,8}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), fragment()).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), 0usize..64).prop_map(|(at, n)| Mutation::Delete(at, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::DropLine),
        (any::<usize>(), 0usize..12).prop_map(|(at, n)| Mutation::Reindent(at, n)),
    ]
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let pick = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
    match m {
        Mutation::Insert(at, s) => {
            let at = floor_char_boundary(text, at % (text.len() + 1));
            format!("{}{s}{}", &text[..at], &text[at..])
        }
        Mutation::Delete(at, n) => {
            let start = floor_char_boundary(text, at % (text.len() + 1));
            let end = floor_char_boundary(text, start + n);
            format!("{}{}", &text[..start], &text[end..])
        }
        Mutation::DuplicateLine(i) => {
            let i = pick(*i, lines.len());
            let line = lines[i].clone();
            lines.insert(i, line);
            lines.join("\n")
        }
        Mutation::DropLine(i) => {
            let i = pick(*i, lines.len());
            lines.remove(i);
            lines.join("\n")
        }
        Mutation::Reindent(i, n) => {
            let i = pick(*i, lines.len());
            let trimmed = lines[i].trim_start().to_owned();
            lines[i] = format!("{}{trimmed}", " ".repeat(*n));
            lines.join("\n")
        }
    }
}

/// Lines as YAML counts them: `\r\n`, `\r` and `\n` each end one.
fn line_count(text: &str) -> usize {
    text.replace("\r\n", "\n").split(['\r', '\n']).count()
}

/// Every diagnostic points into the text it came from.
fn check_locations(
    text: &str,
    result: weir_spec::Result<weir_spec::Loaded>,
) -> Result<(), TestCaseError> {
    let diags = match result {
        Ok(loaded) => loaded.warnings,
        Err(Error::Invalid { diagnostics, .. }) => {
            prop_assert!(diagnostics.iter().any(|d| d.severity == Severity::Error));
            diagnostics
        }
        Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
    };
    let lines = line_count(text);
    for d in &diags {
        prop_assert!(
            d.loc.line >= 1 && d.loc.line <= lines,
            "{d} outside {lines} lines"
        );
        prop_assert!(d.loc.column >= 1, "{d}");
        prop_assert!(!d.message.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn load_str_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let result = weir_spec::load_str("fuzz.yaml", &text, Path::new("."));
        check_locations(&text, result)?;
    }

    #[test]
    fn load_str_never_panics_on_yaml_like_text(
        parts in proptest::collection::vec(fragment(), 0..80)
    ) {
        let text = parts.concat();
        let result = weir_spec::load_str("fuzz.yaml", &text, Path::new("."));
        check_locations(&text, result)?;
    }

    #[test]
    fn load_str_never_panics_on_mutated_example(
        mutations in proptest::collection::vec(mutation(), 1..6)
    ) {
        let text = mutations.iter().fold(EXAMPLE.to_owned(), |t, m| apply(&t, m));
        let result = weir_spec::load_str("pipelines/customer_features.yaml", &text, Path::new("."));
        check_locations(&text, result)?;
    }
}

#[test]
fn example_is_valid_before_mutation() {
    // The mutation test is only meaningful if the unmutated text loads.
    assert!(weir_spec::load_str("example.yaml", EXAMPLE, Path::new(".")).is_ok());
}
