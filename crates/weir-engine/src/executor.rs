//! Running one stage attempt with stores already bound to its verified token.
//!
//! The same code runs a stage in `weir run` (stores bound by
//! [`crate::Security`] in this process) and on a remote `weir worker`
//! (stores bound from a token that arrived in a verified envelope). It never
//! sees a raw store: every store it is given is a guarded one.
//!
//! Every operator *stages* its outputs into the attempt's version folders;
//! [`StageExecutor::commit_outputs`] then checks each against its data
//! contract (sending bad rows to quarantine where the contract says so)
//! and commits them all.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use object_store::ObjectStore;
use object_store::path::Path;
use weir_spec::{Dataset, Format, Pipeline, Stage, StageKind};

use crate::audit::Audit;
use crate::checks::{self, Checks};
use crate::columns::{ColumnAccess, MaskKey};
use crate::command::{self, CommandJob, DatasetRef};
use crate::dataset::{self, CommitFence, Manifest, Staged};
use crate::engine::StageOutput;
use crate::error::{Error, Result};
use crate::record::OutputRecord;
use crate::security::AttemptAccess;
use crate::split;
use crate::sql::{self, SqlInput, SqlOutput};

/// Guarded stores of one attempt, by store name.
pub(crate) type StageStores = HashMap<String, Arc<dyn ObjectStore>>;

/// Executes stages of one run of one pipeline.
pub(crate) struct StageExecutor {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) run_id: String,
    /// The engine's state folder; command logs go under `runs/<run_id>/`.
    pub(crate) state_dir: PathBuf,
    /// DataFusion partitions per stage.
    pub(crate) partitions: usize,
    /// Asked before every commit.
    pub(crate) fence: Arc<dyn CommitFence>,
    /// Where contract checks are recorded.
    pub(crate) audit: Audit,
    /// Whether this process may create the column-mask key (the process
    /// that plans runs may; a worker must use the coordinator's).
    pub(crate) create_mask_key: bool,
}

/// One attempt of one stage, as the operators see it.
pub(crate) struct Attempt<'a> {
    pub(crate) exec: &'a StageExecutor,
    pub(crate) stage: &'a Stage,
    pub(crate) number: u32,
    /// The version folder every output of this attempt is staged in.
    pub(crate) version: String,
    pub(crate) access: &'a AttemptAccess,
    /// Contract checks made so far, and quarantined rows waiting to be
    /// committed with the outputs.
    pub(crate) checks: Checks,
}

impl Attempt<'_> {
    /// The validated dataset called `name`.
    pub(crate) fn dataset(&self, name: &str) -> Result<&Dataset> {
        self.exec
            .pipeline
            .datasets
            .get(name)
            .ok_or_else(|| Error::Internal {
                message: format!("dataset `{name}` vanished after validation"),
            })
    }

    /// The dataset's store (guarded, from the attempt's stores) and
    /// canonical object path.
    pub(crate) fn locate(&self, name: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        locate(&self.exec.pipeline, &self.access.stores, name).map(|(_, s, p)| (s, p))
    }

    /// The column rules of the verified scope for reading `name`.
    pub(crate) fn column_access(&self, name: &str) -> Result<ColumnAccess> {
        let ds = self.dataset(name)?;
        ColumnAccess::for_dataset(&self.access.claims.scope, &ds.store, &ds.path)
            .map_err(Error::security)
    }

    /// The pipeline's mask key, if a mask needs one.
    pub(crate) fn mask_key(&self, access: &ColumnAccess) -> Result<Option<MaskKey>> {
        if !access.needs_key() {
            return Ok(None);
        }
        crate::mask_key::load(
            &self.exec.state_dir,
            &self.exec.pipeline.principal,
            &self.exec.pipeline.name,
            self.exec.create_mask_key,
        )
        .map(Some)
    }

    /// Whether `name` is a dataset this stage writes quarantined rows to
    /// (rather than one its operator produces).
    pub(crate) fn is_quarantine_output(&self, name: &str) -> bool {
        self.stage
            .inputs
            .iter()
            .chain(&self.stage.outputs)
            .filter_map(|d| self.exec.pipeline.datasets.get(d))
            .filter_map(|d| d.contract.as_ref())
            .any(|c| c.quarantine() == Some(name))
            && self.stage.outputs.iter().any(|o| o == name)
    }

    /// The one input of a `validate` or `split` stage (the loader
    /// guarantees there is exactly one).
    pub(crate) fn single_input(&self) -> Result<String> {
        self.stage
            .inputs
            .first()
            .cloned()
            .ok_or_else(|| Error::Internal {
                message: format!("{} stage without input", self.stage.kind.name()),
            })
    }

    /// The outputs the operator itself produces (quarantine datasets excluded).
    pub(crate) fn data_outputs(&self) -> Vec<&String> {
        self.stage
            .outputs
            .iter()
            .filter(|o| !self.is_quarantine_output(o))
            .collect()
    }

    /// The version folder of `name` for this attempt.
    pub(crate) fn version_prefix(&self, name: &str) -> Result<Path> {
        let (_, path) = self.locate(name)?;
        Ok(path.join(self.version.as_str()))
    }
}

impl StageExecutor {
    /// The stage at `index`.
    pub(crate) fn stage(&self, index: usize) -> Result<&Stage> {
        self.pipeline
            .stages
            .get(index)
            .ok_or_else(|| Error::Internal {
                message: format!("no stage #{index}"),
            })
    }

    /// Runs attempt `attempt` of stage `index` through the attempt's guarded
    /// stores and commits its outputs.
    ///
    /// # Errors
    /// Whatever the operator, the guard, a contract check or the commit
    /// reports.
    pub(crate) async fn execute(
        &self,
        index: usize,
        attempt: u32,
        access: &AttemptAccess,
    ) -> Result<StageOutput> {
        let stage = self.stage(index)?;
        let mut cx = Attempt {
            exec: self,
            stage,
            number: attempt,
            version: dataset::version_name(&self.run_id, attempt),
            access,
            checks: Checks::default(),
        };
        let staged = match &stage.kind {
            StageKind::Sql { sql } => self.run_sql(&mut cx, sql).await?,
            StageKind::Command { .. } => self.run_command(&mut cx).await?,
            StageKind::Validate => checks::run_validate(&mut cx).await?,
            StageKind::Split { key, parts } => split::run(&mut cx, key, parts).await?,
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::Internal {
                    message: format!("stage kind `{}` has no operator", other.name()),
                });
            }
        };
        self.commit_outputs(&mut cx, staged).await
    }

    /// Checks every staged output against its contract, then commits them
    /// (quarantine datasets included) one by one.
    async fn commit_outputs(
        &self,
        cx: &mut Attempt<'_>,
        staged: Vec<Staged>,
    ) -> Result<StageOutput> {
        let mut ready: BTreeMap<String, Staged> = BTreeMap::new();
        for out in staged {
            let out = checks::check_output(cx, out).await?;
            ready.insert(out.dataset.clone(), out);
        }
        for (dataset, files) in cx.checks.take_quarantined() {
            // A quarantine dataset's own contract (which cannot quarantine
            // again) is checked like any output.
            let out = checks::check_output(cx, Staged { dataset, files }).await?;
            ready.insert(out.dataset.clone(), out);
        }
        let mut outputs = Vec::with_capacity(ready.len());
        // Declared order, so records read like the pipeline.
        for name in &cx.stage.outputs {
            let Some(out) = ready.remove(name) else {
                return Err(Error::Internal {
                    message: format!(
                        "stage `{}` staged nothing for output `{name}`",
                        cx.stage.name
                    ),
                });
            };
            let (store, path) = cx.locate(name)?;
            let rows = out.files.iter().map(|f| f.rows).sum();
            let manifest = Manifest {
                format_version: 1,
                dataset: name.clone(),
                version: cx.version.clone(),
                files: out.files,
                rows,
                run_id: self.run_id.clone(),
                stage: cx.stage.name.clone(),
                attempt: cx.number,
                committed_at: Utc::now(),
                previous: Vec::new(),
            };
            dataset::commit(store.as_ref(), &path, manifest, self.fence.as_ref()).await?;
            outputs.push(OutputRecord {
                dataset: name.clone(),
                version: cx.version.clone(),
                rows,
            });
        }
        Ok(StageOutput {
            outputs,
            checks: cx.checks.take_records(),
        })
    }

    /// Removes what a failed attempt staged, through its own guarded stores.
    pub(crate) async fn discard(&self, index: usize, attempt: u32, stores: &StageStores) {
        let Ok(stage) = self.stage(index) else { return };
        let version = dataset::version_name(&self.run_id, attempt);
        for output in &stage.outputs {
            let Ok((_, store, path)) = locate(&self.pipeline, stores, output) else {
                continue;
            };
            let prefix = path.join(version.as_str());
            if let Err(e) = dataset::delete_prefix(store.as_ref(), &prefix).await {
                tracing::warn!(stage = %stage.name, error = %e, "could not remove a failed attempt's output");
            }
        }
    }

    async fn run_command(&self, cx: &mut Attempt<'_>) -> Result<Vec<Staged>> {
        let StageKind::Command {
            argv,
            shell,
            workdir,
            env,
            access,
        } = &cx.stage.kind
        else {
            return Err(Error::Internal {
                message: "not a command stage".into(),
            });
        };
        let mut inputs = Vec::with_capacity(cx.stage.inputs.len());
        for name in &cx.stage.inputs {
            let mut input = self.dataset_ref(cx, name)?;
            // Restricted or contracted inputs are rewritten by weir: the child
            // gets only the rows that passed and the columns it may read.
            input.rows = checks::prepared_input(cx, name, *access).await?;
            inputs.push(input);
        }
        let outputs = cx
            .data_outputs()
            .into_iter()
            .map(|name| self.dataset_ref(cx, name))
            .collect::<Result<Vec<_>>>()?;
        let job = CommandJob {
            run_id: &self.run_id,
            stage: &cx.stage.name,
            attempt: cx.number,
            argv,
            shell: *shell,
            workdir: workdir.as_deref(),
            env,
            access: *access,
            inputs,
            outputs,
            log_path: self
                .state_dir
                .join("runs")
                .join(&self.run_id)
                .join(format!("{}-a{}.log", cx.stage.name, cx.number)),
        };
        command::run(job).await
    }

    fn dataset_ref(&self, cx: &Attempt<'_>, name: &str) -> Result<DatasetRef> {
        let (store_name, store, path) = locate(&self.pipeline, &cx.access.stores, name)?;
        Ok(DatasetRef {
            name: name.to_owned(),
            store,
            path,
            format: cx.dataset(name)?.format,
            presigner: cx.access.presigners.get(&store_name).cloned(),
            rows: None,
        })
    }

    async fn run_sql(&self, cx: &mut Attempt<'_>, sql_text: &str) -> Result<Vec<Staged>> {
        let ctx = sql::stage_context(cx.access.stores.clone(), self.partitions)?;
        let mut restricted = Vec::with_capacity(cx.stage.inputs.len());
        for name in &cx.stage.inputs {
            let ds = cx.dataset(name)?;
            let columns = cx.column_access(name)?;
            let key = cx.mask_key(&columns)?;
            let frame = if ds.contract.is_some() {
                let data = checks::read_input(cx, name).await?;
                sql::frame_from_batches(&ctx, data.schema, data.batches)?
            } else {
                let (store, path) = cx.locate(name)?;
                let location = dataset::resolve_read(store.as_ref(), name, &path).await?;
                sql::input_frame(
                    &ctx,
                    &SqlInput {
                        name: name.clone(),
                        store: ds.store.clone(),
                        location,
                        format: ds.format,
                    },
                )
                .await?
            };
            let full_schema = frame.schema().as_arrow().clone();
            crate::columns::register_restricted(&ctx, name, frame, &columns, key.as_ref())
                .map_err(|e| Error::column(name, e))?;
            restricted.push((name.clone(), columns, full_schema));
        }
        let output = cx
            .data_outputs()
            .first()
            .map(|s| (*s).clone())
            .ok_or_else(|| Error::Internal {
                message: "sql stage without output".into(),
            })?;
        let (store, _) = cx.locate(&output)?;
        let format: Format = cx.dataset(&output)?.format;
        let target = SqlOutput {
            store: cx.dataset(&output)?.store.clone(),
            prefix: cx.version_prefix(&output)?,
            format,
        };
        let written = match sql::plan_query(&ctx, sql_text).await {
            Ok(df) => {
                if restricted
                    .iter()
                    .any(|(_, access, _)| !access.is_unrestricted())
                {
                    crate::columns::refuse_explain(df.logical_plan()).map_err(|e| {
                        Error::ColumnDenied {
                            message: e.to_string(),
                        }
                    })?;
                }
                sql::write_result(df, store, &target).await
            }
            Err(e) => Err(e),
        };
        let files = match written {
            Ok(files) => files,
            Err(Error::Query { source }) => {
                let views: Vec<_> = restricted
                    .iter()
                    .map(|(n, a, s)| (n.as_str(), a, s))
                    .collect();
                return Err(match crate::columns::explain_denied(&source, &views) {
                    Some(denied) => Error::ColumnDenied {
                        message: denied.to_string(),
                    },
                    // Reading a CSV input failed; Arrow's message quotes the
                    // row, which may hold hidden or masked values.
                    None if crate::datafile::quotes_values(&source.to_string()) => Error::Read {
                        path: format!("an input of stage `{}`", cx.stage.name),
                        message: crate::datafile::without_values(&source.to_string()),
                    },
                    None => Error::Query { source },
                });
            }
            Err(e) => return Err(e),
        };
        Ok(vec![Staged {
            dataset: output,
            files,
        }])
    }
}

/// The dataset's store name, store (guarded, from `stores`) and canonical
/// object path.
fn locate(
    pipeline: &Pipeline,
    stores: &StageStores,
    dataset: &str,
) -> Result<(String, Arc<dyn ObjectStore>, Path)> {
    let ds = pipeline
        .datasets
        .get(dataset)
        .ok_or_else(|| Error::Internal {
            message: format!("dataset `{dataset}` vanished after validation"),
        })?;
    let path = Path::parse(&ds.path).map_err(|e| Error::Internal {
        message: format!("dataset `{dataset}` path: {e}"),
    })?;
    let store = stores
        .get(&ds.store)
        .cloned()
        .ok_or_else(|| Error::Internal {
            message: format!("store `{}` is not in the stage's scope", ds.store),
        })?;
    Ok((ds.store.clone(), store, path))
}
