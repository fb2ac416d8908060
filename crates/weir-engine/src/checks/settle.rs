//! Acting on a verdict: record the check, stage quarantined rows (with the
//! reading stage's column limits), or fail the stage.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use weir_audit::{Action as AuditAction, Decision};
use weir_spec::Contract;

use super::InputData;
use super::verdict::{Verdict, failure_report, summary};
use crate::columns::ColumnAccess;
use crate::datafile;
use crate::error::{Error, Result};
use crate::executor::Attempt;
use crate::record::{CheckPoint, ContractCheck};

/// Records the check, stages quarantined rows, and returns the good rows;
/// or records the failure and returns [`Error::Contract`].
///
/// `view`: the column limits of the reading stage, applied to quarantined
/// rows too (they are written where the stage, or a later one, may read
/// them). Malformed CSV rows are never quarantined: a row that cannot be
/// parsed has no typed form to keep, so it always fails the stage.
pub(super) async fn settle(
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
pub(super) async fn restrict_quarantine(
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

/// Records one `contract_check` event for dataset `name`.
pub(super) async fn audit(
    cx: &Attempt<'_>,
    name: &str,
    decision: Decision,
    reason: String,
) -> Result<()> {
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
