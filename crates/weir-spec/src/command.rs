//! `kind: command` stages: the argv (or shell script), working folder and the
//! environment variables a stage may receive from weir's own environment.
//!
//! # Security
//! The `env` allowlist holds names only, never values. Names that belong to
//! weir (`WEIR_*`) or look like credentials (`AWS_*`, `*_TOKEN`, `*_SECRET*`,
//! `*_PASSWORD*`, ...) are refused here, before anything runs: a stage gets
//! data through its scoped token and guarded stores, not through a broad
//! credential handed down by the environment.

use std::path::{Path, PathBuf};

use crate::decode::{self, Ctx, Fields};
use crate::model::{Access, StageKind};
use crate::yaml::{Node, NodeKind, truncate};

/// Fields only a `command` stage may have.
pub(crate) const COMMAND_FIELDS: &[&str] = &["run", "shell", "workdir", "env", "access", "parts"];

/// Most upload URLs a presigned stage may ask for per output.
pub(crate) const MAX_PARTS: u64 = 1000;

/// Reads the fields of a `command` stage.
pub(crate) fn decode_command(
    cx: &mut Ctx,
    f: &Fields<'_>,
    what: &str,
    base_dir: &Path,
) -> Option<StageKind> {
    let errors_before = cx.error_count();
    if let Some(n) = f.get("sql") {
        cx.error(
            &n.loc,
            format!("{what}: `sql` is not allowed on a `command` stage"),
        )
        .hint("a command stage runs `run`; remove `sql`, or use `kind: sql` for a query");
    }
    let shell = match f.get("shell") {
        Some(n) => decode::boolean(cx, n, &format!("{what}: `shell`")),
        None => Some(false),
    };
    let run_node = f.required(
        cx,
        "run",
        what,
        "add `run: [\"python\", \"train.py\"]`, the program and its arguments",
    );
    let argv = match (run_node, shell) {
        (Some(n), Some(shell)) => run(cx, n, shell, what),
        _ => None,
    };
    let workdir = f
        .get("workdir")
        .and_then(|n| workdir(cx, n, what, base_dir));
    let env = f
        .get("env")
        .map(|n| env_list(cx, n, what))
        .unwrap_or_default();
    let access = access(cx, f, what);
    if cx.error_count() != errors_before {
        return None;
    }
    Some(StageKind::Command {
        argv: argv?,
        shell: shell?,
        workdir,
        env,
        access: access?,
    })
}

/// Reports command-only fields on a stage of another kind.
pub(crate) fn refuse_command_fields(cx: &mut Ctx, f: &Fields<'_>, what: &str, kind: &str) {
    for field in COMMAND_FIELDS {
        if let Some(n) = f.get(field) {
            cx.error(
                &n.loc,
                format!("{what}: `{field}` is only allowed on a `command` stage, not on a `{kind}` stage"),
            )
            .hint(format!(
                "remove `{field}`, or use `kind: command` to run a program"
            ));
        }
    }
}

/// Reads `access` (`materialized` or `presigned`) and `parts`.
fn access(cx: &mut Ctx, f: &Fields<'_>, what: &str) -> Option<Access> {
    let presigned = match f.get("access") {
        None => false,
        Some(n) => {
            match decode::string(cx, n, &format!("{what}: `access`"))?.as_str() {
                "materialized" => false,
                "presigned" => true,
                other => {
                    cx.error(
                    &n.loc,
                    format!("{what}: unknown `access` `{}`", truncate(other)),
                )
                .hint("expected `materialized` (files in a private folder) or `presigned` (S3 URLs)");
                    return None;
                }
            }
        }
    };
    let parts = match (f.get("parts"), presigned) {
        (Some(n), true) => {
            decode::integer(cx, n, "`parts`", 1, MAX_PARTS).and_then(|p| u32::try_from(p).ok())?
        }
        (Some(n), false) => {
            cx.error(
                &n.loc,
                format!("{what}: `parts` only applies with `access: presigned`"),
            )
            .hint("remove `parts`, or add `access: presigned`");
            return None;
        }
        (None, _) => 1,
    };
    Some(if presigned {
        Access::Presigned { parts }
    } else {
        Access::Materialized
    })
}

/// Reads `run`: a list of arguments, or one script when `shell` is true.
fn run(cx: &mut Ctx, node: &Node, shell: bool, what: &str) -> Option<Vec<String>> {
    match (&node.kind, shell) {
        (NodeKind::Seq(items), false) => {
            if items.is_empty() {
                cx.error(&node.loc, format!("{what}: `run` is an empty list"))
                    .hint("name the program and its arguments, e.g. `run: [\"python\", \"train.py\"]`");
                return None;
            }
            let mut argv = Vec::with_capacity(items.len());
            let mut ok = true;
            for item in items {
                match decode::string(cx, item, "each argument of `run`") {
                    Some(arg) if arg.contains('\0') => {
                        cx.error(&item.loc, "an argument of `run` contains a NUL character")
                            .hint("remove the NUL character");
                        ok = false;
                    }
                    Some(arg) => argv.push(arg),
                    None => ok = false,
                }
            }
            if argv.first().is_some_and(String::is_empty) {
                cx.error(&node.loc, format!("{what}: the program in `run` is empty"))
                    .hint("the first item of `run` is the program, e.g. `python`");
                return None;
            }
            ok.then_some(argv)
        }
        (NodeKind::Seq(_), true) => {
            cx.error(
                &node.loc,
                format!("{what}: with `shell: true`, `run` must be a single string, found a list"),
            )
            .hint("write the script as one string, e.g. `run: python train.py > log.txt`, or remove `shell: true`");
            None
        }
        (NodeKind::Scalar { value, .. }, false) => {
            cx.error(
                &node.loc,
                format!("{what}: `run` must be a list of arguments, found a string"),
            )
            .hint(format!(
                "write `run: [{}]` (no shell parsing), or add `shell: true` to run the string with /bin/sh -c",
                truncate(&value.split_whitespace().collect::<Vec<_>>().join(", "))
            ));
            None
        }
        (NodeKind::Scalar { .. }, true) => {
            let script = decode::string(cx, node, "`run`")?;
            if script.trim().is_empty() || script.contains('\0') {
                cx.error(&node.loc, format!("{what}: `run` is an empty script"))
                    .hint("write the shell command to run, e.g. `run: python train.py`");
                return None;
            }
            Some(vec![script])
        }
        (NodeKind::Map(_), _) => {
            cx.error(
                &node.loc,
                format!("{what}: `run` must be a list of arguments, found a mapping"),
            )
            .hint("write `run: [\"python\", \"train.py\"]`");
            None
        }
    }
}

/// Reads `workdir`: a folder relative to the pipeline file, without `..`.
fn workdir(cx: &mut Ctx, node: &Node, what: &str, base_dir: &Path) -> Option<PathBuf> {
    let value = decode::string(cx, node, "`workdir`")?;
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.starts_with('/') {
        Some("it is absolute")
    } else if value.contains('\\') || value.chars().any(char::is_control) {
        Some("it contains a backslash or a control character")
    } else if value.split('/').any(|s| s == "..") {
        Some("it leaves the pipeline's folder through `..`")
    } else {
        None
    };
    if let Some(problem) = problem {
        cx.error(
            &node.loc,
            format!(
                "{what}: invalid `workdir` `{}`: {problem}",
                truncate(&value)
            ),
        )
        .hint("write a folder relative to the pipeline file, e.g. `workdir: training`");
        return None;
    }
    let mut path = base_dir.to_path_buf();
    for segment in value.split('/').filter(|s| !s.is_empty() && *s != ".") {
        path.push(segment);
    }
    Some(path)
}

/// Reads `env`: names of variables allowed through from weir's environment.
fn env_list(cx: &mut Ctx, node: &Node, what: &str) -> Vec<String> {
    let NodeKind::Seq(items) = &node.kind else {
        let builder = cx.error(
            &node.loc,
            format!(
                "{what}: `env` must be a list of variable names, found {}",
                node.type_name()
            ),
        );
        builder.hint("write `env: [CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS]`; values come from weir's environment");
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(name) = decode::string(cx, item, "each name in `env`") else {
            continue;
        };
        if let Some((problem, hint)) = env_problem(&name) {
            cx.error(
                &item.loc,
                format!("{what}: `env` cannot pass `{}`: {problem}", truncate(&name)),
            )
            .hint(hint);
        } else if out.contains(&name) {
            cx.error(
                &item.loc,
                format!("{what}: `{name}` is listed twice in `env`"),
            )
            .hint("remove the repeated entry");
        } else {
            out.push(name);
        }
    }
    out
}

/// Why `name` may not be allowlisted, with a hint.
fn env_problem(name: &str) -> Option<(&'static str, &'static str)> {
    let mut chars = name.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 128;
    if !well_formed {
        return Some((
            "not a variable name of the form [A-Z_][A-Z0-9_]*",
            "write the variable's name in upper case, e.g. `OMP_NUM_THREADS`; values are never written in the pipeline",
        ));
    }
    if name.starts_with("WEIR_") {
        return Some((
            "`WEIR_*` variables belong to weir",
            "weir sets `WEIR_INPUT_*`, `WEIR_OUTPUT_*`, `WEIR_RUN_ID`, `WEIR_STAGE` and `WEIR_ATTEMPT` itself; remove this entry",
        ));
    }
    if name == "HOME" {
        return Some((
            "`HOME` is always the stage's private folder",
            "remove this entry",
        ));
    }
    if looks_like_credential(name) {
        return Some((
            "it looks like a credential",
            "a stage reads and writes data through its scoped token only; do not pass cloud keys, tokens or passwords to it",
        ));
    }
    None
}

/// Names that obviously hold credentials.
fn looks_like_credential(name: &str) -> bool {
    const PREFIXES: &[&str] = &["AWS_", "AZURE_", "GOOGLE_APPLICATION_CREDENTIALS", "GCP_"];
    const EXACT: &[&str] = &["TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY"];
    const INFIXES: &[&str] = &[
        "_SECRET",
        "_PASSWORD",
        "_PASSWD",
        "_CREDENTIAL",
        "_API_KEY",
        "_ACCESS_KEY",
        "_PRIVATE_KEY",
        "_SESSION_TOKEN",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || EXACT.contains(&name)
        || name.ends_with("_TOKEN")
        || INFIXES.iter().any(|i| name.contains(i))
        || name.starts_with("SECRET_")
        || name.starts_with("PASSWORD_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_refused() {
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "HF_TOKEN",
            "DB_PASSWORD",
            "MY_SECRET_THING",
            "WEIR_STAGE_TOKEN",
            "GITHUB_TOKEN",
            "HOME",
            "lower",
            "1ABC",
            "",
        ] {
            assert!(env_problem(name).is_some(), "{name} accepted");
        }
        for name in [
            "PATH",
            "OMP_NUM_THREADS",
            "CUDA_VISIBLE_DEVICES",
            "_X",
            "LANG",
        ] {
            assert!(env_problem(name).is_none(), "{name} refused");
        }
    }
}
