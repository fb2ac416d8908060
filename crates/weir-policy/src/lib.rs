//! `weir-policy`: least-privilege grants for weir stages, and the guard
//! that enforces them on every object-store call.
//!
//! - [`PolicySet`] loads `policies/*.yaml` strictly (every problem at once,
//!   each with file, line, column and a hint), merges the files and binds
//!   store names to locations.
//! - [`PolicySet::evaluate`] answers one request: default deny, an explicit
//!   deny beats any allow, patterns match segment by segment.
//! - [`compile_stage`] is the plan-time check: a stage's declared inputs
//!   (read) and outputs (read, write, delete) become the exact
//!   [`Scope`](weir_auth::Scope) of its token, each action justified by a
//!   grant, or every gap comes back as a [`MissingGrant`] with a grant ready
//!   to paste.
//! - [`GuardedStore`] wraps an `ObjectStore` and lets through only what a
//!   verified stage token's scope allows, recording one [`AccessDecision`]
//!   per call with a [`DecisionSink`] first.
//!
//! ```
//! use std::path::Path;
//! use chrono::NaiveDate;
//! use weir_auth::{Action, ScopePath};
//! use weir_policy::{compile_stage, Decision, PolicySet};
//!
//! let policy = PolicySet::load_str("p.yaml", r#"
//! version: 1
//! stores: { lake: { url: ./data } }
//! principals: { svc-demo: { kind: service } }
//! grants:
//!   - id: demo-read-raw
//!     principal: svc-demo
//!     effect: allow
//!     actions: [read]
//!     resources: [{ store: lake, path: "raw/**" }]
//!   - id: demo-write-clean
//!     principal: svc-demo
//!     effect: allow
//!     actions: [read, write, delete]
//!     resources: [{ store: lake, path: "clean/**" }]
//! "#, Path::new("/srv/weir/policies")).unwrap();
//!
//! let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
//! let raw = ScopePath::parse("raw/events.csv").unwrap();
//! assert!(policy.evaluate("svc-demo", "lake", &raw, Action::Read, today).is_allowed());
//! assert_eq!(policy.evaluate("svc-demo", "lake", &raw, Action::Write, today), Decision::NoGrant);
//!
//! let pipeline = weir_spec::load_str("demo.yaml", r#"
//! name: demo
//! principal: svc-demo
//! stores: { lake: { url: ../policies/data } }
//! datasets:
//!   raw: { store: lake, path: raw/events.csv }
//!   clean: { store: lake, path: clean/events }
//! stages:
//!   - { name: clean, kind: sql, inputs: [raw], outputs: [clean], sql: SELECT * FROM raw }
//! "#, Path::new("/srv/weir/pipelines")).unwrap().pipeline;
//! let stage = pipeline.stage("clean").unwrap();
//! let compiled = compile_stage(&policy, &pipeline, stage, today).unwrap();
//! assert_eq!(compiled.scope().entries().len(), 2);
//! assert_eq!(compiled.grant_for("clean", Action::Delete), Some("demo-write-clean"));
//! ```
//!
//! # Guarantees
//!
//! - Default deny; an explicit deny grant in force beats any allow; an
//!   expired grant matches nothing.
//! - A compiled scope holds only what the stage declared, never the
//!   principal's whole grant set, and never an empty scope. An allow grant
//!   justifies a dataset only if it covers the dataset's path and
//!   everything below it; a deny grant matching the path or anything below
//!   it refuses the dataset.
//! - Every store a stage uses must resolve to the location the policy binds
//!   that name to, so a grant cannot be borrowed by a pipeline that calls
//!   another folder by the same name.
//! - Patterns and paths are segment-aware (`raw/train/**` never matches
//!   `raw/training`); `..`, empty segments and percent-escaped separators
//!   are refused at load time.
//! - The guard checks expiry and scope on every call, records exactly one
//!   decision per call and awaits the (asynchronous) sink before delegating
//!   (no record, no access), filters
//!   list results, checks both ends of copies and renames, and never holds
//!   or reports the token.
//! - No `unsafe`; untrusted input never panics.
//!
//! # Non-goals
//!
//! - Enforcing column rules (`columns: { allow | deny, mask }`): they are
//!   validated, combined across the justifying grants and the read grants
//!   on paths inside the dataset ([`columns`]) and carried into the scope;
//!   weir-engine's readers enforce them.
//! - Closing the race between the guard's symlink check and the wrapped
//!   store's own filesystem access (a concurrent local writer swapping in a
//!   symlink); the guard's check catches symlinks that exist when it runs.
//! - Roles: they are parsed for the server and not used in evaluation.
//! - S3 and other remote store bindings (local folders only, for now).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod access;
mod binding;
pub mod columns;
mod compile;
mod confinement;
mod decision;
mod document;
mod error;
mod gap;
mod gate;
mod grant;
mod guard;
mod pattern;
mod principal;
mod set;
mod upload;

pub use access::{
    AccessDecision, DecisionSink, InMemoryDecisionSink, Operation, SinkError, TracingDecisionSink,
};
pub use binding::{BoundLocation, StoreBinding, normalize};
pub use compile::{CompiledEntry, CompiledScope, compile_stage};
pub use decision::Decision;
pub use error::{Error, Result};
pub use gap::{DatasetRole, GapReason, MissingGrant};
pub use grant::{Effect, Grant, Resource};
pub use guard::{GuardedStore, PresignAction};
pub use pattern::PathPattern;
pub use principal::{Principal, PrincipalKind, Role};
pub use set::{PolicySet, PolicySource};
