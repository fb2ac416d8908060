//! The crate's error type.
//!
//! # Security
//!
//! No variant carries a token, a signature or key material: the guard never
//! holds a token, only the claims verified from it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use weir_auth::Action;
use weir_spec::Diagnostic;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `weir-policy`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A policy file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A policy folder holds no `*.yaml` file.
    #[error("no policy files (*.yaml) in {dir}")]
    NoPolicyFiles {
        /// The folder.
        dir: PathBuf,
    },

    /// The policy files were read and are not a valid policy set.
    #[error("{}", render(diagnostics))]
    Invalid {
        /// Every problem found, each with file, line, column and hint.
        diagnostics: Vec<Diagnostic>,
        /// The source text of each file, by label, for rendering snippets
        /// with [`Diagnostic::render`].
        sources: BTreeMap<String, String>,
    },

    /// The policy binds no location to a store name a pipeline uses.
    #[error("store `{store}` is not bound to a location by any policy file")]
    UnboundStore {
        /// The store name.
        store: String,
    },

    /// A pipeline's store resolves to another location than the policy's
    /// binding of the same name.
    #[error(
        "store `{store}` is `{pipeline}` in the pipeline but the policy binds it to `{policy}`"
    )]
    StoreMismatch {
        /// The store name.
        store: String,
        /// The policy's (normalised) location.
        policy: String,
        /// The pipeline's (normalised) location.
        pipeline: String,
    },

    /// A store location of a kind this build cannot compare.
    #[error("store `{store}` has a location kind this build of weir-policy does not support")]
    UnsupportedStoreLocation {
        /// The store name.
        store: String,
    },

    /// The guard refused an object-store call. Carried as the source of
    /// `object_store::Error::PermissionDenied`.
    #[error(
        "stage `{stage}` of run `{run}` may not {action} `{path}` in store `{store}`: {reason}"
    )]
    AccessDenied {
        /// The stage.
        stage: String,
        /// The run.
        run: String,
        /// The store.
        store: String,
        /// The path the check failed on (truncated when very long).
        path: String,
        /// The action the check failed on.
        action: Action,
        /// Why.
        reason: &'static str,
    },

    /// The stage token expired. Carried as the source of
    /// `object_store::Error::Unauthenticated`.
    #[error("the token of stage `{stage}` of run `{run}` expired at {exp}")]
    TokenExpired {
        /// The stage.
        stage: String,
        /// The run.
        run: String,
        /// The token's `exp` (Unix seconds).
        exp: i64,
    },

    /// A local store root could not be resolved.
    #[error("cannot resolve store root {path}: {source}")]
    StoreRoot {
        /// The root folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A broken internal invariant (a bug, not bad input).
    #[error("internal error: {reason}")]
    Internal {
        /// Which invariant.
        reason: &'static str,
    },
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = format!("the policy has {} problem(s)", diagnostics.len());
    for d in diagnostics {
        let _ = write!(out, "\n{d}");
        if let Some(hint) = &d.hint {
            let _ = write!(out, "\n  = hint: {hint}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_spec::Location;

    #[test]
    fn invalid_lists_every_diagnostic_with_its_hint() {
        let err = Error::Invalid {
            diagnostics: vec![
                Diagnostic::error(Location::new("p.yaml", 3, 5), "bad").with_hint("fix"),
                Diagnostic::error(Location::new("q.yaml", 1, 1), "worse"),
            ],
            sources: BTreeMap::new(),
        };
        let text = err.to_string();
        assert!(text.contains("2 problem(s)"));
        assert!(text.contains("p.yaml:3:5: error: bad\n  = hint: fix"));
        assert!(text.contains("q.yaml:1:1: error: worse"));
    }
}
