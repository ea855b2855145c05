//! The history feed: which executions changed, for a writer that copies them to a store off the
//! hot path (write-behind).

use std::time::Duration;

use async_trait::async_trait;
use spane_core::ExecutionId;

use crate::error::QueueError;

/// One transition of the feed: the executions it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// Acknowledge this after writing its executions (opaque to the caller).
    pub id: String,
    /// When it was appended, in ms since the Unix epoch, when the backend knows.
    pub appended_ms: Option<u64>,
    /// The executions it changed.
    pub executions: Vec<ExecutionId>,
    /// Of these, the ones it brought to rest: completed, failed, cancelled or paused. Their
    /// state will not change until someone acts on them, so a writer copies them at once; a
    /// running execution's copy can wait for more of its transitions.
    pub settled: Vec<ExecutionId>,
}

impl HistoryEntry {
    /// An entry `id` that changed `executions`.
    pub fn new(id: impl Into<String>, executions: Vec<ExecutionId>) -> Self {
        Self {
            id: id.into(),
            executions,
            ..Self::default()
        }
    }
}

/// A batch of transitions read from the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryBatch {
    /// The transitions, oldest first.
    pub entries: Vec<HistoryEntry>,
}

impl HistoryBatch {
    /// The executions the batch changed, each once, in the order they first appear.
    pub fn executions(&self) -> Vec<ExecutionId> {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .flat_map(|e| e.executions.iter().copied())
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// The ids to acknowledge once every execution is written.
    pub fn entry_ids(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.id.clone()).collect()
    }
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
