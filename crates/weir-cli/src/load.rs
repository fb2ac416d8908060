//! Loading pipelines and printing diagnostics.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use weir_spec::{Loaded, Severity};

use crate::Output;

/// Exit code for invalid input (a pipeline that does not validate).
pub(crate) const EXIT_INVALID: u8 = 2;

/// Loads one pipeline, printing warnings, or prints every error and returns `None`.
pub(crate) fn load_or_report(path: &Path) -> anyhow::Result<Option<Loaded>> {
    match weir_spec::load_file(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}", w.render(""));
            }
            Ok(Some(loaded))
        }
        Err(weir_spec::Error::Invalid {
            source_text,
            diagnostics,
            file,
        }) => {
            for d in &diagnostics {
                eprintln!("{}\n", d.render(&source_text));
            }
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprintln!("{file}: {errors} error(s); nothing was run");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// `weir validate`.
pub(crate) fn validate(files: &[PathBuf], output: Output) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let mut report = Vec::new();
    for file in files {
        if output == Output::Text {
            match load_or_report(file)? {
                Some(l) => println!(
                    "ok: {} ({} stages, {} datasets, {} warning(s))",
                    file.display(),
                    l.pipeline.stages.len(),
                    l.pipeline.datasets.len(),
                    l.warnings.len()
                ),
                None => ok = false,
            }
            continue;
        }
        match weir_spec::load_file(file) {
            Ok(l) => report.push(serde_json::json!({
                "file": file.display().to_string(), "valid": true,
                "diagnostics": l.warnings.iter().map(diag_json).collect::<Vec<_>>(),
            })),
            Err(weir_spec::Error::Invalid { diagnostics, .. }) => {
                ok = false;
                report.push(serde_json::json!({
                    "file": file.display().to_string(), "valid": false,
                    "diagnostics": diagnostics.iter().map(diag_json).collect::<Vec<_>>(),
                }));
            }
            Err(e) => {
                ok = false;
                report.push(serde_json::json!({
                    "file": file.display().to_string(), "valid": false, "error": e.to_string(),
                }));
            }
        }
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

fn diag_json(d: &weir_spec::Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "file": d.loc.file, "line": d.loc.line, "column": d.loc.column,
        "message": d.message, "hint": d.hint,
    })
}
