//! Cross-checks between stores, datasets and stages, and the stage DAG.
//!
//! These run on whatever could be decoded, including stages with errors of
//! their own, so one run reports every problem in the file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::dag::{Dag, Edge};
use crate::decode::Ctx;
use crate::diagnostic::{Location, did_you_mean};
use crate::model::{Access, Dataset, StageKind, Store, StoreLocation};
use crate::stage::RawStage;

/// Datasets in one store must not overlap: one writer's version folders and
/// manifest would land inside the other's data.
pub(crate) fn check_overlaps(cx: &mut Ctx, datasets: &BTreeMap<String, (Dataset, Location)>) {
    let all: Vec<&(Dataset, Location)> = datasets.values().collect();
    for (i, (a, _)) in all.iter().enumerate() {
        for (b, loc) in all.iter().skip(i + 1) {
            if a.store == b.store && overlaps(&a.path, &b.path) {
                cx.error(
                    loc,
                    format!(
                        "datasets `{}` and `{}` overlap in store `{}` (`{}` and `{}`)",
                        a.name, b.name, a.store, a.path, b.path
                    ),
                )
                .hint("give each dataset its own path; one may not contain the other");
            }
        }
    }
}

/// Segment-aware: `a/b` overlaps `a/b/c` but not `a/bc`.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long == short
        || long
            .strip_prefix(short)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// References resolve, each dataset has one writer, no stage reads its own
/// output or needs itself. `datasets` and `stage_names` hold every name
/// declared, valid or not, so a broken definition is not also "undefined".
/// `quarantined` maps a quarantine dataset to a dataset whose bad rows it
/// receives, to explain two writers of one.
pub(crate) fn check_stages(
    cx: &mut Ctx,
    datasets: &BTreeSet<String>,
    stage_names: &[String],
    stages: &[RawStage],
    quarantined: &HashMap<&str, &str>,
) {
    let mut writers: HashMap<&str, &RawStage> = HashMap::new();
    for s in stages {
        for (ds, loc) in s.inputs.iter().chain(&s.outputs) {
            if !datasets.contains(ds) {
                let b = cx.error(
                    loc,
                    format!("{} refers to undefined dataset `{ds}`", s.label),
                );
                match did_you_mean(ds, datasets.iter().map(String::as_str)) {
                    Some(c) => b.hint(format!("did you mean `{c}`?")),
                    None => b.hint("define it under `datasets:`"),
                }
            }
        }
        for (ds, loc) in &s.outputs {
            if s.inputs.iter().any(|(i, _)| i == ds) {
                cx.error(
                    loc,
                    format!("{} reads and writes the same dataset `{ds}`", s.label),
                )
                .hint("datasets are written once per run; write the result to a new dataset");
            }
            if let Some(first) = writers.get(ds.as_str()) {
                let b = cx.error(
                    loc,
                    format!(
                        "dataset `{ds}` is written by two stages, `{}` and `{}`",
                        first.display(),
                        s.display()
                    ),
                );
                match quarantined.get(ds.as_str()) {
                    Some(checked) => b.hint(format!(
                        "`{ds}` receives the bad rows of `{checked}`, and a dataset has one writer, so only one stage may check `{checked}`: let a `validate` stage read `{checked}` and write the rows that pass to a new dataset, and let the other stages read that one"
                    )),
                    None => b.hint("each dataset has exactly one writer; write to a new dataset instead"),
                }
            } else {
                writers.insert(ds, s);
            }
        }
        for (need, loc) in &s.needs {
            if s.name.as_ref() == Some(need) {
                cx.error(loc, format!("stage `{need}` needs itself"))
                    .hint(format!("remove `{need}` from its own `needs`"));
            } else if !stage_names.contains(need) {
                let b = cx.error(loc, format!("{} needs undefined stage `{need}`", s.label));
                match did_you_mean(need, stage_names.iter().map(String::as_str)) {
                    Some(c) => b.hint(format!("did you mean `{c}`?")),
                    None => b.hint("`needs` lists the names of other stages in this pipeline"),
                }
            }
        }
    }
}

/// A stage with `access: presigned` reads and writes only datasets in S3
/// stores: presigned URLs exist only there.
pub(crate) fn check_presigned(
    cx: &mut Ctx,
    stores: &BTreeMap<String, (Store, Location)>,
    datasets: &BTreeMap<String, (Dataset, Location)>,
    stages: &[RawStage],
) {
    for s in stages {
        let Some(StageKind::Command {
            access: Access::Presigned { .. },
            ..
        }) = &s.kind
        else {
            continue;
        };
        for (ds, loc) in s.inputs.iter().chain(&s.outputs) {
            let store = datasets
                .get(ds)
                .and_then(|(d, _)| stores.get(&d.store))
                .map(|(store, _)| store);
            if let Some(store) = store
                && !matches!(store.location, StoreLocation::S3(_))
            {
                cx.error(
                    loc,
                    format!(
                        "{} asks for `access: presigned`, but dataset `{ds}` is in store `{}`, which is not an `s3://` store",
                        s.label, store.name
                    ),
                )
                .hint("presigned URLs exist only for S3 stores; remove `access: presigned` to get files in a private folder");
            }
        }
    }
}

/// The DAG of `stages` (data edges plus `needs`), or an error per cycle.
pub(crate) fn build_dag(cx: &mut Ctx, stages: &[RawStage]) -> Option<Dag> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut writer: HashMap<&str, usize> = HashMap::new();
    for (i, s) in stages.iter().enumerate() {
        if let Some(name) = &s.name {
            index.entry(name.as_str()).or_insert(i);
        }
        for (o, _) in &s.outputs {
            writer.entry(o.as_str()).or_insert(i);
        }
    }
    let mut edges = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        for (input, _) in &s.inputs {
            if let Some(w) = writer.get(input.as_str()).filter(|w| **w != i) {
                edges.push((*w, i, Edge::Data(input.clone())));
            }
        }
        for (need, _) in &s.needs {
            if let Some(n) = index.get(need.as_str()).filter(|n| **n != i) {
                edges.push((*n, i, Edge::Needs));
            }
        }
    }
    match Dag::build(stages.len(), &edges) {
        Ok(dag) => Some(dag),
        Err(cycles) => {
            for cycle in cycles {
                report_cycle(cx, stages, &edges, &cycle);
            }
            None
        }
    }
}

/// `stages form a cycle: a -> b -> a`, with each step explained in the hint.
fn report_cycle(
    cx: &mut Ctx,
    stages: &[RawStage],
    edges: &[(usize, usize, Edge)],
    cycle: &[usize],
) {
    let name = |i: &usize| stages.get(*i).map_or("?", RawStage::display);
    let path: Vec<&str> = cycle.iter().map(name).collect();
    let steps: Vec<String> = cycle
        .windows(2)
        .filter_map(|w| {
            let (from, to) = (w.first()?, w.get(1)?);
            let (_, _, why) = edges.iter().find(|(a, b, _)| a == from && b == to)?;
            Some(match why {
                Edge::Data(ds) => {
                    format!("`{}` reads `{ds}`, which `{}` writes", name(to), name(from))
                }
                Edge::Needs => format!("`{}` needs `{}`", name(to), name(from)),
            })
        })
        .collect();
    let Some(at) = cycle.first().and_then(|i| stages.get(*i)) else {
        return;
    };
    cx.error(
        &at.loc,
        format!("stages form a cycle: {}", path.join(" -> ")),
    )
    .hint(format!(
        "{}; a stage cannot depend, through data or `needs`, on its own result",
        steps.join("; ")
    ));
}

/// Warnings for datasets no stage uses and stores no dataset uses.
pub(crate) fn warn_unused(
    cx: &mut Ctx,
    stores: &BTreeMap<String, (Store, Location)>,
    datasets: &BTreeMap<String, (Dataset, Location)>,
    stages: &[RawStage],
) {
    for (name, (_, loc)) in datasets {
        let used = stages
            .iter()
            .any(|s| s.inputs.iter().chain(&s.outputs).any(|(d, _)| d == name));
        if !used {
            cx.warning(loc, format!("dataset `{name}` is not used by any stage"))
                .hint("remove it, or read or write it in a stage");
        }
    }
    for (name, (_, loc)) in stores {
        if !datasets.values().any(|(d, _)| &d.store == name) {
            cx.warning(loc, format!("store `{name}` is not used by any dataset"))
                .hint("remove it, or put a dataset in it");
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
