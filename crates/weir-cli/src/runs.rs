//! `weir runs`: past runs from the state directory.

use std::path::Path;
use std::process::ExitCode;

use weir_engine::record::{RunRecord, RunStore};

use crate::Output;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, newest first.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Ask this weir server instead of the local state folder (token
        /// from `WEIR_TOKEN` or `weir login`).
        #[arg(long)]
        server: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show one run with its stages.
    Show {
        /// Run id.
        run_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// `weir runs ...`.
pub(crate) fn runs(command: RunsCommand, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = RunStore::new(state_dir);
    match command {
        RunsCommand::List {
            limit,
            output,
            server,
        } => {
            let (runs, source): (Vec<RunRecord>, String) = match server {
                Some(server) => {
                    let body = crate::client::get_json(&server, "/api/v1/runs")?;
                    let runs =
                        serde_json::from_value(body.get("runs").cloned().unwrap_or_default())?;
                    (runs, server)
                }
                None => (store.list()?, state_dir.display().to_string()),
            };
            let runs: Vec<_> = runs.into_iter().take(limit).collect();
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                println!("no runs in {source}");
            } else {
                println!("{:26}  {:24}  {:9}  STARTED", "RUN", "PIPELINE", "STATUS");
                for r in runs {
                    println!(
                        "{:26}  {:24}  {:9}  {}",
                        r.run_id,
                        r.pipeline,
                        format!("{:?}", r.status).to_lowercase(),
                        r.started_at.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                }
            }
        }
        RunsCommand::Show { run_id, output } => {
            let record = store.load(&run_id).map_err(|e| {
                anyhow::anyhow!("no run `{run_id}` in {}: {e}", state_dir.display())
            })?;
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                println!(
                    "pipeline {} ({}) as `{}`",
                    record.pipeline, record.source, record.principal
                );
                print!("{}", crate::run::summary(&record, state_dir));
                for s in &record.stages {
                    for o in &s.outputs {
                        println!(
                            "  {} wrote {} version {} ({} rows)",
                            s.name, o.dataset, o.version, o.rows
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
