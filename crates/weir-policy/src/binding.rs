//! Store bindings: which physical location a store name means to the policy.
//!
//! Store names in pipelines are only local aliases. A grant on `lake` must
//! not become usable by a pipeline that calls some other folder `lake`, so
//! the policy binds each name to a location and the plan check
//! ([`PolicySet::check_store_binding`](crate::PolicySet::check_store_binding))
//! refuses a pipeline whose store resolves elsewhere.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use weir_spec::{Location, S3Location, StoreLocation};

use crate::error::{Error, Result};
use crate::set::PolicySet;

/// Where a policy says a store lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BoundLocation {
    /// A local folder: absolute and lexically normalised (no `.` or `..`
    /// components, no trailing slash). Symlinks are not resolved.
    Local(PathBuf),
    /// An S3 bucket and prefix. Two S3 locations are the same store when
    /// bucket, prefix and endpoint are equal; the region does not name a
    /// different store.
    S3(S3Location),
}

impl BoundLocation {
    /// The policy's view of a pipeline store location.
    #[must_use]
    pub fn of(location: &StoreLocation) -> Option<Self> {
        match location {
            StoreLocation::Local(path) => Some(Self::Local(normalize(path))),
            StoreLocation::S3(s3) => Some(Self::S3(S3Location {
                region: None,
                ..s3.clone()
            })),
            _ => None,
        }
    }
}

impl fmt::Display for BoundLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::S3(s3) => match &s3.endpoint {
                Some(endpoint) => write!(f, "{} at {endpoint}", s3.url()),
                None => f.write_str(&s3.url()),
            },
        }
    }
}

/// A store name bound to a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreBinding {
    /// The store name.
    pub name: String,
    /// The location.
    pub location: BoundLocation,
    /// Where it is declared.
    pub origin: Location,
}

/// `path` made absolute (against the current directory if relative) and
/// lexically normalised: `.` dropped, `..` pops a component (never above
/// the root). No filesystem access beyond reading the current directory.
#[must_use]
pub fn normalize(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::Prefix(p) => out.push(p.as_os_str()),
            Component::RootDir => out.push(Component::RootDir.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

impl PolicySet {
    /// Checks that a pipeline's store `store_name` at `location` is the
    /// store the policy binds that name to: both locations, made absolute
    /// and lexically normalised, must be equal. The plan check calls this
    /// for every store a pipeline uses, so that a grant on `lake` is never
    /// usable by a pipeline that names some other folder `lake`.
    ///
    /// # Errors
    ///
    /// [`Error::UnboundStore`] if no policy file binds `store_name`;
    /// [`Error::StoreMismatch`] if the locations differ;
    /// [`Error::UnsupportedStoreLocation`] for a location kind this build
    /// cannot compare.
    pub fn check_store_binding(&self, store_name: &str, location: &StoreLocation) -> Result<()> {
        let binding = self.store(store_name).ok_or_else(|| Error::UnboundStore {
            store: store_name.to_owned(),
        })?;
        let pipeline =
            BoundLocation::of(location).ok_or_else(|| Error::UnsupportedStoreLocation {
                store: store_name.to_owned(),
            })?;
        if binding.location == pipeline {
            Ok(())
        } else {
            Err(Error::StoreMismatch {
                store: store_name.to_owned(),
                policy: binding.location.to_string(),
                pipeline: pipeline.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> PolicySet {
        PolicySet::load_str(
            "p.yaml",
            "version: 1\nstores: { lake: { url: ../examples/data } }\n",
            Path::new("/w/policies"),
        )
        .unwrap()
    }

    #[test]
    fn same_folder_by_another_spelling_is_accepted() {
        let loc = StoreLocation::Local(PathBuf::from("/w/pipelines/../examples/data/"));
        set().check_store_binding("lake", &loc).unwrap();
        let loc = StoreLocation::Local(PathBuf::from("/w/./examples/data"));
        set().check_store_binding("lake", &loc).unwrap();
    }

    #[test]
    fn another_folder_named_like_a_bound_store_is_refused() {
        let loc = StoreLocation::Local(PathBuf::from("/tmp/attacker/lake"));
        let err = set().check_store_binding("lake", &loc).unwrap_err();
        assert!(matches!(err, Error::StoreMismatch { .. }), "{err}");
        let sibling = StoreLocation::Local(PathBuf::from("/w/examples/data2"));
        assert!(set().check_store_binding("lake", &sibling).is_err());
        let parent = StoreLocation::Local(PathBuf::from("/w/examples"));
        assert!(set().check_store_binding("lake", &parent).is_err());
    }

    fn s3(
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> StoreLocation {
        StoreLocation::S3(S3Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: endpoint.map(Into::into),
            region: region.map(Into::into),
        })
    }

    #[test]
    fn s3_binding_matches_bucket_prefix_and_endpoint() {
        let set = PolicySet::load_str(
            "p.yaml",
            "version: 1\nstores:\n  lake: { url: s3://weir-lake/prod/, endpoint: \"https://s3.internal:9000\", region: eu-west-1 }\n",
            Path::new("/w/policies"),
        )
        .unwrap();
        let e = Some("https://s3.internal:9000");
        // The region does not make it another store; a trailing `/` is dropped.
        set.check_store_binding("lake", &s3("weir-lake", "prod", e, None))
            .unwrap();
        for other in [
            s3("weir-lake", "prod2", e, None),
            s3("weir-lake", "prod/sub", e, None),
            s3("weir-lake", "", e, None),
            s3("attacker", "prod", e, None),
            s3("weir-lake", "prod", Some("https://evil.example"), None),
            s3("weir-lake", "prod", None, None),
            StoreLocation::Local(PathBuf::from("/w/prod")),
        ] {
            let err = set.check_store_binding("lake", &other).unwrap_err();
            assert!(matches!(err, Error::StoreMismatch { .. }), "{err}");
        }
    }

    #[test]
    fn unbound_store_is_refused() {
        let loc = StoreLocation::Local(PathBuf::from("/w/examples/data"));
        let err = set().check_store_binding("warehouse", &loc).unwrap_err();
        assert!(matches!(err, Error::UnboundStore { .. }), "{err}");
    }

    #[test]
    fn normalize_is_lexical_and_absolute() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d/")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("/../../x")), PathBuf::from("/x"));
        assert!(normalize(Path::new("rel/dir")).is_absolute());
        assert_eq!(
            normalize(Path::new("/w/policies/../examples/data")),
            normalize(Path::new("/w/pipelines/../examples/data/"))
        );
    }
}
