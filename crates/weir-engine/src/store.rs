//! Opening the stores a pipeline names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use weir_spec::store::check_endpoint;
use weir_spec::{Pipeline, S3Location, StoreLocation};

use crate::error::{Error, Result};

/// The raw stores of one pipeline, by store name.
///
/// # Security
/// These hold the orchestrator's own access. They are handed to stages only
/// through the engine, which narrows them to what each stage declared.
#[derive(Debug, Clone, Default)]
pub struct StoreSet {
    stores: BTreeMap<String, Arc<dyn ObjectStore>>,
    local_roots: BTreeMap<String, PathBuf>,
    s3: BTreeMap<String, S3Store>,
}

/// An opened S3 store: the prefixed store stages use (through their guard)
/// and the bucket-level client that signs presigned URLs.
#[derive(Debug, Clone)]
pub(crate) struct S3Store {
    /// The store as stages see it: keys relative to the url's prefix.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The bucket-level client (signer).
    pub(crate) bucket: Arc<AmazonS3>,
    /// The url's key prefix (no leading or trailing `/`).
    pub(crate) prefix: String,
}

impl StoreSet {
    /// Opens every store of `pipeline`, creating local roots that do not exist.
    ///
    /// # Errors
    /// [`Error::OpenStore`] naming the store that could not be opened.
    pub fn open(pipeline: &Pipeline) -> Result<Self> {
        let mut stores: BTreeMap<String, Arc<dyn ObjectStore>> = BTreeMap::new();
        let mut local_roots = BTreeMap::new();
        let mut s3 = BTreeMap::new();
        for (name, store) in &pipeline.stores {
            let opened: Arc<dyn ObjectStore> = match &store.location {
                StoreLocation::Local(root) => {
                    std::fs::create_dir_all(root).map_err(|e| Error::OpenStore {
                        store: name.clone(),
                        message: format!("cannot create {}: {e}", root.display()),
                    })?;
                    let fs =
                        LocalFileSystem::new_with_prefix(root).map_err(|e| Error::OpenStore {
                            store: name.clone(),
                            message: e.to_string(),
                        })?;
                    local_roots.insert(name.clone(), root.clone());
                    Arc::new(fs.with_automatic_cleanup(true))
                }
                StoreLocation::S3(location) => {
                    let opened = open_s3(name, location)?;
                    s3.insert(name.clone(), opened.clone());
                    opened.store
                }
                #[allow(unreachable_patterns)]
                other => {
                    return Err(Error::OpenStore {
                        store: name.clone(),
                        message: format!("unsupported store location {other:?}"),
                    });
                }
            };
            stores.insert(name.clone(), opened);
        }
        Ok(Self {
            stores,
            local_roots,
            s3,
        })
    }

    /// A set from explicit stores (tests, benchmarks, embedders).
    pub fn from_stores(stores: BTreeMap<String, Arc<dyn ObjectStore>>) -> Self {
        Self {
            stores,
            local_roots: BTreeMap::new(),
            s3: BTreeMap::new(),
        }
    }

    /// The folder behind a local store, for symlink confinement.
    pub fn local_root(&self, name: &str) -> Option<&Path> {
        self.local_roots.get(name).map(PathBuf::as_path)
    }

    /// The S3 store called `name`, if it is one.
    pub(crate) fn s3(&self, name: &str) -> Option<&S3Store> {
        self.s3.get(name)
    }

    /// The raw store called `name`.
    ///
    /// # Errors
    /// [`Error::OpenStore`] if there is none.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<dyn ObjectStore>> {
        self.stores
            .get(name)
            .cloned()
            .ok_or_else(|| Error::OpenStore {
                store: name.to_owned(),
                message: "no such store".into(),
            })
    }
}

/// Region used when neither the store nor `AWS_REGION` names one.
const DEFAULT_REGION: &str = "us-east-1";

/// Environment variables through which `object_store` finds credentials
/// other than a static key pair (web identity, container credentials).
const CREDENTIAL_PROVIDER_VARS: &[&str] = &[
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// Opens an S3 store with credentials from weir's environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
/// `AWS_SESSION_TOKEN`, or a web-identity/container provider).
///
/// # Security
/// - Only the orchestrator holds these credentials; stages reach the store
///   through their guard, and `command` children never inherit `AWS_*`.
/// - Requests are always signed (`AWS_SKIP_SIGNATURE` is overridden).
/// - Plain HTTP only to a loopback endpoint; the endpoint may come from the
///   store or from `AWS_ENDPOINT_URL`, and is checked either way.
/// - No instance-metadata fallback: without credentials the store is not
///   opened, instead of hanging on a metadata address that is not there.
fn open_s3(name: &str, location: &S3Location) -> Result<S3Store> {
    let fail = |message: String| Error::OpenStore {
        store: name.to_owned(),
        message,
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&location.bucket)
        .with_skip_signature(false)
        .with_virtual_hosted_style_request(false);
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &location.region {
        builder = builder.with_region(region);
    } else if builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .is_none()
    {
        builder = builder.with_region(DEFAULT_REGION);
    }
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let plain_http = match &endpoint {
        Some(e) => {
            check_endpoint(e)
                .map_err(|why| fail(format!("endpoint `{e}` is not allowed: {why}")))?;
            e.starts_with("http://")
        }
        None => false,
    };
    let has_keys = builder
        .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
        .is_some()
        && builder
            .get_config_value(&AmazonS3ConfigKey::SecretAccessKey)
            .is_some();
    let has_provider = CREDENTIAL_PROVIDER_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !has_keys && !has_provider {
        return Err(fail(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in weir's environment"
                .into(),
        ));
    }
    let bucket = builder
        .with_allow_http(plain_http)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(plain_http)
                .with_connect_timeout(std::time::Duration::from_secs(5))
                .with_timeout(std::time::Duration::from_secs(120)),
        )
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(30),
            ..RetryConfig::default()
        })
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let bucket = Arc::new(bucket);
    let store: Arc<dyn ObjectStore> = if location.prefix.is_empty() {
        bucket.clone()
    } else {
        Arc::new(Prefixed::new(bucket.as_ref().clone(), &location.prefix))
    };
    Ok(S3Store {
        store,
        bucket,
        prefix: location.prefix.clone(),
    })
}

/// `object_store`'s [`PrefixStore`], with the location of a `get`/`head`
/// result made relative again: in object_store 0.13, `PrefixStore::get_opts`
/// returns the full key (prefix included), which DataFusion then fails to
/// match against the path it asked for. Everything else is delegated.
#[derive(Debug)]
struct Prefixed {
    inner: PrefixStore<AmazonS3>,
    prefix: object_store::path::Path,
}

impl Prefixed {
    fn new(bucket: AmazonS3, prefix: &str) -> Self {
        Self {
            inner: PrefixStore::new(bucket, prefix),
            prefix: object_store::path::Path::from(prefix),
        }
    }
}

impl std::fmt::Display for Prefixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Prefixed {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let mut result = self.inner.get_opts(location, options).await?;
        let relative: Option<object_store::path::Path> = result
            .meta
            .location
            .prefix_match(&self.prefix)
            .map(Iterator::collect);
        if let Some(relative) = relative {
            result.meta.location = relative;
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &object_store::path::Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&object_store::path::Path>,
        offset: &object_store::path::Path,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
