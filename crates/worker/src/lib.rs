//! # spane-worker
//!
//! The worker runtime of SPANE, the same for every backend:
//!
//! - [`NodeProcessor`] — one claimed node job end to end: pinned definition, context, executor
//!   (panics caught, optional timeout, lease renewed while it runs), commit, history.
//! - [`WorkerManager`] — claims jobs in batches up to the concurrency limit; graceful shutdown
//!   drains in-flight jobs within a deadline and gives the rest back to the queue.
//! - [`Definitions`] — compiled definitions by (workflow, version), cached forever because a
//!   version never changes.
//! - [`decide`] — retry, backoff and `continueOnFail` rules as a pure function.
//! - [`metrics`] — the names of the metrics the runtime records through the `metrics` facade.
//!
//! Before an executor runs, the processor waits for the global and per-type rate limits and
//! asks the circuit breaker of external node types (both shared through the queue backend);
//! executors of CPU-heavy node types run on a separate pool.

mod definitions;
mod error;
mod gate;
mod history;
mod manager;
pub mod metrics;
mod outcome;
mod processor;
mod starter;
mod subworkflow;

pub use definitions::Definitions;
pub use error::WorkerError;
pub use history::{HISTORY_LAG, HISTORY_PENDING, HISTORY_WRITTEN, HistoryConfig, HistoryWriter};
pub use manager::{HEARTBEAT_EVERY, ShutdownReport, WorkerConfig, WorkerManager};
pub use outcome::decide;
pub use processor::NodeProcessor;
pub use starter::ExecutionStarter;
