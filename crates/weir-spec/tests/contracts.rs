//! Data contracts: the model a valid contract becomes (inline and from a
//! file), diagnostics in contract files, and hostile contract files, one
//! test per attack.
//!
//! Errors of inline contracts are covered by the golden fixtures under
//! `tests/pipelines/malformed/` (`contract_*`, `quarantine_rules`,
//! `split_errors`, `validate_without_contract`).

use std::path::{Path, PathBuf};

use weir_spec::{
    ColumnType, Diagnostic, Error, Literal, OnViolation, Range, Severity, SplitPart, StageKind,
    TimeUnit,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("weir-spec-contracts-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("contracts")).expect("create temp dir");
        Self(dir)
    }

    fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::write(&path, contents).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pipeline whose dataset `raw` has `contract: <contract>`, read by one
/// sql stage.
fn pipeline(contract: &str) -> String {
    format!(
        "version: 1\n\
         name: demo\n\
         principal: svc-demo\n\
         stores: {{ lake: {{ url: ./data }} }}\n\
         datasets:\n  \
           raw: {{ store: lake, path: raw.csv, contract: {contract} }}\n  \
           out: {{ store: lake, path: out }}\n\
         stages:\n  \
           - {{ name: s, kind: sql, inputs: [raw], outputs: [out], sql: SELECT * FROM raw }}\n"
    )
}

/// Loads `pipeline.yaml` from `dir` and returns its diagnostics; it must fail.
fn refuse(dir: &TempDir, yaml: &str) -> (PathBuf, Vec<Diagnostic>) {
    let path = dir.write("pipeline.yaml", yaml);
    match weir_spec::load_file(&path) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(Error::Invalid {
            diagnostics, file, ..
        }) => {
            assert_eq!(file, path.display().to_string());
            assert!(diagnostics.iter().any(|d| d.severity == Severity::Error));
            (path, diagnostics)
        }
        Err(e) => panic!("expected diagnostics, got {e}"),
    }
}

fn only(diags: &[Diagnostic]) -> &Diagnostic {
    assert_eq!(diags.len(), 1, "{diags:#?}");
    &diags[0]
}

/// `line:column: message` of a diagnostic.
fn at(d: &Diagnostic) -> String {
    format!("{}:{}: {}", d.loc.line, d.loc.column, d.message)
}

#[test]
fn contracts_inline_and_from_a_file_become_the_model() {
    let path = repo_root().join("tests/pipelines/contracts/customers.yaml");
    let loaded = match weir_spec::load_file(&path) {
        Ok(loaded) => loaded,
        Err(Error::Invalid { diagnostics, .. }) => panic!("{diagnostics:#?}"),
        Err(e) => panic!("{e}"),
    };
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let p = &loaded.pipeline;

    let raw = p.datasets["raw_customers"]
        .contract
        .as_ref()
        .expect("file contract");
    assert_eq!(raw.source, "contracts/customers.yaml");
    assert_eq!(raw.primary_key, ["customer_id"]);
    assert!(!raw.strict);
    assert_eq!(
        raw.on_violation,
        OnViolation::Quarantine {
            dataset: "rejected_customers".into()
        }
    );
    let names: Vec<&str> = raw.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "email",
            "country",
            "plan",
            "signed_up",
            "last_seen",
            "balance",
            "age",
            "active",
            "avatar"
        ]
    );
    let id = raw.column("customer_id").unwrap();
    assert_eq!(id.data_type, ColumnType::Int64);
    assert!(id.unique && !id.nullable, "key columns are not nullable");
    let email = raw.column("email").unwrap();
    assert_eq!(email.data_type, ColumnType::String);
    assert!(email.sensitive && email.nullable);
    assert_eq!(
        raw.column("country").unwrap().allowed,
        Some(vec![
            Literal::Text("se".into()),
            Literal::Text("no".into()),
            Literal::Text("dk".into())
        ])
    );
    assert_eq!(raw.column("signed_up").unwrap().data_type, ColumnType::Date);
    let last_seen = raw.column("last_seen").unwrap();
    assert_eq!(
        last_seen.data_type,
        ColumnType::Timestamp {
            unit: Some(TimeUnit::Us),
            tz: Some("UTC".into())
        }
    );
    assert_eq!(
        last_seen.range,
        Some(Range {
            min: Some(Literal::Text("2020-01-01T00:00:00Z".into())),
            max: None
        })
    );
    let balance = raw.column("balance").unwrap();
    assert_eq!(
        balance.data_type,
        ColumnType::Decimal {
            precision: 12,
            scale: 2
        }
    );
    assert_eq!(
        balance.range,
        Some(Range {
            min: Some(Literal::Int(-1000)),
            max: Some(Literal::Text("9999999999.99".into()))
        })
    );
    let age = raw.column("age").unwrap();
    assert_eq!(age.data_type, ColumnType::UInt8);
    assert_eq!(age.range.as_ref().unwrap().max, Some(Literal::Int(150)));
    assert_eq!(
        raw.column("active").unwrap().allowed,
        Some(vec![Literal::Bool(true)])
    );
    let avatar = raw.column("avatar").unwrap();
    assert_eq!(
        (&avatar.data_type, avatar.max_length),
        (&ColumnType::Binary, Some(65_536))
    );
    assert!(raw.is_sensitive("email") && !raw.is_sensitive("plan"));
    assert!(raw.is_sensitive("undeclared"));

    let customers = p.datasets["customers"].contract.as_ref().expect("inline");
    assert_eq!(customers.source, "inline");
    assert!(customers.strict);
    assert_eq!(customers.on_violation, OnViolation::Fail);
    let email = customers.column("email").unwrap();
    assert_eq!(email.regex.as_deref(), Some(r"^[^@\s]+@[^@\s]+$"));
    assert_eq!(email.max_length, Some(254));
    assert_eq!(
        customers.regexes().collect::<Vec<_>>(),
        [("email", r"^[^@\s]+@[^@\s]+$")]
    );
    let score = customers.column("score").unwrap();
    assert!(!score.nullable);
    assert_eq!(
        score.range,
        Some(Range {
            min: Some(Literal::Int(0)),
            max: Some(Literal::Float(1.5))
        })
    );
    assert!(p.datasets["train"].contract.is_none());

    let check = p.stage("check").unwrap();
    assert_eq!(check.kind, StageKind::Validate);
    assert_eq!(check.outputs, ["customers", "rejected_customers"]);
    let split = p.stage("split").unwrap();
    assert_eq!(
        split.kind,
        StageKind::Split {
            key: "customer_id".into(),
            parts: vec![
                SplitPart {
                    dataset: "train".into(),
                    millionths: 800_000
                },
                SplitPart {
                    dataset: "test".into(),
                    millionths: 200_000
                },
            ]
        }
    );
    assert_eq!(p.dag.levels(), &[0, 1]);
}

#[test]
fn a_validate_stage_may_write_nothing_or_only_quarantine() {
    let yaml = "version: 1\nname: demo\nprincipal: svc-demo\nstores: { lake: { url: ./data } }\n\
        datasets:\n  \
          a: { store: lake, path: a.csv, contract: { columns: { id: int64 } } }\n  \
          b: { store: lake, path: b.csv, contract: { columns: { id: int64 }, on_violation: quarantine, quarantine: b_bad } }\n  \
          b_bad: { store: lake, path: b_bad }\n\
        stages:\n  \
          - { name: check-a, kind: validate, inputs: [a] }\n  \
          - { name: check-b, kind: validate, inputs: [b], outputs: [b_bad] }\n  \
          - { name: check-a-again, kind: validate, inputs: [a], outputs: [] }\n";
    let loaded = weir_spec::load_str("p.yaml", yaml, Path::new(".")).expect("valid");
    let stages = &loaded.pipeline.stages;
    assert!(stages[0].outputs.is_empty());
    assert_eq!(stages[1].outputs, ["b_bad"]);
    assert!(stages[2].outputs.is_empty());
}

#[test]
fn literals_keep_the_type_yaml_gave_them() {
    let contract = "{ columns: { \
        f: { type: float32, allowed: [1, 2.5, -0.5] }, \
        d: { type: \"decimal(38,2)\", allowed: [3, 0.1, \"0.20\", 123456789012345678901.55] }, \
        t: { type: timestamp, range: { min: 2024-01-31 12:00:00, max: \"2024-01-31T12:00:00.5+01:00\" } } } }";
    let loaded = weir_spec::load_str("p.yaml", &pipeline(contract), Path::new(".")).expect("valid");
    let c = loaded.pipeline.datasets["raw"].contract.clone().unwrap();
    assert_eq!(
        c.column("f").unwrap().allowed,
        Some(vec![
            Literal::Int(1),
            Literal::Float(2.5),
            Literal::Float(-0.5)
        ])
    );
    // A plain number an f64 would round keeps its digits as text.
    assert_eq!(
        c.column("d").unwrap().allowed,
        Some(vec![
            Literal::Int(3),
            Literal::Float(0.1),
            Literal::Text("0.20".into()),
            Literal::Text("123456789012345678901.55".into())
        ])
    );
    assert_eq!(
        c.column("t").unwrap().range.as_ref().unwrap().min,
        Some(Literal::Text("2024-01-31 12:00:00".into()))
    );
}

#[test]
fn a_contract_file_has_its_own_diagnostics() {
    let dir = TempDir::new("file_diagnostics");
    dir.write(
        "contracts/broken.yaml",
        "version: 2\ncolumns:\n  id: int46\n  email: { type: string, regex: \"(\" }\n",
    );
    let yaml = pipeline("contracts/broken.yaml").replace("name: demo", "name: Demo");
    let (path, diags) = refuse(&dir, &yaml);
    let label = dir.0.join("contracts/broken.yaml").display().to_string();
    let pipeline_file = path.display().to_string();
    // The pipeline's own problems come first, then the contract file's.
    let files: Vec<&str> = diags.iter().map(|d| d.loc.file.as_str()).collect();
    assert_eq!(files, [pipeline_file.as_str(), &label, &label, &label]);
    let lines: Vec<String> = diags.iter().map(at).collect();
    assert_eq!(
        lines[1..],
        [
            "1:10: unsupported contract `version` 2",
            "3:7: column `id` has unknown type `int46`",
            "4:33: invalid `regex` of column `email`: unclosed group",
        ]
    );
    // Rendering against the pipeline's text still shows the contract's line.
    let rendered = diags[2].render(&yaml);
    assert!(rendered.contains(" 3 |   id: int46\n"), "{rendered}");
    assert!(diags[0].source_line.is_none());
}

#[test]
fn a_contract_file_shared_by_two_datasets_is_reported_once() {
    let dir = TempDir::new("shared");
    dir.write("contracts/c.yaml", "columns: { id: in64 }\n");
    let yaml = pipeline("contracts/c.yaml").replace(
        "out: { store: lake, path: out }",
        "out: { store: lake, path: out, contract: ./contracts/c.yaml }",
    );
    let (_, diags) = refuse(&dir, &yaml);
    assert_eq!(only(&diags).message, "column `id` has unknown type `in64`");
}

#[test]
fn a_contract_file_quarantine_error_points_into_the_file() {
    let dir = TempDir::new("quarantine");
    dir.write(
        "contracts/c.yaml",
        "columns: { id: int64 }\non_violation: quarantine\nquarantine: raw_bda\n",
    );
    let (_, diags) = refuse(&dir, &pipeline("contracts/c.yaml"));
    let d = only(&diags);
    assert!(d.loc.file.ends_with("contracts/c.yaml"), "{d}");
    assert_eq!(
        at(d),
        "3:13: the contract of dataset `raw` sends bad rows to undefined dataset `raw_bda`"
    );
    assert_eq!(d.source_line.as_deref(), Some("quarantine: raw_bda"));
}

#[test]
fn missing_contract_file() {
    let dir = TempDir::new("missing");
    let (_, diags) = refuse(&dir, &pipeline("contracts/nope.yaml"));
    let d = only(&diags);
    assert_eq!(
        at(d),
        "6:48: contract file `contracts/nope.yaml` does not exist"
    );
    assert!(
        d.hint
            .as_deref()
            .unwrap()
            .contains("relative to the folder")
    );
}

#[test]
fn contract_path_is_a_folder() {
    let dir = TempDir::new("folder");
    let (_, diags) = refuse(&dir, &pipeline("contracts"));
    assert_eq!(
        at(only(&diags)),
        "6:48: contract file `contracts` is a folder, not a file"
    );
}

#[test]
fn contract_path_absolute_or_escaping() {
    let dir = TempDir::new("escape");
    for (path, problem) in [
        ("/etc/passwd", "it is absolute"),
        (
            "../../etc/passwd",
            "it leaves the pipeline's folder through `..`",
        ),
        (
            "contracts/../../x.yaml",
            "it leaves the pipeline's folder through `..`",
        ),
    ] {
        let (_, diags) = refuse(&dir, &pipeline(path));
        assert_eq!(
            only(&diags).message,
            format!("invalid contract path `{path}`: {problem}")
        );
    }
}

#[cfg(unix)]
#[test]
fn contract_symlink_out_of_the_folder() {
    let dir = TempDir::new("symlink");
    let outside = TempDir::new("symlink_target");
    let secret = outside.write("secret.yaml", "columns: { leaked_secret_value: int64 }\n");
    std::os::unix::fs::symlink(&secret, dir.0.join("contracts/c.yaml")).expect("symlink");
    std::os::unix::fs::symlink("/dev/zero", dir.0.join("contracts/zero.yaml")).expect("symlink");
    for name in ["c.yaml", "zero.yaml"] {
        let (_, diags) = refuse(&dir, &pipeline(&format!("contracts/{name}")));
        let d = only(&diags);
        assert_eq!(
            d.message,
            format!("contract file `contracts/{name}` lies outside the pipeline's folder")
        );
        assert!(!format!("{d:?}").contains("leaked_secret_value"));
    }
}

#[cfg(unix)]
#[test]
fn contract_fifo_is_not_opened() {
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("contracts/fifo.yaml");
    match std::process::Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("contract_fifo_is_not_opened: SKIPPED, mkfifo is not available");
            return;
        }
    }
    // Opening a FIFO with no writer would block forever.
    let (_, diags) = refuse(&dir, &pipeline("contracts/fifo.yaml"));
    assert_eq!(
        only(&diags).message,
        "contract file `contracts/fifo.yaml` is not a regular file"
    );
}

#[test]
fn oversized_contract_file() {
    let dir = TempDir::new("oversized");
    let mut text = String::from("columns: { id: int64 }\n");
    text.push_str(&format!("# {}\n", "x".repeat(2 * 1024 * 1024)));
    dir.write("contracts/big.yaml", &text);
    let (_, diags) = refuse(&dir, &pipeline("contracts/big.yaml"));
    let d = only(&diags);
    assert_eq!(
        d.message,
        format!(
            "contract file `contracts/big.yaml` is {} bytes; the limit is 1048576 bytes",
            text.len()
        )
    );
    assert_eq!((d.loc.line, d.loc.column), (6, 48));
}

#[test]
fn many_contract_files_add_up_to_a_cap() {
    // Each file is within the 1 MiB limit; 17 of them exceed 16 MiB together.
    let dir = TempDir::new("many");
    let mut text = String::from("columns: { id: int64 }\n");
    text.push_str(&format!("# {}\n", "x".repeat(1_000_000)));
    let mut yaml = String::from(
        "version: 1\nname: demo\nprincipal: svc-demo\nstores: { lake: { url: ./data } }\ndatasets:\n",
    );
    for i in 0..17 {
        dir.write(&format!("contracts/c{i}.yaml"), &text);
        yaml.push_str(&format!(
            "  d{i}: {{ store: lake, path: d{i}.csv, contract: contracts/c{i}.yaml }}\n"
        ));
    }
    yaml.push_str("  out: { store: lake, path: out }\nstages:\n");
    yaml.push_str("  - { name: s, kind: command, run: [x], inputs: [");
    yaml.push_str(
        &(0..17)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    yaml.push_str("], outputs: [out] }\n");
    let (_, diags) = refuse(&dir, &yaml);
    let d = only(&diags);
    assert_eq!(
        d.message,
        "contract file `contracts/c16.yaml` takes the pipeline's contract files past 16777216 bytes together"
    );
}

#[test]
fn deeply_nested_contract_file() {
    let dir = TempDir::new("deep");
    let text = format!("columns: {}x{}\n", "[".repeat(20_000), "]".repeat(20_000));
    dir.write("contracts/deep.yaml", &text);
    let (_, diags) = refuse(&dir, &pipeline("contracts/deep.yaml"));
    let d = only(&diags);
    assert!(d.loc.file.ends_with("contracts/deep.yaml"), "{d}");
    assert_eq!(d.message, "nesting is deeper than 64 levels");
}

#[test]
fn alias_bomb_in_a_contract_file() {
    let dir = TempDir::new("bomb");
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            [prev.as_str(); 10].join(", ")
        ));
    }
    dir.write("contracts/bomb.yaml", &text);
    let (_, diags) = refuse(&dir, &pipeline("contracts/bomb.yaml"));
    assert_eq!(
        only(&diags).message,
        "the document expands to more than 100000 nodes"
    );
}

#[test]
fn contract_file_not_utf8() {
    let dir = TempDir::new("not_utf8");
    dir.write("contracts/bin.yaml", [0xff, 0xfe, b'a', b':', 0x80]);
    let (_, diags) = refuse(&dir, &pipeline("contracts/bin.yaml"));
    assert_eq!(
        at(only(&diags)),
        "6:48: contract file `contracts/bin.yaml` is not UTF-8 text"
    );
}

#[test]
fn empty_and_two_document_contract_files() {
    let dir = TempDir::new("empty");
    dir.write("contracts/empty.yaml", "# nothing yet\n");
    let (_, diags) = refuse(&dir, &pipeline("contracts/empty.yaml"));
    let d = only(&diags);
    assert_eq!(d.message, "the file holds no YAML document, only comments");
    assert_eq!(
        d.hint.as_deref(),
        Some("a contract needs at least `columns`")
    );

    dir.write(
        "contracts/two.yaml",
        "columns: { id: int64 }\n---\ncolumns: {}\n",
    );
    let (_, diags) = refuse(&dir, &pipeline("contracts/two.yaml"));
    assert_eq!(
        only(&diags).message,
        "a contract file holds exactly one YAML document"
    );
}

#[test]
fn complete_examples_in_the_contracts_reference_validate() {
    // Every ```yaml block of docs/contracts.md that starts with `version: 1`
    // and has `stages:` is a whole pipeline and must load cleanly.
    let path = repo_root().join("docs/contracts.md");
    let doc = std::fs::read_to_string(&path).expect("docs/contracts.md");
    let mut checked = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let (yaml, _) = block.split_once("```").expect("terminated yaml block");
        if !yaml.starts_with("version: 1\n") || !yaml.contains("\nstages:") {
            continue;
        }
        match weir_spec::load_str("docs/contracts.md", yaml, Path::new(".")) {
            Ok(loaded) => assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings),
            Err(Error::Invalid { diagnostics, .. }) => {
                panic!(
                    "{yaml}\n{}",
                    diagnostics.iter().map(at).collect::<Vec<_>>().join("\n")
                )
            }
            Err(e) => panic!("{e}"),
        }
        checked += 1;
    }
    assert!(checked >= 2, "found {checked} complete examples");
}
