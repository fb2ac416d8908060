//! The `command` operator: runs a program (an ML training job, a script) as a
//! child process that sees only what its stage declared.
//!
//! # Security
//! - Each attempt gets a private folder (0700) with `in/<dataset>/` and
//!   `out/<dataset>/`. Inputs are copied in through the stage's guarded
//!   stores, so every read is checked against the stage token and audited;
//!   outputs are uploaded through them too. The child never gets a token,
//!   a store URL or a credential.
//! - The child's environment starts empty: only the variables the stage
//!   allowlisted (and weir's environment holds), a fixed `PATH` unless
//!   allowlisted, `HOME` (the private folder) and weir's `WEIR_*` variables.
//! - The child runs in its own process group; a guard kills the whole group
//!   (grandchildren included) when the attempt ends, times out or is
//!   cancelled.
//! - Its output is logged with JWT-like tokens and the values of
//!   secret-looking allowlisted variables replaced by `***`.
//!
//! # Non-goals
//! Filesystem sandboxing: the child runs as weir's OS user and can open any
//! file that user can. Isolating it (a separate user, a container, Landlock)
//! is left to the deployment.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path as FsPath, PathBuf};
use std::pin::pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use weir_spec::{Access, Format};

use crate::dataset::{self, Staged};
use crate::error::{Error, Result};
use crate::presign::{self, Presigner};

mod files;
mod redact;

pub(crate) use files::write_private;
use files::{prepare_files, prepare_urls, upload_files};
use redact::Redactor;

/// `PATH` given to a child unless the stage allowlists `PATH`.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Lines of stderr shown when a command fails.
const STDERR_TAIL: usize = 20;
/// Longest log line; longer output is split.
const MAX_LINE: usize = 64 * 1024;
/// How long to wait for the output pipes to close after the child exited and
/// its group was killed.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// A dataset as the operator sees it: name, guarded store, canonical path.
pub(crate) struct DatasetRef {
    pub(crate) name: String,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) path: Path,
    pub(crate) format: Format,
    /// Present when the dataset is in an S3 store.
    pub(crate) presigner: Option<Presigner>,
    /// For an input weir had to rewrite (contract-checked, or with columns
    /// hidden or masked): the rows the child may see, written into its
    /// folder instead of a copy of the stored files.
    pub(crate) rows: Option<crate::checks::InputData>,
}

/// One attempt of a command stage.
pub(crate) struct CommandJob<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) stage: &'a str,
    pub(crate) attempt: u32,
    pub(crate) argv: &'a [String],
    pub(crate) shell: bool,
    pub(crate) workdir: Option<&'a FsPath>,
    pub(crate) env: &'a [String],
    pub(crate) access: Access,
    pub(crate) inputs: Vec<DatasetRef>,
    pub(crate) outputs: Vec<DatasetRef>,
    /// `<state_dir>/runs/<run_id>/<stage>-a<attempt>.log`.
    pub(crate) log_path: PathBuf,
}

/// Runs the job: materialize inputs, run the child, upload its outputs into
/// the attempt's version folders. The caller checks and commits them.
pub(crate) async fn run(job: CommandJob<'_>) -> Result<Vec<Staged>> {
    let private = tempfile::Builder::new()
        .prefix(&format!("weir-{}-a{}-", job.stage, job.attempt))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    let root = private.path().to_path_buf();
    let version = dataset::version_name(job.run_id, job.attempt);
    let vars = match job.access {
        Access::Materialized => prepare_files(&job, &root).await?,
        Access::Presigned { parts } => prepare_urls(&job, &root, &version, parts).await?,
    };
    let (env, secrets) = child_env(job.env, &root, vars, &job);
    let redactor = Redactor::new(secrets);
    let workdir = job
        .workdir
        .map_or_else(|| root.clone(), FsPath::to_path_buf);
    execute(&job, &workdir, env, &redactor).await?;
    let files = match job.access {
        Access::Materialized => upload_files(&job, &root, &version).await?,
        Access::Presigned { parts } => {
            let mut all = Vec::with_capacity(job.outputs.len());
            for output in &job.outputs {
                all.push(presign::collect_outputs(output, &version, parts).await?);
            }
            all
        }
    };
    Ok(job
        .outputs
        .iter()
        .zip(files)
        .map(|(output, files)| Staged {
            dataset: output.name.clone(),
            files,
        })
        .collect())
}

fn display(p: &FsPath) -> String {
    p.display().to_string()
}

fn env_name(prefix: &str, dataset: &str) -> String {
    format!("{prefix}{}", dataset.to_ascii_uppercase())
}

async fn create_dir(dir: &FsPath) -> Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| Error::io(dir, e))
}

/// The child's whole environment, and the values to redact from its logs.
fn child_env(
    allow: &[String],
    home: &FsPath,
    vars: Vec<(String, String)>,
    job: &CommandJob<'_>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let mut secrets = Vec::new();
    for name in allow {
        if let Some(value) = std::env::var_os(name).and_then(|v| v.into_string().ok()) {
            if looks_secret(name) && !value.is_empty() {
                secrets.push(value.clone());
            }
            env.push((name.clone(), value));
        }
    }
    if !env.iter().any(|(n, _)| n == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env.push(("HOME".into(), display(home)));
    env.extend(vars);
    env.push(("WEIR_RUN_ID".into(), job.run_id.to_owned()));
    env.push(("WEIR_STAGE".into(), job.stage.to_owned()));
    env.push(("WEIR_ATTEMPT".into(), job.attempt.to_string()));
    (env, secrets)
}

/// Names whose values are redacted from logs (weir-spec already refuses the
/// obvious credential names; this catches the rest).
fn looks_secret(name: &str) -> bool {
    [
        "KEY", "SECRET", "TOKEN", "PASS", "AUTH", "CRED", "PRIVATE", "SESSION", "COOKIE",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// Kills the child's whole process group when dropped.
struct GroupGuard {
    pgid: Option<nix::unistd::Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (the group is already gone) is the normal case.
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// Spawns the child, streams its output to the log and waits for it.
async fn execute(
    job: &CommandJob<'_>,
    workdir: &FsPath,
    env: Vec<(String, String)>,
    redactor: &Redactor,
) -> Result<()> {
    let (program, args): (&str, Vec<&str>) = if job.shell {
        let script = job.argv.first().map_or("", String::as_str);
        ("/bin/sh", vec!["-c", script])
    } else {
        let (first, rest) = job.argv.split_first().ok_or_else(|| Error::Internal {
            message: "command stage without a program".into(),
        })?;
        (first.as_str(), rest.iter().map(String::as_str).collect())
    };
    if let Some(dir) = job.log_path.parent() {
        create_dir(dir).await?;
    }
    let mut log = tokio::fs::File::create(&job.log_path)
        .await
        .map_err(|e| Error::io(&job.log_path, e))?;
    // A relative program path with a `/` means "relative to the working
    // folder", whatever the platform's spawn would do with it.
    let resolved = if !job.shell && program.contains('/') && FsPath::new(program).is_relative() {
        workdir.join(program)
    } else {
        PathBuf::from(program)
    };
    let mut cmd = tokio::process::Command::new(&resolved);
    cmd.args(&args)
        .env_clear()
        .envs(env)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| Error::Command {
        message: format!("cannot start `{program}`: {e}"),
    })?;
    let mut group = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(nix::unistd::Pid::from_raw),
    };
    let (tx, mut rx) = mpsc::channel::<(Stream, Vec<u8>)>(256);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let io = async {
        let pumps = async {
            tokio::join!(
                pump(stdout, Stream::Out, tx.clone()),
                pump(stderr, Stream::Err, tx)
            );
        };
        let writer = async {
            let mut tail: VecDeque<String> = VecDeque::new();
            let mut result = Ok(());
            while let Some((stream, line)) = rx.recv().await {
                let text = redactor.redact(&String::from_utf8_lossy(&line));
                if result.is_ok() {
                    let mut out = text.clone().into_bytes();
                    out.push(b'\n');
                    result = log.write_all(&out).await;
                }
                if stream == Stream::Err {
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(text);
                }
            }
            let flushed = log.flush().await;
            (result.and(flushed), tail)
        };
        let ((), written) = tokio::join!(pumps, writer);
        written
    };
    let mut io = pin!(io);
    let mut io_done = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            done = &mut io, if io_done.is_none() => io_done = Some(done),
        }
    };
    // The child is gone: whatever it left running in its group goes too.
    group.kill();
    let status = status.map_err(|e| Error::Command {
        message: format!("waiting for `{program}`: {e}"),
    })?;
    let (written, tail) = match io_done {
        Some(done) => done,
        None => tokio::time::timeout(PIPE_GRACE, io)
            .await
            .unwrap_or_else(|_| (Ok(()), VecDeque::new())),
    };
    written.map_err(|e| Error::io(&job.log_path, e))?;
    if !status.success() {
        return Err(Error::CommandFailed {
            status: status.to_string(),
            stderr_tail: Vec::from(tail).join("\n"),
        });
    }
    Ok(())
}

/// Reads `from` line by line (lines capped at [`MAX_LINE`]) into `tx`.
async fn pump(
    from: Option<impl AsyncRead + Unpin>,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Vec<u8>)>,
) {
    let Some(mut from) = from else { return };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(buf.get(..n).unwrap_or_default());
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let rest = pending.split_off(pos + 1);
            let mut line = std::mem::replace(&mut pending, rest);
            line.pop();
            if tx.send((stream, line)).await.is_err() {
                return;
            }
        }
        if pending.len() >= MAX_LINE {
            let line = std::mem::take(&mut pending);
            if tx.send((stream, line)).await.is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = tx.send((stream, pending)).await;
    }
}
