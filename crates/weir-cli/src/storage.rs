//! Where a command finds what it shares with other processes: the state
//! folder (keys always; the audit log and run records by default) and,
//! with `--database`, a PostgreSQL database for the audit log and run
//! records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_audit::Origin;
use weir_auth::SecretString;
use weir_engine::record::{FileRunStore, RunStore};
use weir_engine::{Audit, Database};

/// The state folder and the optional shared database.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    dir: PathBuf,
    database: Option<Database>,
}

impl Storage {
    /// Checks the database settings (without connecting).
    pub(crate) fn new(
        dir: &Path,
        url: Option<SecretString>,
        schema: Option<&str>,
    ) -> anyhow::Result<Self> {
        let database = url
            .map(|url| Database::new(url, schema))
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid --database setting: {e}"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            database,
        })
    }

    /// The state folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The audit log, written as `origin`.
    pub(crate) async fn audit(&self, origin: Origin) -> anyhow::Result<Audit> {
        Ok(Audit::open(&self.dir, self.database.as_ref(), origin).await?)
    }

    /// The run-record store.
    pub(crate) async fn runs(&self) -> anyhow::Result<Arc<dyn RunStore>> {
        Ok(weir_engine::record::open(&self.dir, self.database.as_ref()).await?)
    }

    /// Where run records are, for people: the state folder or the
    /// database's host (never its URL).
    pub(crate) fn runs_location(&self) -> String {
        match &self.database {
            Some(db) => format!("the database at {}", db.host()),
            None => self.dir.display().to_string(),
        }
    }

    /// Where the record of `run_id` is, for people.
    pub(crate) fn record_location(&self, run_id: &str) -> String {
        match &self.database {
            Some(db) => format!(
                "table {} in the database at {}",
                weir_engine::record::RUNS_TABLE,
                db.host()
            ),
            None => FileRunStore::new(&self.dir)
                .path(run_id)
                .map_or_else(|e| e.to_string(), |p| p.display().to_string()),
        }
    }
}

/// Keeps `--database` out of clap's error messages and `Debug` output
/// (clap echoes a value its parser refuses): every value is accepted here
/// and checked by [`Storage::new`], whose errors never echo it.
pub(crate) fn secret_arg(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::new(value.to_owned()))
}
