//! A DataFusion object-store registry that holds exactly the stores a stage
//! was given, and nothing else.
//!
//! DataFusion's default registry quietly provides `file://` (the whole local
//! filesystem). A stage's SQL must not reach anything it was not handed, so
//! each stage gets a fresh [`StageRegistry`]: unknown URLs are an error, and
//! nothing can be registered after construction.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::ObjectStore;
use url::Url;

/// The URL scheme weir uses for stores inside DataFusion: `weir://<store>/<path>`.
pub const SCHEME: &str = "weir";

/// The base URL of `store` inside a stage's DataFusion runtime.
pub fn store_url(store: &str) -> String {
    format!("{SCHEME}://{store}/")
}

/// A closed, per-stage registry of object stores keyed by store name.
#[derive(Debug)]
pub struct StageRegistry {
    stores: HashMap<String, Arc<dyn ObjectStore>>,
}

impl StageRegistry {
    /// A registry holding exactly `stores` (store name -> store).
    pub fn new(stores: HashMap<String, Arc<dyn ObjectStore>>) -> Self {
        Self { stores }
    }
}

impl ObjectStoreRegistry for StageRegistry {
    /// Refused: the set of stores is fixed when the stage starts.
    fn register_store(
        &self,
        url: &Url,
        _store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        tracing::warn!(%url, "refused to register an object store after stage start");
        None
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        Err(DataFusionError::Plan(format!(
            "object store `{}` cannot be deregistered",
            url.as_str()
        )))
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let found = (url.scheme() == SCHEME)
            .then(|| url.host_str())
            .flatten()
            .and_then(|host| self.stores.get(host));
        found.cloned().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "no store for `{}://{}` in this stage; a stage reads only the datasets it declares",
                url.scheme(),
                url.host_str().unwrap_or("")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn only_given_stores_resolve() {
        let reg = StageRegistry::new(HashMap::from([(
            "lake".to_owned(),
            Arc::new(InMemory::new()) as Arc<dyn ObjectStore>,
        )]));
        assert!(reg.get_store(&Url::parse("weir://lake/x").unwrap()).is_ok());
        assert!(
            reg.get_store(&Url::parse("file:///etc/passwd").unwrap())
                .is_err()
        );
        assert!(
            reg.get_store(&Url::parse("weir://other/x").unwrap())
                .is_err()
        );
        assert!(
            reg.register_store(&Url::parse("file:///").unwrap(), Arc::new(InMemory::new()))
                .is_none()
        );
        assert!(reg.get_store(&Url::parse("file:///").unwrap()).is_err());
    }
}
