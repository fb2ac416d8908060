//! `weir-testkit`: conformance suites that every object-store wrapper and
//! backend in weir must pass, as plain `async fn`s over `&dyn ObjectStore`
//! (or, for audit backends, over an [`audit::Harness`]).
//!
//! - [`transparency`]: object_store's own integration suite, run through a
//!   wrapper that was given an allow-all scope ([`fixture::allow_all_scope`]):
//!   the wrapper must be invisible.
//! - [`hostile`]: the policy suite. Every method denied without a grant;
//!   `raw/train` never covering `raw/training`; list results filtered;
//!   copy, rename and multipart checked at both ends; no secret in any
//!   error. One `pub async fn` per attack, so each caller test is named
//!   after its attack.
//! - [`escape`]: path escapes refused (`..`, `%2e%2e`, encoded `/`,
//!   backslashes, trailing dots, symlinks out of a local root).
//! - [`decisions`]: exactly one recorded decision per call.
//! - [`audit`]: the `AuditSink` suite (append-only, gapless, durable on
//!   return, tampering detected, no secrets stored, query filters), over a
//!   backend [`audit::Harness`] that can tamper with the storage.
//! - [`bench_data`]: the generated 10-million-row `events` Parquet file the
//!   SQL and data-contract benchmarks share.
//! - [`sql`]: the parameterized-SQL scan every crate that talks to a
//!   database runs over its own sources.
//!
//! The suites panic (like object_store's) on the first broken expectation.
//!
//! # Guarantees
//!
//! Each check asserts something a broken wrapper would fail: denials must
//! be `PermissionDenied`, not merely errors, and the raw store is inspected
//! to prove nothing changed behind a denial.
//!
//! # Non-goals
//!
//! Building the wrapper or backend under test: callers construct it (this
//! crate depends on neither `weir-policy` nor `weir-engine`), seeded with
//! [`fixture::seed`] and scoped with [`fixture::stage_scope`]; audit
//! backends come with their own [`audit::Harness`].

pub mod audit;
pub mod bench_data;
pub mod decisions;
pub mod escape;
pub mod fixture;
pub mod hostile;
pub mod queue;
pub mod sql;
pub mod transparency;
