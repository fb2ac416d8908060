//! Cross-checks for data contracts: quarantine datasets, and what each kind
//! of stage may do with contracted datasets.
//!
//! Like [`crate::rules`], these run on whatever could be decoded. A dataset
//! whose contract has errors of its own is skipped, so one mistake in a
//! contract is not reported again by every stage that touches it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::contract::Contract;
use crate::decode::Ctx;
use crate::diagnostic::{Location, did_you_mean};
use crate::model::{Access, Dataset, StageKind};
use crate::stage::RawStage;

/// Where a dataset's `contract:` is written, and whether it decoded.
pub(crate) struct ContractSite {
    /// Where the contract's `quarantine` dataset is named (perhaps in a
    /// contract file).
    pub(crate) quarantine_at: Option<Location>,
    /// Whether the contract decoded without errors.
    pub(crate) decoded: bool,
}

/// What the rules know about datasets and their contracts.
pub(crate) struct Contracts<'a> {
    datasets: &'a BTreeMap<String, (Dataset, Location)>,
    sites: &'a BTreeMap<String, ContractSite>,
    /// Every dataset name declared, valid or not.
    declared: &'a BTreeSet<String>,
}

impl<'a> Contracts<'a> {
    pub(crate) fn new(
        datasets: &'a BTreeMap<String, (Dataset, Location)>,
        sites: &'a BTreeMap<String, ContractSite>,
        declared: &'a BTreeSet<String>,
    ) -> Self {
        Self {
            datasets,
            sites,
            declared,
        }
    }

    /// Whether `ds` declares a contract, valid or not.
    fn declares(&self, ds: &str) -> bool {
        self.sites.contains_key(ds)
    }

    /// Whether everything about `ds`'s contract is known: the dataset is
    /// undefined (so it has none), or it decoded, and so did its contract.
    fn known(&self, ds: &str) -> bool {
        !self.declared.contains(ds)
            || (self.datasets.contains_key(ds) && self.sites.get(ds).is_none_or(|s| s.decoded))
    }

    fn contract(&self, ds: &str) -> Option<&'a Contract> {
        self.datasets.get(ds)?.0.contract.as_ref()
    }

    /// The dataset `ds`'s bad rows go to, if its contract quarantines.
    pub(crate) fn quarantine(&self, ds: &str) -> Option<&'a str> {
        self.contract(ds)?.quarantine()
    }

    /// Quarantine dataset -> the first dataset that sends bad rows to it.
    pub(crate) fn quarantined(&self) -> HashMap<&'a str, &'a str> {
        let mut out = HashMap::new();
        for name in self.datasets.keys() {
            if let Some(q) = self.quarantine(name) {
                out.entry(q).or_insert(name.as_str());
            }
        }
        out
    }

    /// The quarantine datasets of `s`'s inputs and outputs.
    fn quarantines_of(&self, s: &RawStage) -> BTreeSet<&'a str> {
        s.inputs
            .iter()
            .chain(&s.outputs)
            .filter_map(|(d, _)| self.quarantine(d))
            .collect()
    }
}

/// Every quarantine dataset is declared, is not its own dataset, and does
/// not quarantine in turn.
pub(crate) fn check_quarantine_datasets(cx: &mut Ctx, contracts: &Contracts<'_>) {
    let declared = contracts.declared;
    for name in contracts.datasets.keys() {
        let (Some(q), Some(at)) = (
            contracts.quarantine(name),
            contracts
                .sites
                .get(name)
                .and_then(|s| s.quarantine_at.as_ref()),
        ) else {
            continue;
        };
        if !declared.contains(q) {
            let b = cx.error(
                at,
                format!(
                    "the contract of dataset `{name}` sends bad rows to undefined dataset `{q}`"
                ),
            );
            match did_you_mean(q, declared.iter().map(String::as_str)) {
                Some(c) => b.hint(format!("did you mean `{c}`?")),
                None => b.hint(format!(
                    "define `{q}` under `datasets:`, in the same store, e.g. `{q}: {{ store: ..., path: quarantine/{name} }}`"
                )),
            }
        } else if q == name {
            cx.error(
                at,
                format!("dataset `{name}` cannot be its own quarantine dataset"),
            )
            .hint(format!(
                "name another dataset for the bad rows, e.g. `{name}_rejected`"
            ));
        } else if let Some(r) = contracts.quarantine(q) {
            cx.error(
                at,
                format!(
                    "the quarantine dataset `{q}` of `{name}` has a contract that quarantines too (to `{r}`)"
                ),
            )
            .hint(format!(
                "a quarantine dataset's contract must fail on violations: remove `on_violation: quarantine` from the contract of `{q}`"
            ));
        }
    }
}

/// Per stage: quarantine datasets are among the outputs of the stage that
/// sends rows to them, and each kind uses contracts as it may.
pub(crate) fn check_stages(cx: &mut Ctx, contracts: &Contracts<'_>, stages: &[RawStage]) {
    let mut writer: HashMap<&str, &RawStage> = HashMap::new();
    for s in stages {
        for (o, _) in &s.outputs {
            writer.entry(o.as_str()).or_insert(s);
        }
    }
    for s in stages {
        check_quarantine_outputs(cx, contracts, &writer, s);
        match &s.kind {
            Some(StageKind::Sql { .. }) => check_sql(cx, contracts, s),
            Some(StageKind::Validate) => check_validate(cx, contracts, s),
            Some(StageKind::Split { key, parts }) => check_split(cx, contracts, s, key, parts),
            Some(StageKind::Command {
                access: Access::Presigned { .. },
                ..
            }) => check_presigned(cx, contracts, s),
            _ => {}
        }
    }
}

/// A stage that writes a quarantining dataset, or reads an external one,
/// lists its quarantine dataset among its outputs.
fn check_quarantine_outputs(
    cx: &mut Ctx,
    contracts: &Contracts<'_>,
    writer: &HashMap<&str, &RawStage>,
    s: &RawStage,
) {
    let written = s.outputs.iter().map(|o| (o, true));
    let external = s
        .inputs
        .iter()
        .filter(|(d, _)| !writer.contains_key(d.as_str()))
        .map(|i| (i, false));
    let mut sent_to: HashMap<&str, &str> = HashMap::new();
    for ((d, loc), writes) in written.chain(external) {
        let Some(q) = contracts.quarantine(d) else {
            continue;
        };
        if q == d || !contracts.declared.contains(q) {
            continue; // reported on the contract
        }
        let how = if writes {
            "writes"
        } else {
            "reads external dataset"
        };
        if let Some(first) = sent_to.insert(q, d)
            && first != d
        {
            cx.error(
                loc,
                format!(
                    "{} would write bad rows of both `{first}` and `{d}` to `{q}`",
                    s.label
                ),
            )
            .hint("give each contracted dataset its own quarantine dataset: bad rows keep the columns of the dataset they came from");
            continue;
        }
        if s.outputs.iter().any(|(o, _)| o == q) {
            continue;
        }
        let b = cx.error(
            loc,
            format!(
                "{} {how} `{d}`, whose contract quarantines bad rows to `{q}`, but `{q}` is not in its outputs",
                s.label
            ),
        );
        match writer.get(q) {
            Some(w) if !writes && w.inputs.iter().any(|(i, _)| i == d) => b.hint(format!(
                "`{q}` is written by stage `{}`, which checks `{d}` too; a dataset has one writer, so only one stage may check `{d}`: let a `validate` stage read `{d}` and write the rows that pass to a new dataset, and read that one here",
                w.display()
            )),
            Some(w) => b.hint(format!(
                "`{q}` is written by stage `{}`; a dataset has one writer, so give the contract of `{d}` its own quarantine dataset",
                w.display()
            )),
            None => b.hint(format!(
                "add `{q}` to outputs: bad rows of `{d}` are written there"
            )),
        }
    }
}

/// How many outputs of `s` are data, not quarantine datasets; `None` when a
/// contract that would tell is broken.
fn data_outputs(contracts: &Contracts<'_>, s: &RawStage) -> Option<usize> {
    let all_known = s
        .inputs
        .iter()
        .chain(&s.outputs)
        .all(|(d, _)| contracts.known(d));
    let listed = s.outputs_listed?;
    if !all_known {
        return None;
    }
    let quarantines = contracts.quarantines_of(s);
    let q = s
        .outputs
        .iter()
        .filter(|(o, _)| quarantines.contains(o.as_str()))
        .count();
    Some(listed.saturating_sub(q))
}

fn check_sql(cx: &mut Ctx, contracts: &Contracts<'_>, s: &RawStage) {
    let Some(n) = data_outputs(contracts, s).filter(|n| *n != 1) else {
        return;
    };
    let hint = if n == 0 {
        "name the one dataset the stage writes, e.g. `outputs: [clean_events]`"
    } else {
        "split the work into one sql stage per output dataset"
    };
    cx.error(
        &s.outputs_at,
        format!(
            "{}: a `sql` stage writes exactly one output (not counting quarantine datasets), found {n}",
            s.label
        ),
    )
    .hint(hint);
}

fn check_validate(cx: &mut Ctx, contracts: &Contracts<'_>, s: &RawStage) {
    if let [(input, loc)] = s.inputs.as_slice()
        && contracts.datasets.contains_key(input)
        && !contracts.declares(input)
    {
        cx.error(
            loc,
            format!(
                "{}: the input `{input}` of a `validate` stage has no contract",
                s.label
            ),
        )
        .hint(format!(
            "add a `contract:` to dataset `{input}`; a `validate` stage checks its input against it"
        ));
    }
    if let Some(n) = data_outputs(contracts, s).filter(|n| *n > 1) {
        cx.error(
            &s.outputs_at,
            format!(
                "{}: a `validate` stage writes at most one output (the rows that pass) besides quarantine datasets, found {n}",
                s.label
            ),
        )
        .hint("list the dataset that receives the rows that pass, and the input's quarantine dataset if its contract quarantines");
    }
}

fn check_split(
    cx: &mut Ctx,
    contracts: &Contracts<'_>,
    s: &RawStage,
    key: &str,
    parts: &[crate::model::SplitPart],
) {
    if let [(input, _)] = s.inputs.as_slice()
        && let Some(contract) = contracts.contract(input)
        && contract.column(key).is_none()
        && let Some(at) = &s.key_at
    {
        let b = cx.error(
            at,
            format!(
                "{}: split `key` `{key}` is not a column of the contract of `{input}`",
                s.label
            ),
        );
        match crate::column::suggest(key, contract.columns.iter().map(|c| c.name.as_str())) {
            Some(c) => b.hint(format!("did you mean `{c}`?")),
            None => b.hint(format!(
                "declare `{key}` in the contract of `{input}`, or split by one of its columns"
            )),
        }
    }
    if !s
        .inputs
        .iter()
        .chain(&s.outputs)
        .all(|(d, _)| contracts.known(d))
    {
        return;
    }
    let quarantines = contracts.quarantines_of(s);
    for (o, loc) in &s.outputs {
        if !parts.iter().any(|p| p.dataset == *o) && !quarantines.contains(o.as_str()) {
            cx.error(
                loc,
                format!("{}: output `{o}` has no share in `ratios`", s.label),
            )
            .hint(format!(
                "add `{o}: <fraction>` to `ratios`, or remove it from `outputs`"
            ));
        }
    }
}

fn check_presigned(cx: &mut Ctx, contracts: &Contracts<'_>, s: &RawStage) {
    for (d, loc) in s.inputs.iter().chain(&s.outputs) {
        if contracts.declares(d) {
            cx.error(
                loc,
                format!(
                    "{} asks for `access: presigned`, but dataset `{d}` has a contract, which weir can check only on data it moves itself",
                    s.label
                ),
            )
            .hint("remove `access: presigned`: with materialized access (the default) weir copies the data and checks it against the contract");
        }
    }
}
