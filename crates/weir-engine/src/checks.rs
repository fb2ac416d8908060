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
use object_store::{ObjectStore, ObjectStoreExt};
use weir_audit::{Action as AuditAction, Decision};
use weir_contract::{Checker, Report};
use weir_spec::{Access, Contract, Format};

use crate::columns::ColumnAccess;
use crate::datafile::{self, DataFile};
use crate::dataset::{self, ManifestFile, Staged};
use crate::error::{Error, Result};
use crate::executor::Attempt;
use crate::record::{CheckPoint, ContractCheck};

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
    let input = cx
        .stage
        .inputs
        .first()
        .cloned()
        .ok_or_else(|| Error::Internal {
            message: "validate stage without input".into(),
        })?;
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

/// Rows as read for a check, plus CSV rows that could not be parsed.
struct Loaded {
    data: InputData,
    malformed: Vec<weir_contract::csv::Malformed>,
    malformed_count: u64,
}

async fn read_plain(
    store: &Arc<dyn ObjectStore>,
    files: &[DataFile],
    format: Format,
) -> Result<InputData> {
    let mut batches = Vec::new();
    let mut empty_schema = None;
    for f in files {
        match format {
            Format::Parquet => {
                let (schema, read) = datafile::read_parquet(store, f).await?;
                empty_schema.get_or_insert(schema);
                batches.extend(read);
            }
            Format::Csv => batches.extend(datafile::read_csv_inferred(store.as_ref(), f).await?),
        }
    }
    if batches.is_empty()
        && let Some(schema) = empty_schema
    {
        // No rows anywhere: keep the footer's schema for the checks.
        batches.push(RecordBatch::new_empty(schema));
    }
    let schema = unify(files, &batches)?;
    Ok(InputData { schema, batches })
}

async fn read_for_check(
    store: &Arc<dyn ObjectStore>,
    files: &[DataFile],
    format: Format,
    contract: &Contract,
) -> Result<Loaded> {
    if format == Format::Parquet {
        return Ok(Loaded {
            data: read_plain(store, files, format).await?,
            malformed: Vec::new(),
            malformed_count: 0,
        });
    }
    let mut batches = Vec::new();
    let mut malformed = Vec::new();
    let mut malformed_count = 0u64;
    for f in files {
        let body = datafile::read_bytes(store.as_ref(), f).await?;
        let contract = contract.clone();
        let path = f.path.to_string();
        let read = tokio::task::spawn_blocking(move || {
            weir_contract::csv::read(body.as_ref(), &contract, datafile::BATCH_ROWS)
        })
        .await
        .map_err(|e| Error::Internal {
            message: format!("reading CSV: {e}"),
        })?
        .map_err(|e| Error::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        malformed_count += read.malformed_rows;
        malformed.extend(read.malformed);
        if read.batches.is_empty() && batches.is_empty() {
            // Keep the declared schema of an empty file.
            batches.push(RecordBatch::new_empty(read.schema));
        } else {
            batches.extend(read.batches);
        }
    }
    let schema = unify(files, &batches)?;
    Ok(Loaded {
        data: InputData { schema, batches },
        malformed,
        malformed_count,
    })
}

/// The one schema of `batches` (all files of a dataset must agree).
fn unify(files: &[DataFile], batches: &[RecordBatch]) -> Result<SchemaRef> {
    let Some(first) = batches.first() else {
        return Ok(Arc::new(arrow::datatypes::Schema::empty()));
    };
    let schema = first.schema();
    if let Some(other) = batches
        .iter()
        .find(|b| b.schema().fields() != schema.fields())
    {
        return Err(Error::Read {
            path: files
                .first()
                .map(|f| f.path.to_string())
                .unwrap_or_default(),
            message: format!(
                "the dataset's files disagree on their schema: {} vs {}",
                schema,
                other.schema()
            ),
        });
    }
    Ok(schema)
}

/// The outcome of checking one dataset's rows.
struct Verdict {
    rows: u64,
    bad_rows: u64,
    good: InputData,
    quarantine: InputData,
    report: Report,
    schema_errors: Vec<String>,
    malformed: Vec<weir_contract::csv::Malformed>,
    malformed_count: u64,
}

/// Checks `loaded` against `contract` on a blocking thread.
async fn check(contract: &Contract, loaded: Loaded) -> Result<Verdict> {
    let checker = Checker::new(contract).map_err(|e| Error::Internal {
        message: format!("contract: {e}"),
    })?;
    tokio::task::spawn_blocking(move || check_blocking(&checker, loaded))
        .await
        .map_err(|e| Error::Internal {
            message: format!("checking a contract: {e}"),
        })?
}

fn check_blocking(checker: &Checker, loaded: Loaded) -> Result<Verdict> {
    let Loaded {
        data,
        malformed,
        malformed_count,
    } = loaded;
    let schema_errors: Vec<String> = checker
        .check_schema(&data.schema)
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut validation = checker.begin();
    let mut good = Vec::with_capacity(data.batches.len());
    let mut bad = Vec::new();
    let internal = |e: &dyn std::fmt::Display| Error::Internal {
        message: format!("contract check: {e}"),
    };
    if schema_errors.is_empty() {
        for batch in &data.batches {
            let verdict = validation.check(batch).map_err(|e| internal(&e))?;
            if verdict.is_all_good() {
                good.push(batch.clone());
                continue;
            }
            good.push(weir_contract::filter_good(batch, &verdict).map_err(|e| internal(&e))?);
            bad.push(weir_contract::quarantine_rows(batch, &verdict).map_err(|e| internal(&e))?);
        }
    }
    let report = validation.finish();
    // Only needed (and only valid) where rows can be quarantined: a dataset
    // that already has `weir_row` (a quarantine dataset) can still be checked.
    let quarantine_schema = weir_contract::quarantine_schema(&data.schema)
        .map(Arc::new)
        .unwrap_or_else(|_| Arc::new(arrow::datatypes::Schema::empty()));
    Ok(Verdict {
        rows: report.rows_checked + malformed_count,
        bad_rows: report.rows_bad + malformed_count,
        good: InputData {
            schema: data.schema,
            batches: good,
        },
        quarantine: InputData {
            schema: quarantine_schema,
            batches: bad,
        },
        report,
        schema_errors,
        malformed,
        malformed_count,
    })
}

/// Records the check, stages quarantined rows, and returns the good rows;
/// or records the failure and returns [`Error::Contract`].
///
/// `view`: the column limits of the reading stage, applied to quarantined
/// rows too (they are written where the stage, or a later one, may read
/// them). Malformed CSV rows are never quarantined: a row that cannot be
/// parsed has no typed form to keep, so it always fails the stage.
async fn settle(
    cx: &mut Attempt<'_>,
    name: &str,
    on: CheckPoint,
    contract: &Contract,
    verdict: Verdict,
    view: Option<ColumnAccess>,
) -> Result<InputData> {
    let quarantine = contract
        .quarantine()
        .filter(|q| cx.is_quarantine_output(q))
        .map(str::to_owned);
    let fails = !verdict.schema_errors.is_empty()
        || verdict.malformed_count > 0
        || (verdict.bad_rows > 0 && quarantine.is_none());
    let on_text = match on {
        CheckPoint::Read => "read",
        CheckPoint::Write => "write",
    };
    if fails {
        let report = failure_report(&verdict);
        audit(
            cx,
            name,
            Decision::Deny,
            format!("{on_text}: {}", summary(&verdict)),
        )
        .await?;
        cx.checks.records.push(ContractCheck {
            dataset: name.to_owned(),
            on,
            rows: verdict.rows,
            bad: verdict.bad_rows,
            quarantine: None,
        });
        return Err(Error::Contract {
            dataset: name.to_owned(),
            on: on_text,
            report,
        });
    }
    if let Some(q) = &quarantine {
        let format = cx.dataset(q)?.format;
        let (store, _) = cx.locate(q)?;
        if verdict.quarantine.schema.fields().is_empty() {
            return Err(Error::Contract {
                dataset: name.to_owned(),
                on: on_text,
                report: "its rows cannot be quarantined: it already has a `weir_row` or \
                         `weir_violations` column"
                    .into(),
            });
        }
        let rows = match &view {
            Some(access) => {
                restrict_quarantine(cx, name, access, verdict.quarantine.clone()).await?
            }
            None => verdict.quarantine.clone(),
        };
        let file = datafile::write(
            &store,
            &cx.version_prefix(q)?,
            &format!("quarantine-{name}-{on_text}.{}", format.extension()),
            format,
            &rows.schema,
            &rows.batches,
        )
        .await?;
        cx.checks
            .quarantined
            .entry(q.clone())
            .or_default()
            .push(file);
    }
    let reason = match &quarantine {
        Some(q) if verdict.bad_rows > 0 => format!(
            "{on_text}: {} rows, {} quarantined to `{q}`: {}",
            verdict.rows,
            verdict.bad_rows,
            summary(&verdict)
        ),
        _ => format!("{on_text}: {} rows passed", verdict.rows),
    };
    audit(cx, name, Decision::Allow, reason).await?;
    cx.checks.records.push(ContractCheck {
        dataset: name.to_owned(),
        on,
        rows: verdict.rows,
        bad: verdict.bad_rows,
        quarantine,
    });
    Ok(verdict.good)
}

/// Quarantined rows as the reading stage may see them: its column limits
/// and masks applied to the data columns, `weir_row` and `weir_violations`
/// kept as they are.
async fn restrict_quarantine(
    cx: &Attempt<'_>,
    name: &str,
    access: &ColumnAccess,
    rows: InputData,
) -> Result<InputData> {
    use weir_contract::{ROW_COLUMN, VIOLATIONS_COLUMN};
    let key = cx.mask_key(access)?;
    let data_fields: Vec<usize> = (0..rows.schema.fields().len())
        .filter(|i| {
            let n = rows.schema.field(*i).name();
            n != ROW_COLUMN && n != VIOLATIONS_COLUMN
        })
        .collect();
    let data_schema = Arc::new(
        rows.schema
            .project(&data_fields)
            .map_err(|e| Error::Internal {
                message: format!("quarantine schema: {e}"),
            })?,
    );
    let mut data = Vec::with_capacity(rows.batches.len());
    for b in &rows.batches {
        data.push(b.project(&data_fields).map_err(|e| Error::Internal {
            message: format!("quarantine rows: {e}"),
        })?);
    }
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(1),
    );
    let frame = crate::sql::frame_from_batches(&ctx, data_schema, data)?;
    let frame = crate::columns::restrict(frame, access, key.as_ref(), name)
        .map_err(|e| Error::column(name, e))?;
    let visible: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let restricted =
        arrow::compute::concat_batches(&visible, &frame.collect().await?).map_err(|e| {
            Error::Internal {
                message: format!("quarantine rows: {e}"),
            }
        })?;
    let all = arrow::compute::concat_batches(&rows.schema, &rows.batches).map_err(|e| {
        Error::Internal {
            message: format!("quarantine rows: {e}"),
        }
    })?;
    let mut fields: Vec<_> = visible.fields().iter().cloned().collect();
    let mut columns = restricted.columns().to_vec();
    for extra in [ROW_COLUMN, VIOLATIONS_COLUMN] {
        let (i, field) = rows
            .schema
            .column_with_name(extra)
            .ok_or_else(|| Error::Internal {
                message: format!("quarantine rows lack `{extra}`"),
            })?;
        fields.push(Arc::new(field.clone()));
        columns.push(Arc::clone(all.column(i)));
    }
    let schema: SchemaRef = Arc::new(arrow::datatypes::Schema::new(fields));
    let batch =
        RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| Error::Internal {
            message: format!("quarantine rows: {e}"),
        })?;
    Ok(InputData {
        schema,
        batches: vec![batch],
    })
}

/// A one-line account of what broke, for the audit log: rules and counts,
/// never a value.
fn summary(verdict: &Verdict) -> String {
    let mut parts: Vec<String> = verdict
        .schema_errors
        .iter()
        .map(|e| format!("schema: {e}"))
        .collect();
    if verdict.malformed_count > 0 {
        parts.push(format!("{} malformed CSV row(s)", verdict.malformed_count));
    }
    parts.extend(
        verdict
            .report
            .violations
            .iter()
            .map(|v| format!("{}:{} {} row(s)", v.column, v.rule.name(), v.rows)),
    );
    if parts.is_empty() {
        "no violation".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The text of a failing check: schema problems, malformed CSV rows (with
/// their line numbers), then the rule violations.
fn failure_report(verdict: &Verdict) -> String {
    let mut out = String::new();
    for e in &verdict.schema_errors {
        out.push_str(&format!("  schema: {e}\n"));
    }
    if verdict.malformed_count > 0 {
        out.push_str(&format!(
            "  {} CSV row(s) could not be parsed with the declared types:\n",
            verdict.malformed_count
        ));
        for m in verdict.malformed.iter().take(20) {
            out.push_str(&format!("    {m}\n"));
        }
    }
    if verdict.report.rows_bad > 0 {
        out.push_str(&verdict.report.to_string());
    }
    out.trim_end().to_owned()
}

/// Records one `contract_check` event for dataset `name`.
async fn audit(cx: &Attempt<'_>, name: &str, decision: Decision, reason: String) -> Result<()> {
    let ds = cx.dataset(name)?;
    let claims = &cx.access.claims;
    let event = cx
        .exec
        .audit
        .event(&claims.sub, AuditAction::ContractCheck, decision)
        .with_stage(&claims.run, &claims.stage, claims.attempt)
        .with_resource(&ds.store, &ds.path)
        .with_reason(reason);
    cx.exec.audit.record(event).await
}
