//! Presigned access for `command` stages whose datasets live in S3 stores
//! (`access: presigned`): the child gets SigV4 URLs instead of files.
//!
//! # Security
//! - A URL is signed only after the stage's [`GuardedStore`] allowed and
//!   recorded it (`presign_get` needs `read`, `presign_put` needs `write`),
//!   so issuing is checked against the stage token and audited like any
//!   other access. One URL names one object: the signature covers the
//!   method, bucket and key, so it cannot fetch or overwrite another.
//! - A URL expires with the stage token (never later, never more than the
//!   SigV4 limit of seven days).
//! - URLs are secrets: [`PresignedUrl`] never prints its value, the files
//!   that hold them are 0600 in the attempt's 0700 folder, and the child's
//!   output is logged with every `X-Amz-Signature` value replaced by `***`.
//! - Output objects are accepted only under the attempt's own version
//!   folder and only with the names weir issued URLs for; every Parquet
//!   object's footer is read through the guard before the commit.

use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use http::Method;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::metadata::ParquetMetaDataReader;
use serde::Serialize;
use weir_auth::Clock;
use weir_policy::{GuardedStore, PresignAction};
use weir_spec::Format;

use crate::command::DatasetRef;
use crate::dataset::{self, ManifestFile, ReadLocation};
use crate::error::{Error, Result};

/// SigV4's longest presigned lifetime.
const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Signs URLs for one S3 store of one stage attempt.
#[derive(Clone)]
pub(crate) struct Presigner {
    guard: GuardedStore,
    bucket: Arc<AmazonS3>,
    prefix: String,
    /// The stage token's `exp` (Unix seconds).
    expires_at: i64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Presigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presigner")
            .field("store", &self.guard.store_name())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A presigned URL. Its `Debug` never shows the value.
/// Serializing it (into the child's URL file) is the only way out.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct PresignedUrl(String);

impl fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresignedUrl(***)")
    }
}

impl Presigner {
    /// A signer for the store behind `guard`: `bucket` is the bucket-level
    /// client, `prefix` the store url's key prefix.
    pub(crate) fn new(
        guard: GuardedStore,
        bucket: Arc<AmazonS3>,
        prefix: String,
        expires_at: i64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            guard,
            bucket,
            prefix,
            expires_at,
            clock,
        }
    }

    /// When the URLs this signer issues stop working.
    pub(crate) fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Authorizes (and records) then signs one URL for `location`, a path
    /// relative to the store.
    ///
    /// # Errors
    /// [`Error::Store`] if the guard refuses or the token has expired.
    pub(crate) async fn url(&self, location: &Path, action: PresignAction) -> Result<PresignedUrl> {
        self.guard
            .authorize_presign(location, action)
            .await
            .map_err(|e| Error::store(location, e))?;
        let left = self.expires_at.saturating_sub(self.clock.now());
        let left = u64::try_from(left).ok().filter(|s| *s > 0).ok_or_else(|| {
            Error::store(
                location,
                object_store::Error::Unauthenticated {
                    path: location.to_string(),
                    source: "the stage token has expired".into(),
                },
            )
        })?;
        let ttl = Duration::from_secs(left).min(MAX_EXPIRY);
        let key = self.bucket_key(location);
        let method = match action {
            PresignAction::Get => Method::GET,
            PresignAction::Put => Method::PUT,
        };
        let url = self
            .bucket
            .signed_url(method, &key, ttl)
            .await
            .map_err(|e| Error::store(location, e))?;
        Ok(PresignedUrl(url.to_string()))
    }

    fn bucket_key(&self, location: &Path) -> Path {
        if self.prefix.is_empty() {
            return location.clone();
        }
        let mut key = Path::from(self.prefix.as_str());
        for part in location.parts() {
            key = key.join(part);
        }
        key
    }
}

/// One URL in a URL file.
#[derive(Serialize)]
struct UrlEntry {
    /// File name inside the dataset (as a materialized copy would name it).
    name: String,
    /// Size in bytes, when known (inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    url: PresignedUrl,
}

/// The JSON document a presigned child finds at `WEIR_INPUT_<NAME>` or
/// `WEIR_OUTPUT_<NAME>`.
#[derive(Serialize)]
struct UrlFile {
    dataset: String,
    method: &'static str,
    expires_at: String,
    files: Vec<UrlEntry>,
}

fn presigner(dataset: &DatasetRef) -> Result<&Presigner> {
    dataset.presigner.as_ref().ok_or_else(|| Error::Command {
        message: format!(
            "dataset `{}` is not in an S3 store; `access: presigned` needs one",
            dataset.name
        ),
    })
}

/// `location` relative to `base`, as `a/b` (empty if it is not under it).
fn relative_name(location: &Path, base: &Path) -> String {
    location
        .prefix_match(base)
        .map(|it| it.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .join("/")
}

/// Writes the GET URLs of `input`'s current objects to `file` (0600).
pub(crate) async fn input_urls(input: &DatasetRef, file: &FsPath) -> Result<()> {
    let signer = presigner(input)?;
    let store = input.store.as_ref();
    let mut objects: Vec<(Path, String, Option<u64>)> = Vec::new();
    match dataset::resolve_read(store, &input.name, &input.path).await? {
        ReadLocation::Version { prefix, manifest } => {
            for f in &manifest.files {
                let mut p = prefix.clone();
                for part in f.name.split('/') {
                    p = p.join(part);
                }
                objects.push((p, f.name.clone(), Some(f.size)));
            }
        }
        ReadLocation::File(p) => {
            let name = p.filename().unwrap_or("data").to_owned();
            objects.push((p, name, None));
        }
        ReadLocation::Folder(base) => {
            let mut listing = store.list(Some(&base));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| Error::store(&base, e))?;
                let name = relative_name(&meta.location, &base);
                objects.push((meta.location, name, Some(meta.size)));
            }
        }
    }
    let mut files = Vec::with_capacity(objects.len());
    for (location, name, size) in objects {
        let url = signer.url(&location, PresignAction::Get).await?;
        files.push(UrlEntry { name, size, url });
    }
    write_url_file(file, &input.name, "GET", signer.expires_at(), files).await
}

/// The object names a presigned output may be written as.
pub(crate) fn part_names(parts: u32, format: Format) -> Vec<String> {
    (0..parts)
        .map(|i| format!("part-{i:05}.{}", format.extension()))
        .collect()
}

/// Writes `parts` PUT URLs for `output`'s attempt folder `version` to
/// `file` (0600).
pub(crate) async fn output_urls(
    output: &DatasetRef,
    version: &str,
    parts: u32,
    file: &FsPath,
) -> Result<()> {
    let signer = presigner(output)?;
    let folder = output.path.clone().join(version);
    let mut files = Vec::with_capacity(parts as usize);
    for name in part_names(parts, output.format) {
        let url = signer
            .url(&folder.clone().join(name.as_str()), PresignAction::Put)
            .await?;
        files.push(UrlEntry {
            name,
            size: None,
            url,
        });
    }
    write_url_file(file, &output.name, "PUT", signer.expires_at(), files).await
}

async fn write_url_file(
    file: &FsPath,
    dataset: &str,
    method: &'static str,
    expires_at: i64,
    files: Vec<UrlEntry>,
) -> Result<()> {
    let doc = UrlFile {
        dataset: dataset.to_owned(),
        method,
        expires_at: Utc
            .timestamp_opt(expires_at, 0)
            .single()
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        files,
    };
    let body = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Internal {
        message: format!("encoding presigned URLs: {e}"),
    })?;
    crate::command::write_private(file, &body).await
}

/// The objects the child uploaded to `output`'s attempt folder, checked:
/// only issued names, Parquet footers readable.
///
/// # Errors
/// [`Error::Command`] if nothing was uploaded or an object is not valid;
/// [`Error::Store`] if listing or reading through the guard fails.
pub(crate) async fn collect_outputs(
    output: &DatasetRef,
    version: &str,
    parts: u32,
) -> Result<Vec<ManifestFile>> {
    let folder = output.path.clone().join(version);
    let allowed = part_names(parts, output.format);
    let mut listing = output.store.list(Some(&folder));
    let mut found = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| Error::store(&folder, e))?;
        let name = relative_name(&meta.location, &folder);
        if !allowed.contains(&name) {
            return Err(Error::Command {
                message: format!(
                    "output `{}` holds `{name}`, which weir did not issue a URL for",
                    output.name
                ),
            });
        }
        found.push((meta, name));
    }
    if found.is_empty() {
        return Err(Error::Command {
            message: format!(
                "command uploaded nothing to output `{}` (PUT to the URLs in WEIR_OUTPUT_{})",
                output.name,
                output.name.to_ascii_uppercase()
            ),
        });
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    let mut files = Vec::with_capacity(found.len());
    for (meta, name) in found {
        let rows = match output.format {
            Format::Parquet => {
                parquet_rows(&output.store, &meta)
                    .await
                    .map_err(|e| Error::Command {
                        message: format!(
                            "output `{}`: `{name}` is not a readable Parquet file: {e}",
                            output.name
                        ),
                    })?
            }
            Format::Csv => 0,
        };
        files.push(ManifestFile {
            name,
            size: meta.size,
            rows,
        });
    }
    Ok(files)
}

/// Longest Parquet footer read to count rows.
const MAX_FOOTER: u64 = 64 * 1024 * 1024;

/// Rows of the Parquet object `meta`, from its footer (two range reads
/// through the guard; the data pages are never fetched).
async fn parquet_rows(
    store: &Arc<dyn ObjectStore>,
    meta: &object_store::ObjectMeta,
) -> std::result::Result<u64, String> {
    let size = meta.size;
    if size < 12 {
        return Err("too short to be Parquet".into());
    }
    let tail = store
        .get_range(&meta.location, size - 8..size)
        .await
        .map_err(|e| e.to_string())?;
    let (len, magic) = tail.split_at(4);
    if magic != b"PAR1" {
        return Err("no Parquet magic at the end".into());
    }
    let len = u64::from(u32::from_le_bytes(
        len.try_into().map_err(|_| "short footer".to_owned())?,
    ));
    if len > MAX_FOOTER || len + 12 > size {
        return Err(format!(
            "footer length {len} does not fit a {size}-byte file"
        ));
    }
    let footer = store
        .get_range(&meta.location, size - 8 - len..size - 8)
        .await
        .map_err(|e| e.to_string())?;
    let metadata = ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| e.to_string())?;
    Ok(u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0))
}
