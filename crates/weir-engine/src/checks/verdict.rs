//! Checking loaded rows against a contract, and the texts that describe
//! the outcome (never a value).

use std::sync::Arc;

use weir_contract::{Checker, Report};
use weir_spec::Contract;

use super::InputData;
use super::load::Loaded;
use crate::error::{Error, Result};

/// The outcome of checking one dataset's rows.
pub(super) struct Verdict {
    pub(super) rows: u64,
    pub(super) bad_rows: u64,
    pub(super) good: InputData,
    pub(super) quarantine: InputData,
    pub(super) report: Report,
    pub(super) schema_errors: Vec<String>,
    pub(super) malformed: Vec<weir_contract::csv::Malformed>,
    pub(super) malformed_count: u64,
}

/// Checks `loaded` against `contract` on a blocking thread.
pub(super) async fn check(contract: &Contract, loaded: Loaded) -> Result<Verdict> {
    let checker = Checker::new(contract).map_err(|e| Error::Internal {
        message: format!("contract: {e}"),
    })?;
    tokio::task::spawn_blocking(move || check_blocking(&checker, loaded))
        .await
        .map_err(|e| Error::Internal {
            message: format!("checking a contract: {e}"),
        })?
}

pub(super) fn check_blocking(checker: &Checker, loaded: Loaded) -> Result<Verdict> {
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

/// A one-line account of what broke, for the audit log: rules and counts,
/// never a value.
pub(super) fn summary(verdict: &Verdict) -> String {
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
pub(super) fn failure_report(verdict: &Verdict) -> String {
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
