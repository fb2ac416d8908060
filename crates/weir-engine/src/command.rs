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

use chrono::Utc;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use weir_spec::{Access, Format};

use crate::dataset::{self, Manifest, ManifestFile, ReadLocation};
use crate::error::{Error, Result};
use crate::presign::{self, Presigner};
use crate::record::OutputRecord;

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

/// Runs the job: materialize inputs, run the child, upload and commit outputs.
pub(crate) async fn run(job: CommandJob<'_>) -> Result<Vec<OutputRecord>> {
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
    let mut manifests = Vec::with_capacity(job.outputs.len());
    for (output, files) in job.outputs.iter().zip(files) {
        let rows = files.iter().map(|f| f.rows).sum();
        manifests.push(Manifest {
            format_version: 1,
            dataset: output.name.clone(),
            version: version.clone(),
            files,
            rows,
            run_id: job.run_id.to_owned(),
            stage: job.stage.to_owned(),
            attempt: job.attempt,
            committed_at: Utc::now(),
            previous: Vec::new(),
        });
    }
    let mut records = Vec::with_capacity(job.outputs.len());
    for (output, manifest) in job.outputs.iter().zip(manifests) {
        let rows = manifest.rows;
        dataset::commit(output.store.as_ref(), &output.path, manifest).await?;
        records.push(OutputRecord {
            dataset: output.name.clone(),
            version: version.clone(),
            rows,
        });
    }
    Ok(records)
}

/// Materialized access: copies inputs into `in/<name>/` and creates
/// `out/<name>/`; returns the `WEIR_INPUT_*`/`WEIR_OUTPUT_*` variables.
async fn prepare_files(job: &CommandJob<'_>, root: &FsPath) -> Result<Vec<(String, String)>> {
    let mut vars = vec![("WEIR_ACCESS".to_owned(), "materialized".to_owned())];
    for input in &job.inputs {
        let dir = root.join("in").join(&input.name);
        create_dir(&dir).await?;
        materialize(input, &dir).await?;
        vars.push((env_name("WEIR_INPUT_", &input.name), display(&dir)));
    }
    for output in &job.outputs {
        let dir = root.join("out").join(&output.name);
        create_dir(&dir).await?;
        vars.push((env_name("WEIR_OUTPUT_", &output.name), display(&dir)));
    }
    Ok(vars)
}

/// Presigned access: writes `in/<name>.json` and `out/<name>.json` with the
/// URLs; returns the variables naming those files.
async fn prepare_urls(
    job: &CommandJob<'_>,
    root: &FsPath,
    version: &str,
    parts: u32,
) -> Result<Vec<(String, String)>> {
    let mut vars = vec![("WEIR_ACCESS".to_owned(), "presigned".to_owned())];
    create_dir(&root.join("in")).await?;
    create_dir(&root.join("out")).await?;
    for input in &job.inputs {
        let file = root.join("in").join(format!("{}.json", input.name));
        presign::input_urls(input, &file).await?;
        vars.push((env_name("WEIR_INPUT_", &input.name), display(&file)));
    }
    for output in &job.outputs {
        let file = root.join("out").join(format!("{}.json", output.name));
        presign::output_urls(output, version, parts, &file).await?;
        vars.push((env_name("WEIR_OUTPUT_", &output.name), display(&file)));
    }
    Ok(vars)
}

/// Materialized access: checks every output folder, then uploads them all
/// (before anything is committed, so a failure commits nothing).
async fn upload_files(
    job: &CommandJob<'_>,
    root: &FsPath,
    version: &str,
) -> Result<Vec<Vec<ManifestFile>>> {
    let mut found = Vec::with_capacity(job.outputs.len());
    for output in &job.outputs {
        let dir = root.join("out").join(&output.name);
        let files = tokio::task::spawn_blocking(move || walk(&dir))
            .await
            .map_err(|e| Error::Internal {
                message: format!("listing outputs: {e}"),
            })??;
        if files.is_empty() {
            return Err(Error::Command {
                message: format!("command wrote nothing to output `{}`", output.name),
            });
        }
        found.push(files);
    }
    let mut uploaded = Vec::with_capacity(found.len());
    for (output, files) in job.outputs.iter().zip(found) {
        uploaded.push(upload(output, files, version).await?);
    }
    Ok(uploaded)
}

/// Writes `body` to a new file readable only by weir's user (0600).
pub(crate) async fn write_private(file: &FsPath, body: &[u8]) -> Result<()> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .await
        .map_err(|e| Error::io(file, e))?;
    f.write_all(body).await.map_err(|e| Error::io(file, e))?;
    f.flush().await.map_err(|e| Error::io(file, e))
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

/// Copies the current files of `input` into `dir`, through its guarded store.
async fn materialize(input: &DatasetRef, dir: &FsPath) -> Result<()> {
    let store = input.store.as_ref();
    let files: Vec<(Path, Vec<String>)> =
        match dataset::resolve_read(store, &input.name, &input.path).await? {
            ReadLocation::Version { prefix, manifest } => manifest
                .files
                .iter()
                .map(|f| {
                    let parts: Vec<String> = f.name.split('/').map(str::to_owned).collect();
                    let mut p = prefix.clone();
                    for part in &parts {
                        p = p.join(part.as_str());
                    }
                    (p, parts)
                })
                .collect(),
            ReadLocation::File(p) => {
                let name = p.filename().unwrap_or("data").to_owned();
                vec![(p, vec![name])]
            }
            ReadLocation::Folder(base) => {
                let mut out = Vec::new();
                let mut listing = store.list(Some(&base));
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(|e| Error::store(&base, e))?;
                    let parts: Vec<String> = meta
                        .location
                        .prefix_match(&base)
                        .map(|it| it.map(|p| p.as_ref().to_owned()).collect())
                        .unwrap_or_default();
                    out.push((meta.location, parts));
                }
                out
            }
        };
    for (location, parts) in files {
        let target = local_path(dir, &parts).ok_or_else(|| Error::Command {
            message: format!("input `{}`: unsafe file name `{location}`", input.name),
        })?;
        if let Some(parent) = target.parent() {
            create_dir(parent).await?;
        }
        let got = store
            .get(&location)
            .await
            .map_err(|e| Error::store(&location, e))?;
        let mut stream = got.into_stream();
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(|e| Error::io(&target, e))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::store(&location, e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(&target, e))?;
        }
        file.flush().await.map_err(|e| Error::io(&target, e))?;
    }
    Ok(())
}

/// `dir/<parts...>`, or `None` if a part could escape `dir`.
fn local_path(dir: &FsPath, parts: &[String]) -> Option<PathBuf> {
    if parts.is_empty() {
        return None;
    }
    let mut out = dir.to_path_buf();
    for part in parts {
        if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\', '\0']) {
            return None;
        }
        out.push(part);
    }
    Some(out)
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

/// Replaces JWT-like tokens and known secret values with `***`.
struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn new(mut secrets: Vec<String>) -> Self {
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    fn redact(&self, line: &str) -> String {
        let mut out = redact_signatures(&redact_jwts(line));
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Replaces every `eyJ<b64url>.<b64url>.<b64url>` with `***`.
fn redact_jwts(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(found) = line.get(i..).and_then(|s| s.find("eyJ")) {
        let start = i + found;
        // Three base64url segments separated by two dots.
        let mut end = start;
        let mut dots = 0;
        let mut segment_len = 0;
        while let Some(&b) = bytes.get(end) {
            if is_b64url(b) {
                segment_len += 1;
            } else if b == b'.' && dots < 2 && segment_len > 0 {
                dots += 1;
                segment_len = 0;
            } else {
                break;
            }
            end += 1;
        }
        if dots == 2 && segment_len > 0 {
            out.push_str(line.get(copied..start).unwrap_or_default());
            out.push_str("***");
            copied = end;
            i = end;
        } else {
            i = start + 3;
        }
    }
    out.push_str(line.get(copied..).unwrap_or_default());
    out
}

/// Replaces the value of every `X-Amz-Signature=` (any case) with `***`,
/// so a presigned URL the child prints is useless in the logs.
fn redact_signatures(line: &str) -> String {
    const KEY: &str = "x-amz-signature=";
    let lower = line.to_ascii_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower.get(from..).and_then(|rest| rest.find(KEY)) {
        let value_start = from + found + KEY.len();
        let value_len = lower
            .get(value_start..)
            .unwrap_or_default()
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        out.push_str(line.get(copied..value_start).unwrap_or_default());
        out.push_str("***");
        copied = value_start + value_len;
        from = copied;
    }
    out.push_str(line.get(copied..).unwrap_or_default());
    out
}

/// Uploads `files` (from [`walk`]) to `<path>/<version>/...`.
async fn upload(
    output: &DatasetRef,
    files: Vec<(PathBuf, Vec<String>)>,
    version: &str,
) -> Result<Vec<ManifestFile>> {
    let prefix = output.path.clone().join(version);
    let mut out = Vec::with_capacity(files.len());
    for (local, parts) in files {
        let mut location = prefix.clone();
        for part in &parts {
            location = location.join(part.as_str());
        }
        let body = tokio::fs::read(&local)
            .await
            .map_err(|e| Error::io(&local, e))?;
        let size = body.len() as u64;
        let rows = if local.extension().is_some_and(|e| e == "parquet") {
            parquet_rows(&local)?
        } else {
            0
        };
        output
            .store
            .put(&location, PutPayload::from(body))
            .await
            .map_err(|e| Error::store(&location, e))?;
        out.push(ManifestFile {
            name: parts.join("/"),
            size,
            rows,
        });
    }
    Ok(out)
}

/// Every regular file under `dir` with its path segments, sorted; a symlink
/// or special file is an error.
fn walk(dir: &FsPath) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), Vec::<String>::new())];
    while let Some((folder, parts)) = todo.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| Error::io(&folder, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&folder, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| Error::Command {
                    message: format!("output file name is not UTF-8: {}", path.display()),
                })?;
            let mut sub = parts.clone();
            sub.push(name);
            if kind.is_symlink() {
                return Err(Error::Command {
                    message: format!(
                        "output `{}` is a symbolic link; write regular files only",
                        sub.join("/")
                    ),
                });
            } else if kind.is_dir() {
                todo.push((path, sub));
            } else if kind.is_file() {
                out.push((path, sub));
            } else {
                return Err(Error::Command {
                    message: format!("output `{}` is not a regular file", sub.join("/")),
                });
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn parquet_rows(path: &FsPath) -> Result<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| Error::Command {
        message: format!("output file {} is not valid Parquet: {e}", path.display()),
    })?;
    Ok(u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_and_secret_values_are_redacted() {
        let r = Redactor::new(vec!["hunter22".into()]);
        let line = "token=eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln-_x pw=hunter22 eyJnot.a";
        assert_eq!(r.redact(line), "token=*** pw=*** eyJnot.a");
    }

    #[test]
    fn presigned_signatures_are_redacted() {
        let r = Redactor::new(Vec::new());
        let line = "GET http://127.0.0.1:9/b/k?X-Amz-Date=1&X-Amz-Signature=ab12cd&x=1 \
                    x-amz-signature=FFee00 X-Amz-Signature=";
        assert_eq!(
            r.redact(line),
            "GET http://127.0.0.1:9/b/k?X-Amz-Date=1&X-Amz-Signature=***&x=1 \
                    x-amz-signature=*** X-Amz-Signature=***"
        );
    }

    #[test]
    fn unsafe_local_names_are_refused() {
        let dir = FsPath::new("/tmp/x");
        assert!(local_path(dir, &["..".into()]).is_none());
        assert!(local_path(dir, &["a/b".into()]).is_none());
        assert!(local_path(dir, &[]).is_none());
        assert_eq!(
            local_path(dir, &["a".into(), "b.csv".into()]),
            Some(PathBuf::from("/tmp/x/a/b.csv"))
        );
    }
}
