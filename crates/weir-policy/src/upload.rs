//! Multipart uploads started through a guarded store.

use std::sync::Arc;

use async_trait::async_trait;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};

use crate::gate::Gate;

/// Wraps an upload whose start was allowed. Every part and the completion
/// re-check the token's expiry, so an upload cannot outlive its stage
/// token; `abort` always goes through, since it only discards.
#[derive(Debug)]
pub(crate) struct GuardedUpload {
    inner: Box<dyn MultipartUpload>,
    gate: Arc<Gate>,
    path: String,
}

impl GuardedUpload {
    pub(crate) fn new(inner: Box<dyn MultipartUpload>, gate: Arc<Gate>, path: String) -> Self {
        Self { inner, gate, path }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MultipartUpload for GuardedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        match self.gate.check_live(&self.path) {
            Ok(()) => self.inner.put_part(data),
            Err(e) => Box::pin(futures::future::ready(Err(e))),
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.gate.check_live(&self.path)?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
