//! Data contracts enforced on every read of an input and every write of an
//! output that has one.
//!
//! # Guarantees
//! - An input with a contract reaches an operator only after all its rows
//!   were checked; an output is committed only after all its staged rows
//!   were checked. Schema problems (a missing column, a wrong type, an
//!   extra column under `strict`) always fail the stage.
//! - Bad rows fail the stage with a report (column, rule, count, row
//!   numbers; never a value of a sensitive column, nor of a column the
//!   stage may not read), unless the contract quarantines and the stage
//!   lists the quarantine dataset among its outputs: then the bad rows are
//!   committed there (with `weir_row` and `weir_violations`) and the good
//!   rows continue.
//! - Every check is an audit event (`contract_check`: allow when the data
//!   passed or was quarantined, deny when it failed the stage), recorded
//!   before the stage goes on; if it cannot be recorded the stage fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use weir_spec::{Access, Contract};

use crate::columns::ColumnAccess;
use crate::datafile::{self, DataFile};
use crate::dataset::{self, ManifestFile, Staged};
use crate::error::{Error, Result};
use crate::executor::Attempt;
use crate::record::{CheckPoint, ContractCheck};

mod load;
mod settle;
mod verdict;

use load::{read_for_check, read_plain};
use settle::settle;
use verdict::check;

/// Rows of one dataset, all of one schema.
#[derive(Debug, Clone)]
pub(crate) struct InputData {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
}

/// The contract checks of one attempt and the quarantined rows they staged.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    records: Vec<ContractCheck>,
    quarantined: BTreeMap<String, Vec<ManifestFile>>,
}

impl Checks {
    /// The checks made, for the run record.
    pub(crate) fn take_records(&mut self) -> Vec<ContractCheck> {
        std::mem::take(&mut self.records)
    }

    /// Quarantine files staged, by quarantine dataset.
    pub(crate) fn take_quarantined(&mut self) -> BTreeMap<String, Vec<ManifestFile>> {
        std::mem::take(&mut self.quarantined)
    }
}

/// Reads every row and column of input `name`, checked against its
/// contract if it has one.
///
/// # Errors
/// Read errors, [`Error::Contract`] on a violation that is not quarantined.
pub(crate) async fn read_input(cx: &mut Attempt<'_>, name: &str) -> Result<InputData> {
    let ds = cx.dataset(name)?.clone();
    let (store, path) = cx.locate(name)?;
    let location = dataset::resolve_read(store.as_ref(), name, &path).await?;
    let files = datafile::files(store.as_ref(), &location, ds.format).await?;
    let Some(contract) = &ds.contract else {
        return read_plain(&store, &files, ds.format).await;
    };
    let access = cx.column_access(name)?;
    let contract = visible_contract(contract, &access);
    let loaded = read_for_check(&store, &files, ds.format, &contract).await?;
    let verdict = check(&contract, loaded).await?;
    let quarantine_view = (!access.is_unrestricted()).then_some(access);
    settle(
        cx,
        name,
        CheckPoint::Read,
        &contract,
        verdict,
        quarantine_view,
    )
    .await
}

/// [`read_input`], then the stage's column rules and masks applied: the
/// rows an operator may hand on (to an output or a child process).
///
/// # Errors
/// As [`read_input`], plus [`Error::ColumnDenied`] if the rules cannot be
/// applied.
pub(crate) async fn read_restricted(cx: &mut Attempt<'_>, name: &str) -> Result<InputData> {
    let data = read_input(cx, name).await?;
    let access = cx.column_access(name)?;
    if access.is_unrestricted() {
        return Ok(data);
    }
    let key = cx.mask_key(&access)?;
    let ctx = SessionContext::new();
    let frame = crate::sql::frame_from_batches(&ctx, data.schema, data.batches)?;
    let frame = crate::columns::restrict(frame, &access, key.as_ref(), name)
        .map_err(|e| Error::column(name, e))?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok(InputData { schema, batches })
}

/// For a `command` stage: the rows to write into the child's folder in
/// place of a copy, when weir must rewrite the input (a contract, hidden
/// columns or masks); `None` when a plain copy is faithful.
///
/// # Errors
/// [`Error::Security`] for presigned access to such an input (a raw URL
/// would hand the child every row and column), or as [`read_restricted`].
pub(crate) async fn prepared_input(
    cx: &mut Attempt<'_>,
    name: &str,
    access: Access,
) -> Result<Option<InputData>> {
    let rewritten =
        cx.dataset(name)?.contract.is_some() || !cx.column_access(name)?.is_unrestricted();
    if !rewritten {
        return Ok(None);
    }
    if matches!(access, Access::Presigned { .. }) {
        return Err(Error::security(format!(
            "input `{name}` has a data contract or column rules, which weir enforces by reading \
             the data itself; a presigned URL would hand the command every row and column. \
             Use `access: materialized` for this stage"
        )));
    }
    read_restricted(cx, name).await.map(Some)
}

/// Checks a staged output against its dataset's contract before it is
/// committed. Returns what to commit: the staged files as they are, or
/// (when bad rows were quarantined) a rewritten file of the good rows.
///
/// # Errors
/// [`Error::Contract`] on a violation that is not quarantined; read and
/// write errors.
pub(crate) async fn check_output(cx: &mut Attempt<'_>, staged: Staged) -> Result<Staged> {
    let ds = cx.dataset(&staged.dataset)?.clone();
    let Some(contract) = &ds.contract else {
        return Ok(staged);
    };
    let (store, _) = cx.locate(&staged.dataset)?;
    let prefix = cx.version_prefix(&staged.dataset)?;
    let files: Vec<DataFile> = staged
        .files
        .iter()
        .map(|f| {
            object_store::path::Path::parse(format!("{prefix}/{}", f.name))
                .map(|path| DataFile { path })
                .map_err(|e| Error::Internal {
                    message: format!("staged file name: {e}"),
                })
        })
        .collect::<Result<_>>()?;
    let loaded = read_for_check(&store, &files, ds.format, contract).await?;
    let verdict = check(contract, loaded).await?;
    if verdict.bad_rows == 0 {
        settle(
            cx,
            &staged.dataset,
            CheckPoint::Write,
            contract,
            verdict,
            None,
        )
        .await?;
        return Ok(staged);
    }
    let good = settle(
        cx,
        &staged.dataset,
        CheckPoint::Write,
        contract,
        verdict,
        None,
    )
    .await?;
    // Bad rows were quarantined: replace the staged files by the good rows.
    for f in &files {
        match store.delete(&f.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(&f.path, e)),
        }
    }
    let file = datafile::write(
        &store,
        &prefix,
        &datafile::part_name(ds.format),
        ds.format,
        &good.schema,
        &good.batches,
    )
    .await?;
    Ok(Staged {
        dataset: staged.dataset,
        files: vec![file],
    })
}

/// Runs a `validate` stage: the input is checked on read (quarantining as
/// its contract says); the rows that pass go to the data output, if any.
///
/// # Errors
/// As [`read_restricted`], plus write errors.
pub(crate) async fn run_validate(cx: &mut Attempt<'_>) -> Result<Vec<Staged>> {
    let input = cx.single_input()?;
    let data = read_restricted(cx, &input).await?;
    let Some(output) = cx.data_outputs().first().map(|s| (*s).clone()) else {
        return Ok(Vec::new());
    };
    let (store, _) = cx.locate(&output)?;
    let format = cx.dataset(&output)?.format;
    let file = datafile::write(
        &store,
        &cx.version_prefix(&output)?,
        &datafile::part_name(format),
        format,
        &data.schema,
        &data.batches,
    )
    .await?;
    Ok(vec![Staged {
        dataset: output,
        files: vec![file],
    }])
}

/// The part of `contract` a stage may check on read: for every column it
/// may not read in the clear (hidden or masked) only the type is kept, and
/// the column is sensitive; a primary key over such a column is dropped.
///
/// # Security
/// A rule checked on a value the stage cannot see is an oracle: which rows
/// pass `regex: '^1'` tells the stage the first digit of a hidden value.
/// Those rules were checked when the data was written, by a stage that
/// could see it.
fn visible_contract(contract: &Contract, access: &ColumnAccess) -> Contract {
    let mut c = contract.clone();
    let mut hidden = Vec::new();
    for col in &mut c.columns {
        if !access.shows_in_clear(&col.name) {
            col.sensitive = true;
            col.nullable = true;
            col.unique = false;
            col.range = None;
            col.allowed = None;
            col.regex = None;
            col.max_length = None;
            hidden.push(col.name.clone());
        }
    }
    if c.primary_key.iter().any(|k| hidden.contains(k)) {
        c.primary_key.clear();
    }
    c
}
