//! weir-engine: runs validated pipelines.
//!
//! It schedules a pipeline's stage DAG ([`scheduler`]), runs each stage's
//! operator (SQL through DataFusion, [`sql`]; programs such as ML training
//! jobs as `command` stages, in a private folder with an empty environment),
//! and commits outputs atomically
//! ([`dataset`]). Run records persist in the state directory, or in a
//! PostgreSQL database every machine shares ([`record`], [`database`]).
//!
//! # Guarantees
//! - Independent stages run concurrently up to the pipeline's `concurrency`;
//!   a failed stage skips its dependents while unrelated branches finish.
//! - Outputs appear atomically: readers see the previous version or the new
//!   one, never a partial or mixed dataset. A failed, timed-out or cancelled
//!   attempt removes what it staged.
//! - Least privilege: before anything runs, every stage's declared inputs and
//!   outputs are checked against the principal's grants ([`security`]). Each
//!   attempt gets a short-lived token for exactly that scope, and the stage
//!   reaches data only through guarded stores bound to the verified token:
//!   its DataFusion runtime's registry holds nothing else, and DDL, DML and
//!   `COPY` are refused.
//!
//! # Non-goals
//! Parsing pipeline files (weir-spec); grant evaluation and the guard itself
//! (weir-policy); tokens and keys (weir-auth).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
pub mod audit_query;
mod checks;
pub mod columns;
mod command;
pub mod database;
mod datafile;
pub mod dataset;
pub mod distributed;
mod engine;
mod error;
mod executor;
mod mask_key;
mod presign;
pub mod record;
pub mod registry;
pub mod review;
pub mod scheduler;
pub mod security;
pub mod split;
pub mod sql;
mod store;
pub mod udf;

pub use audit::Audit;
pub use database::Database;
pub use distributed::broker::Broker;
pub use engine::{Engine, EngineConfig, RunEvent, StageOutput};
pub use error::{Error, Result, humantime};
pub use security::Security;
pub use store::StoreSet;
/// The work queue and coordination primitives ([`weir_queue`]).
pub use weir_queue as queue;
