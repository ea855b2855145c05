//! The dead-letter queue: nodes that failed for good, kept for inspection and retry.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use spane_core::ExecutionId;

use crate::error::QueueError;

/// Why a node is in the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// Its executor failed for good (attempts exhausted, or a non-retryable error).
    Failed,
    /// Its lease expired more often than allowed (the worker died or hung).
    Stalled,
}

/// A node that failed for good and failed its execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The workflow.
    pub workflow_id: String,
    /// The definition version the execution runs.
    pub workflow_version: u32,
    /// The node.
    pub node_id: String,
    /// Why it is here.
    pub reason: DeadLetterReason,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it failed for good, milliseconds since the Unix epoch.
    pub failed_at: i64,
}

/// Capability of a queue that keeps a dead-letter queue (see
/// [`ExecutionQueue::dead_letters`](crate::ExecutionQueue::dead_letters)).
///
/// Retrying revives the node with fresh attempts: the execution runs again (a `resumed`
/// event), nodes that would have started after the failure start too, and the execution can
/// still complete.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Items, oldest first, skipping `offset` and returning at most `limit`.
    async fn list_dead_letters(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, QueueError>;

    /// How many items there are.
    async fn count_dead_letters(&self) -> Result<usize, QueueError>;

    /// The items of one execution, oldest first (empty when it has none, or is unknown).
    ///
    /// The default pages through [`list_dead_letters`](Self::list_dead_letters); backends
    /// override it with a lookup by execution.
    async fn execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        const PAGE: usize = 500;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.list_dead_letters(offset, PAGE).await?;
            let len = page.len();
            out.extend(page.into_iter().filter(|d| d.execution_id == execution));
            if len < PAGE {
                return Ok(out);
            }
            offset += len;
        }
    }

    /// One item.
    async fn get_dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<Option<DeadLetter>, QueueError>;

    /// Retries one item. `false` when there is no such item.
    async fn retry_dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<bool, QueueError>;

    /// Retries every item of one execution; returns how many.
    async fn retry_execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<usize, QueueError>;

    /// Deletes every item (their executions stay failed); returns how many.
    async fn purge_dead_letters(&self) -> Result<usize, QueueError>;
}
