//! For backend implementers and the worker runtime: what flows between a queue and its
//! workers, and the optional capabilities a backend offers beyond the user-facing ones.
//!
//! An application that builds an engine from [`MemoryQueue`](crate::MemoryQueue) or
//! `RedisQueue` never names these types; they matter to whoever writes a new
//! [`ExecutionQueue`](crate::ExecutionQueue) backend, or a runtime that drives one (the
//! `spane-worker` crate). They may change between minor versions more freely than the
//! crate root.
//!
//! - Jobs: [`StartExecution`] (what a new execution starts with), [`ClaimedJob`] (a node job
//!   held under a lease and fencing token), [`NodeCommit`] (how its attempt ended),
//!   [`CommitOutcome`] (applied or stale), [`WorkerId`].
//! - Capabilities: [`HistoryFeed`] (the write-behind history writer's input),
//!   [`PayloadStore`] (large payloads kept aside), [`QueueCounters`] (measurement counters).

pub use crate::history::{HistoryBatch, HistoryEntry, HistoryFeed};
pub use crate::job::{ClaimedJob, CommitOutcome, NodeCommit, RerunStart, StartExecution, WorkerId};
pub use crate::payload::{
    PAYLOAD_REF, PayloadStore, as_payload_ref, payload_ref, resolve_payloads, resolve_record,
};
pub use crate::queue::{QueueCounters, QueueStats, ServerStats};
pub use crate::workers::FORGET_AFTER_MS;
