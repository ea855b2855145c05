//! Sub-workflow links: binding a child execution to a parent's node, and telling the parent
//! when the child ended, exactly once and without one step touching both executions.
//!
//! The protocol (the worker drives it; each step is atomic within one execution's keys, so
//! parent and child may live in different shards):
//!
//! 1. A worker claims a sub-workflow node and [binds](ChildExecutions::bind_child) a child id
//!    to the node's current run. A replayed or stalled claim gets the same id back, so it
//!    starts no second child; a retry after a failure (or a dead-letter retry) unbinds it.
//! 2. It starts the child under that id (a start of an existing id changes nothing) and
//!    commits [`NodeCommit::AwaitChild`](crate::backend::NodeCommit::AwaitChild): its lease is dropped,
//!    the node stays ready under its token and is not handed out again.
//! 3. When the child ends (completed, failed, cancelled, past its deadline), the step that ended
//!    it also records it as *ended* (an outbox in the child's shard).
//! 4. A resumer (the worker that ended the child at once, and every worker's periodic sweep)
//!    reads the child's record, asks [`awaiting_parent`](ChildExecutions::awaiting_parent) for
//!    the parent's node job (under the node's token), commits the node's outcome as an
//!    ordinary commit, then [forgets](ChildExecutions::forget_ended) the entry. A repeated
//!    resumption finds the node no longer awaiting that child (or its commit refused as
//!    stale), so the parent node is committed exactly once, whoever crashes where.

use std::time::Duration;

use async_trait::async_trait;
use spane_core::ExecutionId;

use crate::error::QueueError;
use crate::job::ClaimedJob;

/// Capability of a queue that runs sub-workflows (see
/// [`ExecutionQueue::sub_workflows`](crate::ExecutionQueue::sub_workflows) and the module's protocol).
#[async_trait]
pub trait ChildExecutions: Send + Sync {
    /// Binds a child execution to the current run of the claimed sub-workflow node `job`:
    /// returns the child bound already when there is one, `proposed` otherwise. `None` when the
    /// claim is stale (its lease was lost).
    async fn bind_child(
        &self,
        job: &ClaimedJob,
        proposed: ExecutionId,
    ) -> Result<Option<ExecutionId>, QueueError>;

    /// Children that ended at least `older_than` ago and whose parent node has not been
    /// resumed yet, oldest first, at most `max`.
    async fn ended_children(
        &self,
        older_than: Duration,
        max: usize,
    ) -> Result<Vec<ExecutionId>, QueueError>;

    /// The job of node `node_id` of `parent` to commit the end of `child` with, when that node
    /// still awaits `child` (ready, bound to it). `None` when it does not (it was resumed
    /// already, retried with a fresh child, or the parent is gone).
    async fn awaiting_parent(
        &self,
        parent: ExecutionId,
        node_id: &str,
        child: ExecutionId,
    ) -> Result<Option<ClaimedJob>, QueueError>;

    /// Forgets the ended child `child`: its parent was resumed, or no longer awaits it.
    async fn forget_ended(&self, child: ExecutionId) -> Result<(), QueueError>;

    /// The child executions that `parent` started, oldest first (retries started fresh
    /// children: all are listed).
    async fn children(&self, parent: ExecutionId) -> Result<Vec<ExecutionId>, QueueError>;
}
