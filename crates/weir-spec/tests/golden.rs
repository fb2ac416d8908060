//! Golden tests: every malformed pipeline under `tests/pipelines/malformed/`
//! is loaded with [`weir_spec::load_file`] and its diagnostics are compared,
//! exactly, with the `.expected` file next to it.
//!
//! Run with `WEIR_BLESS=1` to rewrite the expected files from the loader's
//! current output; then read every changed file before committing it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use weir_spec::{Diagnostic, Error, Severity};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/pipelines/malformed")
}

/// `line:column: level: message`, then `  hint: ...` when there is one.
fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(
            out,
            "{}:{}: {level}: {}",
            d.loc.line, d.loc.column, d.message
        )
        .unwrap();
        if let Some(hint) = &d.hint {
            writeln!(out, "  hint: {hint}").unwrap();
        }
    }
    out
}

fn fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

#[test]
fn malformed_pipelines_match_their_expected_diagnostics() {
    let bless = std::env::var_os("WEIR_BLESS").is_some_and(|v| v == "1");
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 20,
        "expected at least 20 fixtures, found {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let actual = match weir_spec::load_file(fixture) {
            Ok(loaded) => {
                failures.push(format!(
                    "{name}: loaded without errors (warnings: {})",
                    render(&loaded.warnings)
                ));
                continue;
            }
            Err(Error::Invalid {
                file, diagnostics, ..
            }) => {
                assert_eq!(
                    file,
                    fixture.display().to_string(),
                    "{name}: diagnostics name the file"
                );
                for d in &diagnostics {
                    assert_eq!(d.loc.file, file, "{name}: every diagnostic names the file");
                }
                assert!(
                    diagnostics.iter().any(|d| d.severity == Severity::Error),
                    "{name}: Invalid without an error"
                );
                render(&diagnostics)
            }
            Err(other) => {
                failures.push(format!("{name}: unexpected error {other}"));
                continue;
            }
        };
        let expected_path = fixture.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with WEIR_BLESS=1 to create it)",
                expected_path.display()
            )
        });
        if expected != actual {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expected_file_has_a_fixture() {
    for entry in std::fs::read_dir(fixtures_dir()).expect("fixtures folder") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(
                path.with_extension("yaml").exists(),
                "{} has no fixture",
                path.display()
            );
        }
    }
}

#[test]
fn example_pipeline_validates_without_warnings() {
    let path = repo_root().join("pipelines/customer_features.yaml");
    let loaded = match weir_spec::load_file(&path) {
        Ok(loaded) => loaded,
        Err(Error::Invalid { diagnostics, .. }) => panic!("{}", render(&diagnostics)),
        Err(e) => panic!("{e}"),
    };
    assert!(loaded.warnings.is_empty(), "{}", render(&loaded.warnings));
    let p = &loaded.pipeline;
    assert_eq!(p.name, "customer-features");
    assert_eq!(p.principal, "svc-customer-features");
    assert_eq!(p.stages.len(), 4);
    assert_eq!(p.datasets.len(), 7);
    // clean-customers and clean-orders are roots; features waits for both;
    // the split waits for features.
    assert_eq!(p.dag.levels(), &[0, 0, 1, 2]);
    let customers = p.datasets["customers"]
        .contract
        .as_ref()
        .expect("a contract");
    assert_eq!(customers.primary_key, ["customer_id"]);
    assert!(customers.is_sensitive("email"));
    assert_eq!(p.defaults.retries, 1);
    assert_eq!(p.defaults.timeout, std::time::Duration::from_secs(600));
}

#[test]
fn complete_examples_in_the_reference_validate() {
    // Every ```yaml block of docs/pipelines.md that starts with `version: 1`
    // is a whole pipeline and must load cleanly, so the docs cannot drift.
    let path = repo_root().join("docs/pipelines.md");
    let doc = std::fs::read_to_string(&path).expect("docs/pipelines.md");
    let mut checked = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let Some((yaml, _)) = block.split_once("```") else {
            panic!("unterminated yaml block in {}", path.display())
        };
        if !yaml.starts_with("version: 1\n") {
            continue;
        }
        match weir_spec::load_str("docs/pipelines.md", yaml, Path::new(".")) {
            Ok(loaded) => assert!(loaded.warnings.is_empty(), "{}", render(&loaded.warnings)),
            Err(Error::Invalid { diagnostics, .. }) => panic!("{yaml}\n{}", render(&diagnostics)),
            Err(e) => panic!("{e}"),
        }
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected the first pipeline and the worked example, found {checked}"
    );
}
