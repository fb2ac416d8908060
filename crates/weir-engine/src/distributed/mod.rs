//! Running stages on many machines: signed task envelopes over a work
//! queue (Redis Streams, or in process), workers, fenced commits, leases.
//!
//! The life of a distributed stage attempt:
//! 1. the dispatcher advances the stage's fence to a fresh attempt number,
//!    mints a stage token for exactly the stage's scope, seals the task in
//!    an HMAC envelope and enqueues it ([`dispatcher`]);
//! 2. a worker verifies the envelope's raw bytes (MAC, type, time window,
//!    fresh nonce) before decoding anything, verifies the token with the
//!    public keys, runs the stage through guarded stores bound to it and
//!    commits only while its attempt is the newest ([`worker`]);
//! 3. the worker seals the result and sends it to the run's reply queue.
//!
//! Every run also holds a lease on each output dataset ([`lease`]), so two
//! runs never write the same dataset at once.

mod ack_batch;
pub mod broker;
pub mod dispatcher;
pub mod lease;
pub mod protocol;
mod token_batch;
pub mod worker;

pub(crate) use broker::Broker;
pub use broker::{InProcessBroker, RedisBroker};
pub use dispatcher::Envelopes;
pub(crate) use dispatcher::{RemoteRun, RemoteRunner};
pub use lease::OutputLeases;
pub use worker::{PipelineOperator, StageOperator, Worker, WorkerConfig};
