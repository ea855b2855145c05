//! # spane-queue
//!
//! The coordination backend of SPANE: the [`ExecutionQueue`] trait and its implementations.
//!
//! A queue holds the hot state of running executions. Workers [`claim`](ExecutionQueue::claim)
//! node jobs (with their inputs, in one call) under a lease, run them, and
//! [`commit`](ExecutionQueue::commit) the outcome; the commit applies the semantics of
//! [`spane_core::ExecutionState`] atomically and emits the events of the transition.
//!
//! - [`MemoryQueue`] — in-process, no services: the embedded default.
//! - The Redis backend (many worker processes sharing one Redis, one server-side script per
//!   commit) comes next and implements the same trait.

mod error;
mod job;
mod memory;
mod queue;

pub use error::QueueError;
pub use job::{ClaimedJob, CommitOutcome, NodeCommit, StartExecution, WorkerId};
pub use memory::{MemoryQueue, MemoryQueueConfig};
pub use queue::ExecutionQueue;
