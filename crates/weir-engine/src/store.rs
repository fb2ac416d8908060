//! Opening the stores a pipeline names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use weir_spec::{Pipeline, StoreLocation};

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
}

impl StoreSet {
    /// Opens every store of `pipeline`, creating local roots that do not exist.
    ///
    /// # Errors
    /// [`Error::OpenStore`] naming the store that could not be opened.
    pub fn open(pipeline: &Pipeline) -> Result<Self> {
        let mut stores: BTreeMap<String, Arc<dyn ObjectStore>> = BTreeMap::new();
        let mut local_roots = BTreeMap::new();
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
        })
    }

    /// A set from explicit stores (tests, benchmarks, embedders).
    pub fn from_stores(stores: BTreeMap<String, Arc<dyn ObjectStore>>) -> Self {
        Self {
            stores,
            local_roots: BTreeMap::new(),
        }
    }

    /// The folder behind a local store, for symlink confinement.
    pub fn local_root(&self, name: &str) -> Option<&Path> {
        self.local_roots.get(name).map(PathBuf::as_path)
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
