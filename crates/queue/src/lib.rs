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
//! - [`RedisQueue`] — Redis 7: any number of worker processes share one Redis; claim and
//!   commit are one server-side script each (Lua in `lua/*.lua`).
//!
//! Capabilities beyond the core trait are reached through accessors on it: pause/resume/cancel
//! ([`ExecutionControl`]), the dead-letter queue ([`DeadLetterQueue`]), sub-workflow links
//! ([`ChildExecutions`]), shared limits, payloads, the history feed, inspection for
//! "why is it stuck?" ([`ExecutionInspection`]), the worker heartbeat registry
//! ([`WorkerRegistry`]) and idempotency keys of execution starts ([`IdempotencyKeys`]).

mod children;
mod control;
mod dlq;
mod error;
mod history;
mod idempotency;
mod inspect;
mod job;
mod limits;
mod memory;
mod payload;
mod queue;
mod redis;
mod workers;

pub use children::ChildExecutions;
pub use control::{CancelStream, ExecutionControl};
pub use dlq::{DeadLetter, DeadLetterQueue, DeadLetterReason};
pub use error::QueueError;
pub use history::{HistoryBatch, HistoryFeed};
pub use idempotency::IdempotencyKeys;
pub use inspect::{ExecutionInspection, Inspected};
pub use job::{ClaimedJob, CommitOutcome, NodeCommit, RerunStart, StartExecution, WorkerId};
pub use limits::{BreakerInfo, SharedLimits};
pub use memory::{MemoryQueue, MemoryQueueConfig};
pub use payload::{
    PAYLOAD_REF, PayloadStore, as_payload_ref, payload_ref, resolve_payloads, resolve_record,
};
pub use queue::{ExecutionQueue, QueueStats, ServerStats};
pub use redis::{RedisConfig, RedisQueue, StoredDefinition};
pub use workers::{FORGET_AFTER_MS, RunningJob, WorkerBeat, WorkerRegistry};
