//! The pipeline schema: YAML nodes -> validated [`Pipeline`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::contract_file::ContractFiles;
use crate::contract_rules::{self, ContractSite, Contracts};
use crate::decode::{self, Ctx, NameKind};
use crate::diagnostic::{Location, did_you_mean};
use crate::model::{Dataset, Defaults, Format, Pipeline, Stage, Store};
use crate::rules;
use crate::stage::{self, RawStage};
use crate::store::{STORE_FIELDS, decode_location};
use crate::yaml::{Limits, Node, NodeKind, truncate};

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
const DATASET: &[&str] = &["store", "path", "format", "contract", "description"];

pub(crate) fn no_special(_: &str) -> Option<String> {
    None
}

/// Decodes and validates a whole pipeline. `base_dir` resolves relative
/// store paths and contract files, which are read under `limits`.
pub(crate) fn decode(
    cx: &mut Ctx,
    root: &Node,
    source: &Path,
    base_dir: &Path,
    limits: Limits,
) -> Option<Pipeline> {
    let top = decode::fields(cx, root, "the pipeline", TOP, &no_special)?;
    if let Some(node) = top.get("version")
        && let Some(v) = decode::integer(cx, node, "`version`", 0, u64::MAX)
        && v != 1
    {
        cx.error(&node.loc, format!("unsupported pipeline `version` {v}"))
            .hint("this weir reads `version: 1`");
    }
    let name = top
        .required(cx, "name", "the pipeline", "add `name: my-pipeline`")
        .and_then(|n| decode::name(cx, n, "pipeline name", NameKind::Stage));
    let description = top
        .get("description")
        .and_then(|n| decode::string(cx, n, "`description`"));
    let principal = top
        .required(
            cx,
            "principal",
            "the pipeline",
            "add `principal: svc-my-pipeline`, the identity the pipeline runs as",
        )
        .and_then(|n| decode::name(cx, n, "principal", NameKind::Principal));
    let defaults = top
        .get("defaults")
        .map(|n| decode_defaults(cx, n))
        .unwrap_or_default();
    let (stores, store_names) = top
        .required(
            cx,
            "stores",
            "the pipeline",
            "add `stores:` with a store such as `lake: { url: ./data }`",
        )
        .map(|n| {
            decode_named_map(cx, n, "`stores`", "store name", |cx, name, node| {
                decode_store(cx, name, node, base_dir)
            })
        })
        .unwrap_or_default();
    let mut contract_files = ContractFiles::new(source, base_dir, limits);
    let mut sites = BTreeMap::new();
    let (datasets, dataset_names) = top
        .required(
            cx,
            "datasets",
            "the pipeline",
            "add `datasets:` with the datasets the stages read and write",
        )
        .map(|n| {
            decode_named_map(cx, n, "`datasets`", "dataset name", |cx, name, node| {
                decode_dataset(
                    cx,
                    name,
                    node,
                    &store_names,
                    &mut contract_files,
                    &mut sites,
                )
            })
        })
        .unwrap_or_default();
    let (stages, stage_names) = top
        .required(
            cx,
            "stages",
            "the pipeline",
            "add `stages:` with at least one stage",
        )
        .map(|n| stage::decode_stages(cx, n, &defaults, base_dir))
        .unwrap_or_default();

    let contracts = Contracts::new(&datasets, &sites, &dataset_names);
    rules::check_overlaps(cx, &datasets);
    rules::check_stages(
        cx,
        &dataset_names,
        &stage_names,
        &stages,
        &contracts.quarantined(),
    );
    rules::check_presigned(cx, &stores, &datasets, &stages);
    contract_rules::check_quarantine_datasets(cx, &contracts);
    contract_rules::check_stages(cx, &contracts, &stages);
    let dag = rules::build_dag(cx, &stages);
    if cx.error_count() == 0 {
        // Only on an otherwise valid file: a stage that failed to decode may
        // well be the one that uses the "unused" dataset.
        rules::warn_unused(cx, &stores, &datasets, &stages);
    }

    contract_files.attach_source_lines(&mut cx.diags);

    let stages: Option<Vec<Stage>> = stages.into_iter().map(RawStage::into_stage).collect();
    Some(Pipeline {
        name: name?,
        description,
        principal: principal?,
        source: source.to_path_buf(),
        defaults,
        stores: stores.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        datasets: datasets.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        stages: stages?,
        dag: dag?,
    })
}

fn decode_defaults(cx: &mut Ctx, node: &Node) -> Defaults {
    let mut out = Defaults::default();
    let Some(f) = decode::fields(cx, node, "`defaults`", DEFAULTS, &no_special) else {
        return out;
    };
    if let Some(n) = f.get("concurrency")
        && let Some(v) = decode::integer(cx, n, "`concurrency`", 1, 1024)
    {
        out.concurrency = usize::try_from(v).unwrap_or(1);
    }
    if let Some(n) = f.get("retries")
        && let Some(v) = decode::integer(cx, n, "`retries`", 0, 100)
    {
        out.retries = u32::try_from(v).unwrap_or(0);
    }
    if let Some(d) = f
        .get("timeout")
        .and_then(|n| decode::duration(cx, n, "`timeout`"))
    {
        out.timeout = d;
    }
    out
}

/// Named items that decoded, with the location of their key.
type NamedMap<T> = BTreeMap<String, (T, Location)>;

/// Reads a mapping of `name: value`, checking each name as an identifier.
///
/// Returns the items that decoded and every name declared, valid or not, so
/// a reference to a broken item is not reported a second time as undefined.
fn decode_named_map<T>(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    noun: &str,
    mut item: impl FnMut(&mut Ctx, &str, &Node) -> Option<T>,
) -> (NamedMap<T>, BTreeSet<String>) {
    let mut out = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let NodeKind::Map(pairs) = &node.kind else {
        cx.error(
            &node.loc,
            format!(
                "{what} must be a mapping of names, found {}",
                node.type_name()
            ),
        )
        .hint("write one `name: { ... }` entry per line under it");
        return (out, declared);
    };
    if pairs.is_empty() {
        cx.error(&node.loc, format!("{what} is empty"))
            .hint("define at least one entry, or remove the field");
    }
    for (key, value) in pairs {
        if let NodeKind::Scalar { value: raw, .. } = &key.kind
            && !declared.insert(raw.clone())
        {
            continue; // already reported as a duplicate key by the loader
        }
        let Some(name) = decode::name(cx, key, noun, NameKind::Identifier) else {
            continue;
        };
        if let Some(v) = item(cx, &name, value) {
            out.insert(name, (v, key.loc.clone()));
        }
    }
    (out, declared)
}

fn decode_store(cx: &mut Ctx, name: &str, node: &Node, base_dir: &Path) -> Option<Store> {
    let what = format!("store `{name}`");
    let f = decode::fields(cx, node, &what, STORE_FIELDS, &no_special)?;
    let location = decode_location(
        cx,
        &f,
        &what,
        base_dir,
        "add `url: ./data`, a folder relative to the pipeline file, or `url: s3://bucket/prefix`",
    )?;
    Some(Store {
        name: name.to_owned(),
        location,
    })
}

fn decode_dataset(
    cx: &mut Ctx,
    name: &str,
    node: &Node,
    stores: &BTreeSet<String>,
    contract_files: &mut ContractFiles<'_>,
    sites: &mut BTreeMap<String, ContractSite>,
) -> Option<Dataset> {
    let what = format!("dataset `{name}`");
    let f = decode::fields(cx, node, &what, DATASET, &no_special)?;
    let store = f
        .required(
            cx,
            "store",
            &what,
            "add `store: <name>`, one of the stores under `stores:`",
        )
        .and_then(|n| {
            let store = decode::name(cx, n, "store name", NameKind::Identifier)?;
            if stores.contains(&store) {
                return Some(store);
            }
            let b = cx.error(&n.loc, format!("{what} uses undefined store `{store}`"));
            match did_you_mean(&store, stores.iter().map(String::as_str)) {
                Some(c) => b.hint(format!("did you mean `{c}`?")),
                None => b.hint("define the store under `stores:`"),
            }
            None
        });
    let path = f
        .required(
            cx,
            "path",
            &what,
            "add `path: <folder>`, relative to the store, e.g. `curated/customers`",
        )
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
                let b = cx.error(&n.loc, format!("unknown format `{}`", truncate(other)));
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
    let contract = f.get("contract").and_then(|n| {
        let decoded = contract_files.contract(cx, n, name);
        sites.insert(
            name.to_owned(),
            ContractSite {
                quarantine_at: decoded.as_ref().and_then(|d| d.quarantine_at.clone()),
                decoded: decoded.is_some(),
            },
        );
        decoded.map(|d| d.contract)
    });
    Some(Dataset {
        name: name.to_owned(),
        store: store?,
        path: path?,
        format: format?,
        contract,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, load};

    fn errors(src: &str) -> Vec<String> {
        let (root, mut diags) = load("t.yaml", src, Limits::default());
        let mut cx = Ctx::default();
        if let Some(root) = root {
            decode(
                &mut cx,
                &root,
                Path::new("t.yaml"),
                Path::new("."),
                Limits::default(),
            );
        }
        diags.append(&mut cx.diags);
        diags.iter().map(|d| d.message.clone()).collect()
    }

    const BASE: &str = "name: p\nprincipal: svc\nstores: { lake: { url: ./d } }\n";

    #[test]
    fn a_broken_stage_is_still_cross_checked() {
        // The stage name is invalid, yet its undefined input is reported too.
        let src = format!(
            "{BASE}datasets: {{ out: {{ store: lake, path: o }} }}\n\
             stages:\n  - {{ name: Bad, kind: sql, inputs: [nope], outputs: [out], sql: SELECT 1 }}\n"
        );
        let errs = errors(&src);
        assert!(
            errs.iter().any(|e| e.contains("invalid stage name `Bad`")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("undefined dataset `nope`")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_reference_to_a_broken_dataset_is_not_undefined() {
        let src = format!(
            "{BASE}datasets: {{ out: {{ store: lake, path: ../o }} }}\n\
             stages:\n  - {{ name: s, kind: sql, outputs: [out], sql: SELECT 1 }}\n"
        );
        let errs = errors(&src);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("invalid dataset path"), "{errs:?}");
    }

    #[test]
    fn a_typo_of_a_required_field_is_reported_once() {
        let src = format!(
            "{BASE}datasets: {{ out: {{ store: lake, path: o }} }}\n\
             stage:\n  - {{ name: s, kind: sql, outputs: [out], sql: SELECT 1 }}\n"
        );
        let errs = errors(&src);
        assert_eq!(errs, vec!["unknown field `stage` in the pipeline"]);
    }
}
