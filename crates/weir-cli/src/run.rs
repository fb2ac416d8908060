//! `weir run`: run a pipeline with live progress and a summary.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;
use weir_audit::Origin;
use weir_engine::distributed::Envelopes;
use weir_engine::record::{RunRecord, RunStatus, StageState};
use weir_engine::{Engine, EngineConfig, RunEvent, Security};

use crate::Output;
use crate::access;
use crate::load::{EXIT_INVALID, load_text_or_report};
use crate::storage::Storage;

/// `weir run`.
pub(crate) fn run(
    file: &Path,
    storage: &Storage,
    policies_dir: &Path,
    output: Output,
    concurrency: Option<usize>,
    queue: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some((loaded, text)) = load_text_or_report(file)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let Some(policies) = access::load_policies(policies_dir)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };

    let mut pipeline = loaded.pipeline;
    if let Some(c) = concurrency {
        anyhow::ensure!(c >= 1, "--concurrency must be at least 1");
        pipeline.defaults.concurrency = c;
    }
    let pipeline = Arc::new(pipeline);
    let runtime = tokio::runtime::Runtime::new()?;
    let record = runtime.block_on(async {
        let state_dir = storage.dir();
        let audit = storage.audit(Origin::Cli).await?;
        let runs = storage.runs().await?;
        let security = Arc::new(Security::open(state_dir, policies, audit)?);
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\ncancelling: waiting for running stages to clean up (Ctrl-C again to abort)"
                );
                on_signal.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let engine = Engine::new(EngineConfig {
            state_dir: state_dir.to_path_buf(),
            ..EngineConfig::default()
        })
        .with_run_store(runs);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let names: Vec<String> = pipeline.stages.iter().map(|s| s.name.clone()).collect();
        let display = tokio::spawn(progress(names, rx, output == Output::Text));
        let record = match queue {
            None => {
                engine
                    .run(pipeline.clone(), security, cancel, Some(tx))
                    .await
            }
            Some(url) => {
                let broker = crate::worker::connect(url).await?;
                let envelopes = Envelopes::open(state_dir, broker.as_ref())?;
                engine
                    .run_distributed(
                        pipeline.clone(),
                        text,
                        security,
                        broker,
                        envelopes,
                        cancel,
                        Some(tx),
                    )
                    .await
            }
        };
        let _ = display.await;
        Ok::<_, anyhow::Error>(record)
    })?;
    let record = match record {
        Ok(record) => record,
        Err(weir_engine::Error::PlanDenied { missing }) => {
            access::report_missing(&missing, policies_dir);
            return Ok(ExitCode::from(access::EXIT_DENIED));
        }
        Err(e) => return Err(e.into()),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&record)?),
        Output::Text => print!(
            "{}",
            summary(&record, &storage.record_location(&record.run_id))
        ),
    }
    Ok(match record.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Cancelled => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}

/// Shows one line per stage: bars on a terminal, plain lines otherwise.
async fn progress(
    names: Vec<String>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<RunEvent>,
    show: bool,
) {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if show && tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let style = ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bars: Vec<ProgressBar> = names
        .iter()
        .map(|n| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(format!("{n:width$}"));
            bar.set_message("waiting");
            bar
        })
        .collect();
    let plain = show && !tty;
    while let Some(ev) = rx.recv().await {
        match ev {
            RunEvent::RunStarted { run_id } => {
                if show {
                    let _ = multi.println(format!("run {run_id}"));
                    if plain {
                        eprintln!("run {run_id}");
                    }
                }
            }
            RunEvent::StageStarted { stage, attempt } => {
                if let Some(bar) = bars.get(stage) {
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.reset_elapsed();
                    bar.set_message(if attempt > 1 {
                        format!("running (attempt {attempt})")
                    } else {
                        "running".into()
                    });
                }
                if plain {
                    eprintln!(
                        "{}: running (attempt {attempt})",
                        names.get(stage).map_or("?", String::as_str)
                    );
                }
            }
            RunEvent::StageRetrying {
                stage,
                attempt,
                error,
                delay,
            } => {
                let line = format!(
                    "{}: attempt {attempt} failed, retrying in {}: {error}",
                    names.get(stage).map_or("?", String::as_str),
                    weir_engine::humantime(delay)
                );
                if let Some(bar) = bars.get(stage) {
                    bar.set_message(format!("retrying in {}", weir_engine::humantime(delay)));
                }
                if show {
                    let _ = multi.println(&line);
                    if plain {
                        eprintln!("{line}");
                    }
                }
            }
            RunEvent::StageFinished {
                stage,
                state,
                rows,
                elapsed,
                error,
                ..
            } => {
                let msg = match (state, error) {
                    (StageState::Succeeded, _) => {
                        format!(
                            "succeeded, {rows} rows in {}",
                            weir_engine::humantime(elapsed)
                        )
                    }
                    (other, Some(e)) => format!("{}: {e}", state_name(other)),
                    (other, None) => state_name(other).to_owned(),
                };
                if let Some(bar) = bars.get(stage) {
                    bar.finish_with_message(msg.clone());
                }
                if plain {
                    eprintln!("{}: {msg}", names.get(stage).map_or("?", String::as_str));
                }
            }
        }
    }
    let _ = multi.clear();
}

fn state_name(s: StageState) -> &'static str {
    match s {
        StageState::Waiting => "waiting",
        StageState::Running => "running",
        StageState::Succeeded => "succeeded",
        StageState::Failed => "failed",
        StageState::Skipped => "skipped",
        StageState::Cancelled => "cancelled",
    }
}

/// One line of the contracts section of a run summary.
fn contract_line(stage: &str, c: &weir_engine::record::ContractCheck) -> String {
    let on = match c.on {
        weir_engine::record::CheckPoint::Read => "read",
        weir_engine::record::CheckPoint::Write => "write",
    };
    let outcome = match (&c.quarantine, c.bad) {
        (_, 0) => "all passed".to_owned(),
        (Some(q), bad) => format!("{bad} quarantined to `{q}`"),
        (None, bad) => format!("{bad} broke it"),
    };
    format!(
        "  {stage}: `{}` on {on}: {} rows, {outcome}\n",
        c.dataset, c.rows
    )
}

/// The table printed after a run; `location` says where its record is.
pub(crate) fn summary(r: &RunRecord, location: &str) -> String {
    let width = r
        .stages
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "\n{:width$}  {:9}  {:>8}  {:>12}  {:>9}\n",
        "STAGE", "STATE", "ATTEMPTS", "ROWS", "ELAPSED"
    );
    for s in &r.stages {
        out.push_str(&format!(
            "{:width$}  {:9}  {:>8}  {:>12}  {:>9}\n",
            s.name,
            state_name(s.state),
            s.attempts,
            s.rows_written,
            format!("{:.2}s", s.elapsed_ms as f64 / 1000.0)
        ));
    }
    let checks: Vec<_> = r
        .stages
        .iter()
        .flat_map(|s| s.checks.iter().map(move |c| (s.name.as_str(), c)))
        .collect();
    if !checks.is_empty() {
        out.push_str(
            "
contracts:
",
        );
        for (stage, c) in checks {
            out.push_str(&contract_line(stage, c));
        }
    }
    for s in &r.stages {
        if let (StageState::Failed, Some(e)) = (s.state, &s.error) {
            out.push_str(&format!("\nstage `{}` failed: {e}\n", s.name));
        }
    }
    let took = r
        .finished_at
        .map(|f| (f - r.started_at).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0);
    let status = match r.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Running => "running",
    };
    out.push_str(&format!(
        "\nrun {} {status} in {took:.2}s; record: {location}\n",
        r.run_id,
    ));
    out
}
