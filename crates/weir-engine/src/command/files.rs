//! Moving a command's data: inputs materialized into its private folder
//! (or presigned URL files written there), outputs uploaded from it, all
//! through the stage's guarded stores.

use std::path::{Path as FsPath, PathBuf};

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;

use super::{CommandJob, DatasetRef, create_dir, display, env_name};
use crate::dataset::{self, ManifestFile, ReadLocation};
use crate::error::{Error, Result};
use crate::presign;

/// Materialized access: copies inputs into `in/<name>/` and creates
/// `out/<name>/`; returns the `WEIR_INPUT_*`/`WEIR_OUTPUT_*` variables.
pub(super) async fn prepare_files(
    job: &CommandJob<'_>,
    root: &FsPath,
) -> Result<Vec<(String, String)>> {
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
pub(super) async fn prepare_urls(
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
pub(super) async fn upload_files(
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

/// Copies the current files of `input` into `dir`, through its guarded
/// store; or, for an input weir rewrote, writes its permitted rows as one
/// `part-00000` file.
async fn materialize(input: &DatasetRef, dir: &FsPath) -> Result<()> {
    if let Some(data) = &input.rows {
        let target = dir.join(crate::datafile::part_name(input.format));
        let data = data.clone();
        let format = input.format;
        return tokio::task::spawn_blocking(move || write_local(&target, format, &data))
            .await
            .map_err(|e| Error::Internal {
                message: format!("writing an input: {e}"),
            })?;
    }
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

/// Writes `data` to a new local file in `format`.
fn write_local(
    target: &FsPath,
    format: weir_spec::Format,
    data: &crate::checks::InputData,
) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|e| Error::io(target, e))?;
    let write_error = |e: &dyn std::fmt::Display| Error::Write {
        path: target.display().to_string(),
        message: e.to_string(),
    };
    match format {
        weir_spec::Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(file, data.schema.clone(), None)
                .map_err(|e| write_error(&e))?;
            for batch in &data.batches {
                w.write(batch).map_err(|e| write_error(&e))?;
            }
            w.close().map_err(|e| write_error(&e))?;
        }
        weir_spec::Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::BufWriter::new(file));
            if data.batches.is_empty() {
                w.write(&arrow::record_batch::RecordBatch::new_empty(
                    data.schema.clone(),
                ))
                .map_err(|e| write_error(&e))?;
            }
            for batch in &data.batches {
                w.write(batch).map_err(|e| write_error(&e))?;
            }
        }
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
