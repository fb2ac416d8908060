//! Output leases: two runs never write the same dataset at the same time.
//!
//! Before any stage runs, a run takes one lease per output dataset, keyed by
//! the dataset's physical location (local folder or S3 bucket + prefix, plus
//! the dataset path), so two pipelines that name the same place differently
//! still conflict. A run that cannot take every lease fails at once with the
//! holder's run id, and releases what it took. Leases are renewed while the
//! run lives and released when it ends; a crashed run's leases expire after
//! [`LEASE_TTL`].

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use weir_queue::{LeaseOutcome, Leases};
use weir_spec::{Pipeline, StoreLocation};

use crate::error::{Error, Result};

/// How long a lease outlives its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// How often a live run renews its leases.
const RENEW_EVERY: Duration = Duration::from_secs(15);

/// The leases one run holds; released by [`OutputLeases::release`].
pub struct OutputLeases {
    table: Arc<dyn Leases>,
    holder: String,
    keys: Vec<String>,
    renewer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OutputLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputLeases")
            .field("holder", &self.holder)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The lease key of dataset `name`: its store's physical location and path.
fn lease_key(pipeline: &Pipeline, name: &str) -> Option<String> {
    let dataset = pipeline.datasets.get(name)?;
    let store = pipeline.stores.get(&dataset.store)?;
    let place = match &store.location {
        StoreLocation::Local(root) => format!("file://{}", normalize(root).display()),
        StoreLocation::S3(s3) => format!(
            "{}@{}",
            s3.url(),
            s3.endpoint.as_deref().unwrap_or("default")
        ),
        #[allow(unreachable_patterns)]
        _ => format!("store:{}", dataset.store),
    };
    Some(format!("{place}/{}", dataset.path.trim_matches('/')))
}

/// `path` with `.` and `..` resolved lexically (no file system access: the
/// folder may not exist yet), so one place has one key.
fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl OutputLeases {
    /// Takes a lease on every output of `pipeline` for run `holder`.
    ///
    /// # Errors
    /// [`Error::Leased`] naming the first dataset another run holds (after
    /// releasing the leases taken so far); [`Error::Queue`] if the lease
    /// table is unreachable.
    pub async fn acquire(
        table: Arc<dyn Leases>,
        pipeline: &Pipeline,
        holder: &str,
    ) -> Result<Self> {
        let mut outputs: Vec<(&str, String)> = pipeline
            .stages
            .iter()
            .flat_map(|s| s.outputs.iter())
            .filter_map(|name| lease_key(pipeline, name).map(|k| (name.as_str(), k)))
            .collect();
        // One order for every run, so two runs never wait on each other in a cycle.
        outputs.sort_by(|a, b| a.1.cmp(&b.1));
        outputs.dedup_by(|a, b| a.1 == b.1);
        let mut taken = Self {
            table: table.clone(),
            holder: holder.to_owned(),
            keys: Vec::new(),
            renewer: None,
        };
        for (dataset, key) in outputs {
            match table.acquire(&key, holder, LEASE_TTL).await {
                Ok(LeaseOutcome::Acquired) => taken.keys.push(key),
                Ok(LeaseOutcome::HeldBy { holder, remaining }) => {
                    taken.release().await;
                    return Err(Error::Leased {
                        dataset: dataset.to_owned(),
                        holder,
                        remaining_secs: remaining.as_secs(),
                    });
                }
                Err(e) => {
                    taken.release().await;
                    return Err(Error::Queue {
                        message: format!("taking the lease on dataset `{dataset}`: {e}"),
                    });
                }
            }
        }
        taken.renewer = Some(tokio::spawn(renew_forever(
            table,
            taken.holder.clone(),
            taken.keys.clone(),
        )));
        Ok(taken)
    }

    /// Releases every lease (best effort: an unreachable table lets them
    /// expire on their own).
    pub async fn release(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        for key in self.keys.drain(..) {
            if let Err(e) = self.table.release(&key, &self.holder).await {
                tracing::warn!(lease = %key, error = %e, "could not release an output lease; it will expire");
            }
        }
    }
}

impl Drop for OutputLeases {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

async fn renew_forever(table: Arc<dyn Leases>, holder: String, keys: Vec<String>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        for key in &keys {
            match table.renew(key, &holder, LEASE_TTL).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(lease = %key, "an output lease was lost; another run may write this dataset");
                }
                Err(e) => {
                    tracing::warn!(lease = %key, error = %e, "could not renew an output lease")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_queue::InProcessCoordination;

    fn pipeline(root: &str) -> Pipeline {
        let yaml = format!(
            "version: 1\nname: p\nprincipal: svc-p\nstores:\n  lake:\n    url: {root}\ndatasets:\n  a:\n    store: lake\n    path: raw/a.csv\n    format: csv\n  b:\n    store: lake\n    path: out/b\n    format: parquet\nstages:\n  - name: s\n    kind: sql\n    sql: SELECT * FROM a\n    inputs: [a]\n    outputs: [b]\n"
        );
        weir_spec::load_str("p.yaml", &yaml, std::path::Path::new("/"))
            .unwrap()
            .pipeline
    }

    #[tokio::test]
    async fn a_second_run_writing_the_same_dataset_is_refused_until_release() {
        let table: Arc<dyn Leases> = Arc::new(InProcessCoordination::default());
        let p = pipeline("/tmp/lake");
        let mut first = OutputLeases::acquire(table.clone(), &p, "run-1")
            .await
            .unwrap();
        let err = OutputLeases::acquire(table.clone(), &p, "run-2")
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("dataset `b`") && msg.contains("run-1"),
            "{msg}"
        );
        // The same place spelled differently still conflicts.
        let same_place = pipeline("/tmp/x/../lake/./");
        assert!(
            OutputLeases::acquire(table.clone(), &same_place, "run-3")
                .await
                .is_err()
        );
        first.release().await;
        let mut second = OutputLeases::acquire(table.clone(), &p, "run-2")
            .await
            .unwrap();
        second.release().await;
    }
}
