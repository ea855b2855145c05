//! The history feed: which executions changed, for a writer that copies them to a store off the
//! hot path (write-behind).

use std::time::Duration;

use async_trait::async_trait;
use spane_core::ExecutionId;

use crate::error::QueueError;

/// Executions touched by a batch of transitions, and the ids to acknowledge once they are
/// written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryBatch {
    /// Acknowledge these after writing (opaque to the caller).
    pub entries: Vec<String>,
    /// Executions whose state changed, without repeats.
    pub executions: Vec<ExecutionId>,
}

/// Capability of a queue whose transitions can be copied to a store by any number of writers
/// sharing the work (see [`ExecutionQueue::history_feed`](crate::ExecutionQueue::history_feed)).
/// Delivery is at-least-once: a batch that is not acknowledged (its writer died) is handed to
/// another writer once it has been pending for `reclaim_idle`.
#[async_trait]
pub trait HistoryFeed: Send + Sync {
    /// The next batch for `consumer`; a backend may wait up to `block` when there is none, or
    /// return an empty batch at once (the caller then waits before asking again). Entries
    /// another writer left unacknowledged for `reclaim_idle` come first.
    async fn history_batch(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
        reclaim_idle: Duration,
    ) -> Result<HistoryBatch, QueueError>;

    /// Marks a batch as written.
    async fn history_ack(&self, entries: &[String]) -> Result<(), QueueError>;
}
