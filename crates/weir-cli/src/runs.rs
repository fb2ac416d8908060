//! `weir runs`: past runs from the state directory or the database.

use std::process::ExitCode;

use weir_engine::record::RunRecord;

use crate::Output;
use crate::storage::Storage;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, newest first.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Ask this weir server instead of the state folder or database (token
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
pub(crate) fn runs(command: RunsCommand, storage: &Storage) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
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
                None => {
                    let runs = runtime.block_on(async {
                        let store = storage.runs().await?;
                        anyhow::Ok(store.list(Some(limit)).await?)
                    })?;
                    (runs, storage.runs_location())
                }
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
            let record = runtime
                .block_on(async {
                    let store = storage.runs().await?;
                    anyhow::Ok(store.load(&run_id).await?)
                })?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no run `{}` in {}",
                        run_id.escape_debug(),
                        storage.runs_location()
                    )
                })?;
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                println!(
                    "pipeline {} ({}) as `{}`",
                    record.pipeline, record.source, record.principal
                );
                let location = storage.record_location(&record.run_id);
                print!("{}", crate::run::summary(&record, &location));
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
