//! Stages: YAML nodes -> [`RawStage`]s, kept even when incomplete so that
//! the cross-checks in [`crate::rules`] still see them.

use std::path::Path;
use std::time::Duration;

use crate::command::{decode_command, refuse_command_fields};
use crate::decode::{self, Ctx, NameKind};
use crate::diagnostic::{Location, did_you_mean};
use crate::model::{Defaults, Stage, StageKind};
use crate::pipeline::no_special;
use crate::split::{decode_split, refuse_split_fields, refuse_sql};
use crate::yaml::{Node, NodeKind, truncate};

const STAGE: &[&str] = &[
    "name",
    "kind",
    "description",
    "inputs",
    "outputs",
    "needs",
    "retries",
    "timeout",
    "sql",
    "run",
    "shell",
    "workdir",
    "access",
    "parts",
    "env",
    "key",
    "ratios",
];
const KINDS: &[&str] = &["sql", "command", "validate", "split"];

/// A stage as read, possibly incomplete, with the locations messages point at.
///
/// Stages with errors are kept so that cross-checks (references, writers,
/// cycles) still run on what could be read: every problem in one go.
pub(crate) struct RawStage {
    /// `stage `clean`` or `stage #2`, for messages.
    pub(crate) label: String,
    /// The name, if it is valid.
    pub(crate) name: Option<String>,
    pub(crate) loc: Location,
    pub(crate) name_loc: Location,
    pub(crate) kind: Option<StageKind>,
    pub(crate) inputs: Vec<(String, Location)>,
    pub(crate) outputs: Vec<(String, Location)>,
    /// Where `outputs` is written (the stage, when it is not).
    pub(crate) outputs_at: Location,
    /// How many entries `outputs` lists, valid or not (0 when a `validate`
    /// stage leaves it out); `None` when it is not a list or is missing.
    pub(crate) outputs_listed: Option<usize>,
    /// Where a `split` stage's `key` is written.
    pub(crate) key_at: Option<Location>,
    pub(crate) needs: Vec<(String, Location)>,
    pub(crate) retries: u32,
    pub(crate) timeout: Duration,
    /// Whether every field was read without error.
    pub(crate) complete: bool,
}

impl RawStage {
    /// The name in messages: the stage name, or `#2` when it has none.
    pub(crate) fn display(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.label)
    }

    pub(crate) fn into_stage(self) -> Option<Stage> {
        if !self.complete {
            return None;
        }
        let names = |v: Vec<(String, Location)>| v.into_iter().map(|(n, _)| n).collect();
        Some(Stage {
            name: self.name?,
            kind: self.kind?,
            inputs: names(self.inputs),
            outputs: names(self.outputs),
            needs: names(self.needs),
            retries: self.retries,
            timeout: self.timeout,
        })
    }
}

/// Reads `stages`: every stage that is a mapping, and every name declared.
pub(crate) fn decode_stages(
    cx: &mut Ctx,
    node: &Node,
    defaults: &Defaults,
    base_dir: &Path,
) -> (Vec<RawStage>, Vec<String>) {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            &node.loc,
            format!("`stages` must be a list, found {}", node.type_name()),
        )
        .hint("write each stage as a list item starting with `- name: ...`");
        return (Vec::new(), Vec::new());
    };
    if items.is_empty() {
        cx.error(&node.loc, "the pipeline has no stages")
            .hint("add at least one stage under `stages:`");
    }
    let declared: Vec<Option<&str>> = items.iter().map(declared_name).collect();
    let mut out: Vec<RawStage> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = declared.get(i).copied().flatten();
        let Some(mut stage) = decode_stage(cx, item, i, name, defaults, base_dir) else {
            continue;
        };
        if let Some(name) = &stage.name
            && let Some(first) = out.iter().find(|s| s.name.as_ref() == Some(name))
        {
            let line = first.name_loc.line;
            cx.error(&stage.name_loc, format!("duplicate stage name `{name}`"))
                .hint(format!("a stage with this name is already defined at line {line}; stage names are unique"));
            stage.complete = false;
        }
        out.push(stage);
    }
    let names = declared.into_iter().flatten().map(str::to_owned).collect();
    (out, names)
}

/// The text of a stage's `name` field, valid or not.
fn declared_name(node: &Node) -> Option<&str> {
    let NodeKind::Map(pairs) = &node.kind else {
        return None;
    };
    pairs.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
        (NodeKind::Scalar { value: key, .. }, NodeKind::Scalar { value, .. }) if key == "name" => {
            Some(value.as_str())
        }
        _ => None,
    })
}

fn decode_stage(
    cx: &mut Ctx,
    node: &Node,
    index: usize,
    declared: Option<&str>,
    defaults: &Defaults,
    base_dir: &Path,
) -> Option<RawStage> {
    let errors_before = cx.error_count();
    let label = match declared {
        Some(name) if decode::valid_name(name, NameKind::Stage) => format!("stage `{name}`"),
        _ => format!("stage #{}", index + 1),
    };
    let Some(f) = decode::fields(cx, node, &label, STAGE, &no_special) else {
        if let NodeKind::Scalar { value, .. } = &node.kind
            && let Some(last) = cx.diags.last_mut()
        {
            last.hint = Some(format!(
                "write a stage as a mapping: `- name: {}`, then `kind`, `inputs`, `outputs` on the lines below",
                truncate(value)
            ));
        }
        return None;
    };
    let name_node = f.required(cx, "name", &label, "add `name: my-stage`");
    let name = name_node.and_then(|n| decode::name(cx, n, "stage name", NameKind::Stage));
    let kind_node = f.required(cx, "kind", &label, "add `kind: sql`");
    // What the stage says it is, before its fields are checked: which
    // fields are required depends on it.
    let kind_text = kind_node.and_then(|n| match &n.kind {
        NodeKind::Scalar { value, .. } => Some(value.as_str()),
        _ => None,
    });
    let inputs_node = f.get("inputs");
    let inputs = inputs_node
        .and_then(|n| decode::name_list(cx, n, "`inputs`", "dataset name", NameKind::Identifier))
        .unwrap_or_default();
    let outputs_node = if kind_text == Some("validate") {
        f.get("outputs")
    } else {
        f.required(
            cx,
            "outputs",
            &label,
            "add `outputs: [<dataset>]`, the dataset the stage writes",
        )
    };
    let outputs = outputs_node
        .and_then(|n| decode::name_list(cx, n, "`outputs`", "dataset name", NameKind::Identifier))
        .unwrap_or_default();
    let kind = kind_node.and_then(|n| decode_kind(cx, n, &f, &label, base_dir, &outputs));
    let needs = f
        .get("needs")
        .and_then(|n| decode::name_list(cx, n, "`needs`", "stage name", NameKind::Stage))
        .unwrap_or_default();
    let retries = match f.get("retries") {
        Some(n) => decode::integer(cx, n, "`retries`", 0, 100).and_then(|v| u32::try_from(v).ok()),
        None => Some(defaults.retries),
    };
    let timeout = match f.get("timeout") {
        Some(n) => decode::duration(cx, n, "`timeout`"),
        None => Some(defaults.timeout),
    };
    if let Some(n) = f.get("description") {
        decode::string(cx, n, "`description`");
    }
    // Absent `outputs` is an empty list only where it is optional; elsewhere
    // it is already reported as missing.
    let outputs_listed = match outputs_node.map(|n| &n.kind) {
        None if kind_text == Some("validate") => Some(0),
        Some(NodeKind::Seq(items)) => Some(items.len()),
        _ => None,
    };
    if let (Some(StageKind::Command { .. }), Some(n), Some(0)) =
        (&kind, outputs_node, outputs_listed)
    {
        cx.error(
            &n.loc,
            format!("{label}: a `command` stage writes at least one output, found none"),
        )
        .hint("name the datasets the command writes, e.g. `outputs: [model]`");
    }
    if let Some(k @ ("validate" | "split")) = kind_text {
        let listed = match inputs_node.map(|n| &n.kind) {
            None => Some(0),
            Some(NodeKind::Seq(items)) => Some(items.len()),
            Some(_) => None,
        };
        if let Some(n) = listed.filter(|n| *n != 1) {
            let what = if k == "validate" { "check" } else { "split" };
            cx.error(
                inputs_node.map_or(&f.loc, |i| &i.loc),
                format!("{label}: a `{k}` stage reads exactly one input, found {n}"),
            )
            .hint(format!(
                "name the one dataset to {what}, e.g. `inputs: [raw_events]`"
            ));
        }
    }
    Some(RawStage {
        name_loc: name_node.map_or_else(|| f.loc.clone(), |n| n.loc.clone()),
        label,
        name,
        loc: f.loc.clone(),
        kind,
        inputs,
        outputs,
        outputs_at: outputs_node.map_or_else(|| f.loc.clone(), |n| n.loc.clone()),
        outputs_listed,
        key_at: f.get("key").map(|n| n.loc.clone()),
        needs,
        retries: retries.unwrap_or_default(),
        timeout: timeout.unwrap_or_default(),
        complete: cx.error_count() == errors_before,
    })
}

fn decode_kind(
    cx: &mut Ctx,
    node: &Node,
    f: &decode::Fields<'_>,
    what: &str,
    base_dir: &Path,
    outputs: &[(String, Location)],
) -> Option<StageKind> {
    let kind = decode::string(cx, node, "stage `kind`")?;
    match kind.as_str() {
        "sql" => {
            refuse_command_fields(cx, f, what, "sql");
            refuse_split_fields(cx, f, what, "sql");
            let sql_node = f.required(cx, "sql", what, "add `sql: SELECT ... FROM <input>`")?;
            let sql = decode::string(cx, sql_node, "`sql`")?;
            if sql.trim().is_empty() {
                cx.error(&sql_node.loc, format!("{what}: `sql` is empty"))
                    .hint("write the query, e.g. `sql: SELECT * FROM <input>`");
                return None;
            }
            Some(StageKind::Sql { sql })
        }
        "command" => {
            refuse_split_fields(cx, f, what, "command");
            decode_command(cx, f, what, base_dir)
        }
        "validate" => {
            refuse_sql(cx, f, what, "validate");
            refuse_command_fields(cx, f, what, "validate");
            refuse_split_fields(cx, f, what, "validate");
            Some(StageKind::Validate)
        }
        "split" => {
            refuse_sql(cx, f, what, "split");
            refuse_command_fields(cx, f, what, "split");
            decode_split(cx, f, what, outputs)
        }
        other => {
            let b = cx.error(
                &node.loc,
                format!("unknown stage kind `{}`", truncate(other)),
            );
            match did_you_mean(other, KINDS.iter().copied()) {
                Some(c) => b.hint(format!("did you mean `{c}`?")),
                None => b.hint(format!("supported kinds: {}", KINDS.join(", "))),
            }
            None
        }
    }
}
