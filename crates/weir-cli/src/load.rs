//! Loading pipelines and printing diagnostics.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use weir_spec::{Loaded, Severity};

use crate::Output;

/// Exit code for invalid input (a pipeline that does not validate).
pub(crate) const EXIT_INVALID: u8 = 2;

/// Loads one pipeline, printing warnings, or prints every error and returns `None`.
pub(crate) fn load_or_report(path: &Path) -> anyhow::Result<Option<Loaded>> {
    report(weir_spec::load_file(path))
}

/// As [`load_or_report`], also returning the exact text that was validated
/// (what remote workers get, so they validate the same bytes).
pub(crate) fn load_text_or_report(path: &Path) -> anyhow::Result<Option<(Loaded, String)>> {
    use std::io::Read as _;

    let limit = weir_engine::distributed::protocol::MAX_PIPELINE_BYTES;
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .take(limit as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    anyhow::ensure!(
        text.len() <= limit,
        "{}: more than {limit} bytes; the limit is {limit}",
        path.display()
    );
    let base = path.parent().unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let display = path.display().to_string();
    Ok(report(weir_spec::load_str(&display, &text, &base))?.map(|l| (l, text)))
}

fn report(loaded: weir_spec::Result<Loaded>) -> anyhow::Result<Option<Loaded>> {
    match loaded {
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
