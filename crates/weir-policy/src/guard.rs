//! [`GuardedStore`]: an `ObjectStore` that lets through only what a stage
//! token's scope allows, recording every decision first.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use weir_auth::{Action, Clock, StageClaims};

use crate::access::{DecisionSink, Operation};
use crate::error::Result;
use crate::gate::{Check, Gate};
use crate::upload::GuardedUpload;

/// What a presigned URL will let its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresignAction {
    /// Download one object (needs `read`).
    Get,
    /// Upload one object (needs `write`).
    Put,
}

/// An [`ObjectStore`] for one store name that enforces a verified stage
/// token's scope on every call.
///
/// | calls | needs |
/// |---|---|
/// | `get_opts` (get, head), `get_ranges`, `list`, `list_with_offset`, `list_with_delimiter` | `read` |
/// | `put_opts`, `put_multipart_opts` | `write` |
/// | `delete_stream` (every location) | `delete` |
/// | `copy_opts` | `read` on the source, `write` on the destination |
/// | `rename_opts` | `read` and `delete` on the source, `write` on the destination |
///
/// # Security
///
/// - Build it only from claims a [`StageVerifier`](weir_auth::StageVerifier)
///   returned: the guard trusts them.
/// - Each path is canonicalised once with [`ScopePath::parse`](weir_auth::ScopePath::parse);
///   a path it refuses (`..`, `%2e%2e`, `//`, backslashes, trailing dots)
///   is denied. Matching is segment-aware.
/// - The token's `exp` is checked on every call, parts of uploads
///   included: once expired, calls fail with
///   `object_store::Error::Unauthenticated`.
/// - A denial is `object_store::Error::PermissionDenied` naming the stage,
///   path and action; the guard never holds the token, so no error can
///   contain it.
/// - Every call records exactly one decision (one per location of a
///   `delete_stream`), allowed or denied, with the [`DecisionSink`], and
///   awaits it *before* the call is delegated; if recording fails, the
///   call is denied and nothing is read or written for it. The streams
///   of `list`, `list_with_offset` and `delete_stream` record when first
///   polled (per location for `delete_stream`), before the wrapped store
///   is asked for anything.
/// - List results (objects and common prefixes) are filtered to the scope;
///   a list prefix from which no readable entry can be reached is denied.
/// - With [`with_local_root`](Self::with_local_root), a path whose
///   canonical form (or its nearest existing ancestor's) leaves the root
///   through a symlink is denied, and such objects are hidden from lists.
#[derive(Clone)]
pub struct GuardedStore {
    inner: Arc<dyn ObjectStore>,
    gate: Arc<Gate>,
}

impl GuardedStore {
    /// Guards `inner`, the store the pipeline calls `store`, with the scope
    /// and expiry of `claims`, reading time from `clock` and recording
    /// decisions with `sink`.
    #[must_use]
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        store: &str,
        claims: &StageClaims,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn DecisionSink>,
    ) -> Self {
        Self {
            inner,
            gate: Arc::new(Gate::new(store, claims, clock, sink)),
        }
    }

    /// Enables the symlink check for a local store rooted at `root` (the
    /// folder the wrapped `LocalFileSystem` was created with).
    ///
    /// # Errors
    ///
    /// [`Error::StoreRoot`](crate::Error::StoreRoot) if `root` cannot be canonicalised.
    pub fn with_local_root(self, root: PathBuf) -> Result<Self> {
        let mut gate = Arc::unwrap_or_clone(self.gate);
        gate.set_local_root(&root)?;
        Ok(Self {
            inner: self.inner,
            gate: Arc::new(gate),
        })
    }

    /// Authorizes issuing a presigned URL for the object at `location`:
    /// `read` for a GET URL, `write` for a PUT URL. Exactly like a direct
    /// call, the decision (operation `presign_get` or `presign_put`) is
    /// recorded before this returns, and a denial or a failed record
    /// refuses the URL. The caller signs the URL only after `Ok`.
    ///
    /// # Errors
    ///
    /// `object_store::Error::PermissionDenied` (outside the scope, or the
    /// record failed) or `Unauthenticated` (token expired).
    pub async fn authorize_presign(
        &self,
        location: &Path,
        action: PresignAction,
    ) -> object_store::Result<()> {
        let (op, needs) = match action {
            PresignAction::Get => (Operation::PresignGet, Action::Read),
            PresignAction::Put => (Operation::PresignPut, Action::Write),
        };
        self.gate.authorize(Check::new(op, location, needs)).await
    }

    /// The store name the guard checks the scope against.
    #[must_use]
    pub fn store_name(&self) -> &str {
        self.gate.store()
    }

    /// A listing whose decision is recorded when it is first polled: the
    /// wrapped store's `list` (called by `start`) is only reached once the
    /// prefix is allowed and recorded; a denied prefix yields its error.
    fn guarded_listing<F>(
        &self,
        op: Operation,
        prefix: Option<&Path>,
        start: F,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>>
    where
        F: FnOnce(
                &dyn ObjectStore,
                Option<&Path>,
            ) -> BoxStream<'static, object_store::Result<ObjectMeta>>
            + Send
            + 'static,
    {
        let gate = Arc::clone(&self.gate);
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        stream::once(async move {
            match gate.authorize_list(op, prefix.as_ref()).await {
                Ok(()) => {
                    let filter = Arc::clone(&gate);
                    start(inner.as_ref(), prefix.as_ref())
                        .try_filter(move |meta| {
                            futures::future::ready(filter.visible(&meta.location))
                        })
                        .boxed()
                }
                Err(e) => stream::once(futures::future::ready(Err(e))).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

impl fmt::Display for GuardedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GuardedStore({}, stage {}, {})",
            self.gate.store(),
            self.gate.stage(),
            self.inner
        )
    }
}

impl fmt::Debug for GuardedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStore")
            .field("gate", &self.gate)
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for GuardedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.gate
            .authorize(Check::new(Operation::Put, location, Action::Write))
            .await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.gate
            .authorize(Check::new(Operation::PutMultipart, location, Action::Write))
            .await?;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        let path = location.as_ref().to_owned();
        Ok(Box::new(GuardedUpload::new(
            upload,
            Arc::clone(&self.gate),
            path,
        )))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head {
            Operation::Head
        } else {
            Operation::Get
        };
        self.gate
            .authorize(Check::new(op, location, Action::Read))
            .await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.gate
            .authorize(Check::new(Operation::GetRanges, location, Action::Read))
            .await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let gate = Arc::clone(&self.gate);
        // Each location's decision is recorded before the wrapped store
        // receives it. A denied location becomes an error item in place:
        // the wrapped store passes errors through and never sees the path.
        let checked = locations
            .then(move |item| {
                let gate = Arc::clone(&gate);
                async move {
                    let path = item?;
                    gate.authorize(Check::new(Operation::Delete, &path, Action::Delete))
                        .await?;
                    Ok(path)
                }
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.guarded_listing(Operation::List, prefix, |inner, prefix| inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let offset = offset.clone();
        self.guarded_listing(Operation::ListWithOffset, prefix, move |inner, prefix| {
            inner.list_with_offset(prefix, &offset)
        })
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.gate
            .authorize_list(Operation::ListWithDelimiter, prefix)
            .await?;
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result
            .objects
            .retain(|meta| self.gate.visible(&meta.location));
        result
            .common_prefixes
            .retain(|p| self.gate.visible_prefix(p));
        Ok(result)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.gate
            .authorize(Check {
                op: Operation::Copy,
                path: to,
                action: Action::Write,
                source: Some((from, &[Action::Read])),
            })
            .await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.gate
            .authorize(Check {
                op: Operation::Rename,
                path: to,
                action: Action::Write,
                source: Some((from, &[Action::Read, Action::Delete])),
            })
            .await?;
        self.inner.rename_opts(from, to, options).await
    }
}
