//! Shared test support.

pub(crate) mod conformance;
