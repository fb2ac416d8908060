//! The pipeline schema: YAML nodes -> validated [`Pipeline`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::dag::{Dag, Edge};
use crate::decode::{self, Ctx, NameKind};
use crate::diagnostic::{Location, did_you_mean};
use crate::model::{Dataset, Defaults, Format, Pipeline, Stage, StageKind, Store, StoreLocation};
use crate::yaml::{Node, NodeKind};

const TOP: &[&str] = &[
    "version",
    "name",
    "description",
    "principal",
    "defaults",
    "stores",
    "datasets",
    "stages",
];
const DEFAULTS: &[&str] = &["concurrency", "retries", "timeout"];
const STORE: &[&str] = &["url", "description"];
const DATASET: &[&str] = &["store", "path", "format", "description"];
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
];
const KINDS: &[&str] = &["sql"];
const LATER_KINDS: &[&str] = &["command", "validate", "split"];

/// A stage as read, with the locations validation messages point at.
struct RawStage {
    stage: Stage,
    loc: Location,
    name_loc: Location,
    inputs: Vec<(String, Location)>,
    outputs: Vec<(String, Location)>,
    needs: Vec<(String, Location)>,
}

fn no_special(_: &str) -> Option<String> {
    None
}

/// Decodes and validates a whole pipeline. `base_dir` resolves relative store paths.
pub(crate) fn decode(cx: &mut Ctx, root: &Node, source: &Path, base_dir: &Path) -> Option<Pipeline> {
    let top = decode::fields(cx, root, "the pipeline", TOP, &no_special)?;
    if let Some(node) = top.get("version") {
        if decode::integer(cx, node, "`version`", 1, u64::MAX).is_some_and(|v| v != 1) {
            cx.error(&node.loc, "unsupported pipeline `version`")
                .hint("this weir reads `version: 1`");
        }
    }
    let name = top
        .required(cx, "name", "the pipeline")
        .and_then(|n| decode::name(cx, n, "pipeline name", NameKind::Stage));
    let description = top
        .get("description")
        .and_then(|n| decode::string(cx, n, "`description`"));
    let principal = top
        .required(cx, "principal", "the pipeline")
        .and_then(|n| decode::name(cx, n, "principal", NameKind::Principal));
    let defaults = top
        .get("defaults")
        .map(|n| decode_defaults(cx, n))
        .unwrap_or_default();
    let stores = top
        .required(cx, "stores", "the pipeline")
        .map(|n| decode_named_map(cx, n, "`stores`", |cx, name, node| decode_store(cx, name, node, base_dir)))
        .unwrap_or_default();
    let datasets = top
        .required(cx, "datasets", "the pipeline")
        .map(|n| decode_named_map(cx, n, "`datasets`", decode_dataset))
        .unwrap_or_default();
    let stages = top
        .required(cx, "stages", "the pipeline")
        .map(|n| decode_stages(cx, n, &defaults))
        .unwrap_or_default();

    check_datasets(cx, &stores, &datasets);
    check_stages(cx, &datasets, &stages);
    let dag = build_dag(cx, &stages, top.get("stages").map(|n| &n.loc));
    warn_unused(cx, &stores, &datasets, &stages);

    Some(Pipeline {
        name: name?,
        description,
        principal: principal?,
        source: source.to_path_buf(),
        defaults,
        stores: stores.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        datasets: datasets.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        stages: stages.into_iter().map(|s| s.stage).collect(),
        dag: dag?,
    })
}

fn decode_defaults(cx: &mut Ctx, node: &Node) -> Defaults {
    let mut out = Defaults::default();
    let Some(f) = decode::fields(cx, node, "`defaults`", DEFAULTS, &no_special) else {
        return out;
    };
    if let Some(n) = f.get("concurrency") {
        if let Some(v) = decode::integer(cx, n, "`concurrency`", 1, 1024) {
            out.concurrency = usize::try_from(v).unwrap_or(1);
        }
    }
    if let Some(n) = f.get("retries") {
        if let Some(v) = decode::integer(cx, n, "`retries`", 0, 100) {
            out.retries = u32::try_from(v).unwrap_or(0);
        }
    }
    if let Some(d) = f.get("timeout").and_then(|n| decode::duration(cx, n, "`timeout`")) {
        out.timeout = d;
    }
    out
}

/// Reads a mapping of `name: value`, checking each name as an identifier.
fn decode_named_map<T>(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    item: impl Fn(&mut Ctx, &str, &Node) -> Option<T>,
) -> BTreeMap<String, (T, Location)> {
    let mut out = BTreeMap::new();
    let NodeKind::Map(pairs) = &node.kind else {
        cx.error(&node.loc, format!("{what} must be a mapping of names, found {}", node.type_name()));
        return out;
    };
    if pairs.is_empty() {
        cx.error(&node.loc, format!("{what} is empty"));
    }
    for (key, value) in pairs {
        let Some(name) = decode::name(cx, key, &format!("name in {what}"), NameKind::Identifier) else {
            continue;
        };
        if out.contains_key(&name) {
            continue; // already reported as a duplicate key by the loader
        }
        if let Some(v) = item(cx, &name, value) {
            out.insert(name, (v, key.loc.clone()));
        }
    }
    out
}

fn decode_store(cx: &mut Ctx, name: &str, node: &Node, base_dir: &Path) -> Option<Store> {
    let what = format!("store `{name}`");
    let f = decode::fields(cx, node, &what, STORE, &no_special)?;
    let url_node = f.required(cx, "url", &what)?;
    let url = decode::string(cx, url_node, "`url`")?;
    if let Some(n) = f.get("description") {
        decode::string(cx, n, "`description`");
    }
    let location = if let Some(rest) = url.strip_prefix("file://") {
        StoreLocation::Local(base_dir.join(rest))
    } else if url.starts_with("s3://") {
        cx.error(&url_node.loc, "S3 stores are not supported by this build of weir yet")
            .hint("use a local folder for now, e.g. `url: ../data`");
        return None;
    } else if let Some((scheme, _)) = url.split_once("://") {
        cx.error(&url_node.loc, format!("unknown store scheme `{}`", decode_truncate(scheme)))
            .hint("use a local folder (relative to the pipeline file, or absolute) or `file://`");
        return None;
    } else if url.is_empty() {
        cx.error(&url_node.loc, "store `url` is empty");
        return None;
    } else {
        StoreLocation::Local(base_dir.join(&url))
    };
    Some(Store {
        name: name.to_owned(),
        location,
    })
}

fn decode_truncate(s: &str) -> String {
    crate::yaml::truncate(s)
}

fn dataset_special(key: &str) -> Option<String> {
    (key == "contract").then(|| "data contracts are not supported by this build of weir yet".to_owned())
}

fn decode_dataset(cx: &mut Ctx, name: &str, node: &Node) -> Option<Dataset> {
    let what = format!("dataset `{name}`");
    let f = decode::fields(cx, node, &what, DATASET, &dataset_special)?;
    let store = f
        .required(cx, "store", &what)
        .and_then(|n| decode::name(cx, n, "store name", NameKind::Identifier));
    let path = f
        .required(cx, "path", &what)
        .and_then(|n| decode::object_path(cx, n, "dataset path"));
    let format = match f.get("format") {
        None => Some(if path.as_deref().is_some_and(|p| p.ends_with(".csv")) {
            Format::Csv
        } else {
            Format::Parquet
        }),
        Some(n) => match decode::string(cx, n, "`format`")?.as_str() {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            other => {
                let b = cx.error(&n.loc, format!("unknown format `{}`", decode_truncate(other)));
                match did_you_mean(other, ["parquet", "csv"]) {
                    Some(c) => b.hint(format!("did you mean `{c}`?")),
                    None => b.hint("expected `parquet` or `csv`"),
                }
                None
            }
        },
    };
    if let Some(n) = f.get("description") {
        decode::string(cx, n, "`description`");
    }
    Some(Dataset {
        name: name.to_owned(),
        store: store?,
        path: path?,
        format: format?,
    })
}

fn decode_stages(cx: &mut Ctx, node: &Node, defaults: &Defaults) -> Vec<RawStage> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(&node.loc, format!("`stages` must be a list, found {}", node.type_name()))
            .hint("write each stage as a list item starting with `- name: ...`");
        return Vec::new();
    };
    if items.is_empty() {
        cx.error(&node.loc, "the pipeline has no stages")
            .hint("add at least one stage under `stages:`");
    }
    let mut out: Vec<RawStage> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(stage) = decode_stage(cx, item, i, defaults) {
            if let Some(first) = out.iter().find(|s| s.stage.name == stage.stage.name) {
                let line = first.name_loc.line;
                cx.error(&stage.name_loc, format!("duplicate stage name `{}`", stage.stage.name))
                    .hint(format!("a stage with this name is already defined at line {line}"));
                continue;
            }
            out.push(stage);
        }
    }
    out
}

fn decode_stage(cx: &mut Ctx, node: &Node, index: usize, defaults: &Defaults) -> Option<RawStage> {
    let label = format!("stage #{}", index + 1);
    let f = decode::fields(cx, node, &label, STAGE, &no_special)?;
    let name_node = f.required(cx, "name", &label)?;
    let name = decode::name(cx, name_node, "stage name", NameKind::Stage)?;
    let what = format!("stage `{name}`");
    let kind = f
        .required(cx, "kind", &what)
        .and_then(|n| decode_kind(cx, n, &f, &what));
    let inputs = f
        .get("inputs")
        .map(|n| decode::name_list(cx, n, "`inputs`", NameKind::Identifier))
        .unwrap_or(Some(Vec::new()));
    let outputs = f
        .required(cx, "outputs", &what)
        .and_then(|n| decode::name_list(cx, n, "`outputs`", NameKind::Identifier));
    let needs = f
        .get("needs")
        .map(|n| decode::name_list(cx, n, "`needs`", NameKind::Stage))
        .unwrap_or(Some(Vec::new()));
    let retries = match f.get("retries") {
        Some(n) => u32::try_from(decode::integer(cx, n, "`retries`", 0, 100)?).ok()?,
        None => defaults.retries,
    };
    let timeout = match f.get("timeout") {
        Some(n) => decode::duration(cx, n, "`timeout`")?,
        None => defaults.timeout,
    };
    if let Some(n) = f.get("description") {
        decode::string(cx, n, "`description`");
    }
    let (inputs, outputs, needs) = (inputs?, outputs?, needs?);
    let kind = kind?;
    if matches!(kind, StageKind::Sql { .. }) && outputs.len() != 1 {
        cx.error(
            &f.get("outputs").map_or(f.loc.clone(), |n| n.loc.clone()),
            format!("{what}: a `sql` stage writes exactly one output, found {}", outputs.len()),
        )
        .hint("split the work into one sql stage per output dataset");
    }
    Some(RawStage {
        stage: Stage {
            name,
            kind,
            inputs: inputs.iter().map(|(n, _)| n.clone()).collect(),
            outputs: outputs.iter().map(|(n, _)| n.clone()).collect(),
            needs: needs.iter().map(|(n, _)| n.clone()).collect(),
            retries,
            timeout,
        },
        loc: f.loc.clone(),
        name_loc: name_node.loc.clone(),
        inputs,
        outputs,
        needs,
    })
}

fn decode_kind(cx: &mut Ctx, node: &Node, f: &decode::Fields<'_>, what: &str) -> Option<StageKind> {
    let kind = decode::string(cx, node, "stage `kind`")?;
    match kind.as_str() {
        "sql" => {
            let sql_node = f.required(cx, "sql", what)?;
            let sql = decode::string(cx, sql_node, "`sql`")?;
            if sql.trim().is_empty() {
                cx.error(&sql_node.loc, format!("{what}: `sql` is empty"));
                return None;
            }
            Some(StageKind::Sql { sql })
        }
        k if LATER_KINDS.contains(&k) => {
            cx.error(&node.loc, format!("stage kind `{k}` is not supported by this build of weir yet"))
                .hint(format!("supported kinds: {}", KINDS.join(", ")));
            None
        }
        other => {
            let b = cx.error(&node.loc, format!("unknown stage kind `{}`", decode_truncate(other)));
            match did_you_mean(other, KINDS.iter().copied()) {
                Some(c) => b.hint(format!("did you mean `{c}`?")),
                None => b.hint(format!("supported kinds: {}", KINDS.join(", "))),
            }
            None
        }
    }
}

/// Datasets must name a defined store and must not overlap in one store.
fn check_datasets(
    cx: &mut Ctx,
    stores: &BTreeMap<String, (Store, Location)>,
    datasets: &BTreeMap<String, (Dataset, Location)>,
) {
    for (ds, loc) in datasets.values() {
        if !stores.contains_key(&ds.store) {
            let b = cx.error(loc, format!("dataset `{}` uses undefined store `{}`", ds.name, ds.store));
            match did_you_mean(&ds.store, stores.keys().map(String::as_str)) {
                Some(c) => b.hint(format!("did you mean `{c}`?")),
                None => b.hint("define the store under `stores:`"),
            }
        }
    }
    let all: Vec<&(Dataset, Location)> = datasets.values().collect();
    for (i, (a, _)) in all.iter().enumerate() {
        for (b, loc) in all.iter().skip(i + 1) {
            if a.store == b.store && overlaps(&a.path, &b.path) {
                cx.error(
                    loc,
                    format!("datasets `{}` and `{}` overlap in store `{}` (`{}` and `{}`)", a.name, b.name, a.store, a.path, b.path),
                )
                .hint("give each dataset its own path; one may not contain the other");
            }
        }
    }
}

/// Segment-aware: `a/b` overlaps `a/b/c` but not `a/bc`.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long == short || long.strip_prefix(short).is_some_and(|rest| rest.starts_with('/'))
}

fn check_stages(cx: &mut Ctx, datasets: &BTreeMap<String, (Dataset, Location)>, stages: &[RawStage]) {
    let mut writers: HashMap<&str, &str> = HashMap::new();
    let names: Vec<&str> = stages.iter().map(|s| s.stage.name.as_str()).collect();
    for s in stages {
        for (ds, loc) in s.inputs.iter().chain(&s.outputs) {
            if !datasets.contains_key(ds) {
                let b = cx.error(loc, format!("stage `{}` refers to undefined dataset `{ds}`", s.stage.name));
                match did_you_mean(ds, datasets.keys().map(String::as_str)) {
                    Some(c) => b.hint(format!("did you mean `{c}`?")),
                    None => b.hint("define it under `datasets:`"),
                }
            }
        }
        for (ds, loc) in &s.outputs {
            if let Some(first) = writers.insert(ds, &s.stage.name) {
                cx.error(loc, format!("dataset `{ds}` is written by two stages, `{first}` and `{}`", s.stage.name))
                    .hint("each dataset has exactly one writer; write to a new dataset instead");
            }
            if s.inputs.iter().any(|(i, _)| i == ds) {
                cx.error(loc, format!("stage `{}` reads and writes the same dataset `{ds}`", s.stage.name))
                    .hint("write the result to a new dataset");
            }
        }
        for (need, loc) in &s.needs {
            if *need == s.stage.name {
                cx.error(loc, format!("stage `{need}` needs itself"));
            } else if !names.contains(&need.as_str()) {
                let b = cx.error(loc, format!("stage `{}` needs undefined stage `{need}`", s.stage.name));
                if let Some(c) = did_you_mean(need, names.iter().copied()) {
                    b.hint(format!("did you mean `{c}`?"));
                }
            }
        }
    }
}

fn build_dag(cx: &mut Ctx, stages: &[RawStage], loc: Option<&Location>) -> Option<Dag> {
    let index: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.stage.name.as_str(), i))
        .collect();
    let mut writer: HashMap<&str, usize> = HashMap::new();
    for (i, s) in stages.iter().enumerate() {
        for o in &s.stage.outputs {
            writer.entry(o.as_str()).or_insert(i);
        }
    }
    let mut edges = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        for input in &s.stage.inputs {
            if let Some(w) = writer.get(input.as_str()).filter(|w| **w != i) {
                edges.push((*w, i, Edge::Data(input.clone())));
            }
        }
        for need in &s.stage.needs {
            if let Some(n) = index.get(need.as_str()).filter(|n| **n != i) {
                edges.push((*n, i, Edge::Needs));
            }
        }
    }
    match Dag::build(stages.len(), &edges) {
        Ok(dag) => Some(dag),
        Err(cycles) => {
            for cycle in cycles {
                let names: Vec<&str> = cycle
                    .iter()
                    .filter_map(|i| stages.get(*i).map(|s| s.stage.name.as_str()))
                    .collect();
                let at = cycle
                    .first()
                    .and_then(|i| stages.get(*i))
                    .map(|s| s.loc.clone())
                    .or_else(|| loc.cloned());
                if let Some(at) = at {
                    cx.error(&at, format!("stages form a cycle: {}", names.join(" -> ")))
                        .hint("a stage cannot depend, through data or `needs`, on its own result");
                }
            }
            None
        }
    }
}

fn warn_unused(
    cx: &mut Ctx,
    stores: &BTreeMap<String, (Store, Location)>,
    datasets: &BTreeMap<String, (Dataset, Location)>,
    stages: &[RawStage],
) {
    for (name, (_, loc)) in datasets {
        let used = stages
            .iter()
            .any(|s| s.stage.inputs.contains(name) || s.stage.outputs.contains(name));
        if !used {
            cx.warning(loc, format!("dataset `{name}` is not used by any stage"));
        }
    }
    for (name, (_, loc)) in stores {
        if !datasets.values().any(|(d, _)| &d.store == name) {
            cx.warning(loc, format!("store `{name}` is not used by any dataset"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn overlap_is_segment_aware() {
        assert!(overlaps("raw/train", "raw/train"));
        assert!(overlaps("raw/train", "raw/train/x.parquet"));
        assert!(overlaps("raw/train/x", "raw/train"));
        assert!(!overlaps("raw/train", "raw/training"));
    }
}
