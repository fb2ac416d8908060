//! Policies on the command line: loading `policies/`, and showing scopes and
//! missing grants.

use std::path::Path;

use weir_policy::{CompiledScope, MissingGrant, PolicySet};
use weir_spec::Pipeline;

/// Exit code when the plan is denied (missing grants): nothing ran.
pub(crate) const EXIT_DENIED: u8 = 3;

/// Loads every policy file in `dir`, printing each problem with its snippet.
pub(crate) fn load_policies(dir: &Path) -> anyhow::Result<Option<PolicySet>> {
    match PolicySet::load_dir(dir) {
        Ok(set) => Ok(Some(set)),
        Err(weir_policy::Error::Invalid {
            diagnostics,
            sources,
        }) => {
            for d in &diagnostics {
                let source = sources.get(&d.loc.file).map_or("", String::as_str);
                eprintln!("{}\n", d.render(source));
            }
            eprintln!(
                "{}: {} problem(s) in the policies; nothing was run",
                dir.display(),
                diagnostics.len()
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot load policies from {}: {e}",
            dir.display()
        )),
    }
}

/// Prints every gap with a grant ready to paste.
pub(crate) fn report_missing(missing: &[MissingGrant], policies_dir: &Path) {
    eprintln!(
        "plan denied: the principal lacks {} grant(s); nothing was run\n",
        missing.len()
    );
    for gap in missing {
        eprintln!("  - {gap}");
    }
    let snippets: Vec<String> = missing
        .iter()
        .map(MissingGrant::yaml_snippet)
        .filter(|s| !s.trim().is_empty())
        .collect();
    if !snippets.is_empty() {
        eprintln!(
            "\nto allow this, add to the `grants:` of a file in {}:\n",
            policies_dir.display()
        );
        for s in snippets {
            eprintln!("{s}");
        }
    }
}

/// The scope of each stage, with the grant behind each action.
pub(crate) fn scopes_text(pipeline: &Pipeline, scopes: &[CompiledScope]) -> String {
    let mut out = format!(
        "\nscopes (what each stage's token will allow, as `{}`)\n",
        pipeline.principal
    );
    for scope in scopes {
        out.push_str(&format!("\n  {}\n", scope.stage()));
        for e in scope.entries() {
            let grants: Vec<String> = e
                .justified_by
                .iter()
                .map(|(action, grant)| format!("{}<-{grant}", action.as_str()))
                .collect();
            let columns = e
                .entry
                .columns
                .as_ref()
                .map(|c| format!(" columns {c}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {:6} {}:{}/**  {}{columns}\n",
                e.role.as_str(),
                e.entry.store,
                e.entry.path.as_str(),
                grants.join(" "),
            ));
        }
    }
    out
}
