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
//!   commit are one server-side script each (Lua in `lua/*.lua`). It connects through
//!   [`RedisEndpoint`] (re-exported from `spane-redis`): `redis://` or, with the `tls-rustls`
//!   feature, `rediss://` with TLS.
//!
//! Capabilities beyond the core trait are reached through accessors on it: pause/resume/cancel
//! ([`ExecutionControl`]), the dead-letter queue ([`DeadLetterQueue`]), sub-workflow links
//! ([`ChildExecutions`]), shared limits, payloads, the history feed, inspection for
//! "why is it stuck?" ([`ExecutionInspection`]), the worker heartbeat registry
//! ([`WorkerRegistry`]) and idempotency keys of execution starts ([`IdempotencyKeys`]).
//!
//! What only backend implementers and the worker runtime use (claimed jobs, commits, fencing
//! tokens, leases, counters) lives in [`backend`].
//!
//! ## Feature flags
//!
//! - `tls-rustls` (off by default) — `rediss://` URLs: TLS to Redis with rustls (see
//!   `spane-redis`).

pub mod backend;
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
#[cfg(feature = "redis")]
mod redis;
mod workers;

pub use children::ChildExecutions;
pub use control::{CancelStream, ExecutionControl};
pub use dlq::{DeadLetter, DeadLetterQueue, DeadLetterReason};
pub use error::QueueError;
pub use idempotency::IdempotencyKeys;
pub use inspect::{ExecutionInspection, Inspected};
pub use limits::{BreakerInfo, SharedLimits};
pub use memory::{MemoryQueue, MemoryQueueConfig};
pub use queue::ExecutionQueue;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisQueue, StoredDefinition};
#[cfg(feature = "redis")]
pub use spane_redis::{ConnectError, RedisEndpoint};
pub use workers::{RunningJob, WorkerBeat, WorkerRegistry};
