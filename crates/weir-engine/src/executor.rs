//! Running one stage attempt with stores already bound to its verified token.
//!
//! The same code runs a stage in `weir run` (stores bound by
//! [`crate::Security`] in this process) and on a remote `weir worker`
//! (stores bound from a token that arrived in a verified envelope). It never
//! sees a raw store: every store it is given is a guarded one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use object_store::ObjectStore;
use object_store::path::Path;
use weir_spec::{Format, Pipeline, Stage, StageKind};

use crate::command::{self, CommandJob, DatasetRef};
use crate::dataset::{self, CommitFence, Manifest};
use crate::engine::StageOutput;
use crate::error::{Error, Result};
use crate::presign::Presigner;
use crate::record::OutputRecord;
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

    /// Runs attempt `attempt` of stage `index` through `stores` and commits
    /// its outputs.
    ///
    /// # Errors
    /// Whatever the operator, the guard or the commit reports.
    pub(crate) async fn execute(
        &self,
        index: usize,
        attempt: u32,
        stores: &StageStores,
        presigners: &HashMap<String, Presigner>,
    ) -> Result<StageOutput> {
        let stage = self.stage(index)?;
        match &stage.kind {
            StageKind::Sql { sql } => self.run_sql(stores, stage, sql, attempt).await,
            StageKind::Command {
                argv,
                shell,
                workdir,
                env,
                access,
            } => {
                let datasets = |names: &[String]| -> Result<Vec<DatasetRef>> {
                    names
                        .iter()
                        .map(|name| {
                            let (store_name, store, path) = self.locate(stores, name)?;
                            Ok(DatasetRef {
                                name: name.clone(),
                                store,
                                path,
                                format: self.format_of(name)?,
                                presigner: presigners.get(&store_name).cloned(),
                            })
                        })
                        .collect()
                };
                let job = CommandJob {
                    run_id: &self.run_id,
                    stage: &stage.name,
                    attempt,
                    argv,
                    shell: *shell,
                    workdir: workdir.as_deref(),
                    env,
                    access: *access,
                    inputs: datasets(&stage.inputs)?,
                    outputs: datasets(&stage.outputs)?,
                    log_path: self
                        .state_dir
                        .join("runs")
                        .join(&self.run_id)
                        .join(format!("{}-a{attempt}.log", stage.name)),
                    fence: self.fence.as_ref(),
                };
                Ok(StageOutput {
                    outputs: command::run(job).await?,
                })
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::Internal {
                message: format!("stage kind `{}` has no operator", other.name()),
            }),
        }
    }

    /// Removes what a failed attempt staged, through its own guarded stores.
    pub(crate) async fn discard(&self, index: usize, attempt: u32, stores: &StageStores) {
        let Ok(stage) = self.stage(index) else { return };
        let version = dataset::version_name(&self.run_id, attempt);
        for output in &stage.outputs {
            let Ok((_, store, path)) = self.locate(stores, output) else {
                continue;
            };
            let prefix = path.join(version.as_str());
            if let Err(e) = dataset::delete_prefix(store.as_ref(), &prefix).await {
                tracing::warn!(stage = %stage.name, error = %e, "could not remove a failed attempt's output");
            }
        }
    }

    /// The dataset's store (guarded, from `stores`) and canonical object path.
    fn locate(
        &self,
        stores: &StageStores,
        dataset: &str,
    ) -> Result<(String, Arc<dyn ObjectStore>, Path)> {
        let ds = self
            .pipeline
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

    /// The declared format of `dataset`.
    fn format_of(&self, dataset: &str) -> Result<Format> {
        self.pipeline
            .datasets
            .get(dataset)
            .map(|d| d.format)
            .ok_or_else(|| Error::Internal {
                message: format!("dataset `{dataset}` vanished"),
            })
    }

    async fn run_sql(
        &self,
        stores: &StageStores,
        stage: &Stage,
        sql_text: &str,
        attempt: u32,
    ) -> Result<StageOutput> {
        let ctx = sql::stage_context(stores.clone(), self.partitions)?;
        for input in &stage.inputs {
            let (store_name, store, path) = self.locate(stores, input)?;
            let format = self.format_of(input)?;
            let location = dataset::resolve_read(store.as_ref(), input, &path).await?;
            sql::register_input(
                &ctx,
                &SqlInput {
                    name: input.clone(),
                    store: store_name,
                    location,
                    format,
                },
            )
            .await?;
        }
        let output = stage.outputs.first().ok_or_else(|| Error::Internal {
            message: "sql stage without output".into(),
        })?;
        let (store_name, store, path) = self.locate(stores, output)?;
        let format = self.format_of(output)?;
        let version = dataset::version_name(&self.run_id, attempt);
        let target = SqlOutput {
            store: store_name,
            prefix: path.clone().join(version.as_str()),
            format,
        };
        let files = sql::run_query(&ctx, sql_text, store.clone(), &target).await?;
        let rows = files.iter().map(|f| f.rows).sum();
        let manifest = Manifest {
            format_version: 1,
            dataset: output.clone(),
            version: version.clone(),
            files,
            rows,
            run_id: self.run_id.clone(),
            stage: stage.name.clone(),
            attempt,
            committed_at: Utc::now(),
            previous: Vec::new(),
        };
        dataset::commit(store.as_ref(), &path, manifest, self.fence.as_ref()).await?;
        Ok(StageOutput {
            outputs: vec![OutputRecord {
                dataset: output.clone(),
                version,
                rows,
            }],
        })
    }
}
