//! The queue trait.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, WorkflowDefinition};

use crate::children::ChildExecutions;
use crate::control::ExecutionControl;
use crate::dlq::DeadLetterQueue;
use crate::error::QueueError;
use crate::history::HistoryFeed;
use crate::idempotency::IdempotencyKeys;
use crate::inspect::ExecutionInspection;
use crate::job::{ClaimedJob, CommitOutcome, NodeCommit, StartExecution, WorkerId};
use crate::limits::SharedLimits;
use crate::payload::PayloadStore;
use crate::workers::WorkerRegistry;

/// Counters of one queue client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Requests this client sent to a remote backend (0 for in-process backends).
    pub round_trips: u64,
}

/// Counters of a backend server since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Commands the server ran, including those run inside scripts (Redis `INFO commandstats`).
    pub commands: u64,
    /// CPU time the server used, user plus system, in microseconds (Redis `INFO cpu`).
    pub cpu_micros: u64,
}

/// Counters of a queue backend, for measurements (benchmarks, `GET /queue/stats`): reached
/// through [`ExecutionQueue::counters`].
#[async_trait]
pub trait QueueCounters: Send + Sync {
    /// Counters of this queue client.
    fn stats(&self) -> QueueStats;

    /// Counters of the backend server (all clients since it started).
    async fn server_stats(&self) -> Result<ServerStats, QueueError>;
}

/// The coordination backend: it holds the hot state of running executions, hands node jobs to
/// workers under a lease, and applies each node's outcome in one atomic commit (store the result,
/// update joins and skips, enqueue the children that became ready, decide completion, emit the
/// events).
///
/// Execution is at-least-once; state transitions are exactly-once: a commit with a stale token
/// is refused, and a node becomes ready exactly once.
#[async_trait]
pub trait ExecutionQueue: Send + Sync + fmt::Debug + 'static {
    /// Creates an execution and makes its roots ready. Fails with
    /// [`QueueError::DuplicateExecution`] when an execution with its id exists, unless both
    /// were started with the same [`StartExecution::idempotency_key`] (then nothing changes
    /// and the call succeeds).
    async fn start_execution(&self, start: StartExecution) -> Result<(), QueueError>;

    /// Claims up to `max` ready jobs for `worker`, waiting up to `wait` when none is ready.
    /// Returns an empty list when the wait ends with nothing to do.
    async fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedJob>, QueueError>;

    /// Ends every claim wait of this queue client now: each [`claim`](Self::claim) in
    /// progress returns what it has (usually nothing) instead of waiting out its `wait`; a
    /// claim that starts later waits as usual. Worker managers call it when they stop, so
    /// that an idle worker stops at once however long its claim wait, and no claim is dropped
    /// half-way (which could leave a claimed job to its lease expiry). The default does
    /// nothing: claims then end at their `wait`.
    fn interrupt_claims(&self) {}

    /// Extends the lease of a claimed job. `false`: the lease was lost.
    async fn renew(&self, job: &ClaimedJob) -> Result<bool, QueueError>;

    /// Applies the outcome of an attempt atomically.
    async fn commit(
        &self,
        job: &ClaimedJob,
        commit: NodeCommit,
    ) -> Result<CommitOutcome, QueueError>;

    /// Applies the outcome of an attempt and, in the same step, claims up to `next` more ready
    /// jobs for `worker` without waiting (BullMQ's "fetch next on finish"): a worker that
    /// keeps busy needs one call per node instead of two. Backends that cannot combine the two
    /// commit only and return no jobs (the default); the worker then claims as usual.
    async fn commit_and_claim(
        &self,
        worker: &WorkerId,
        job: &ClaimedJob,
        commit: NodeCommit,
        next: usize,
    ) -> Result<(CommitOutcome, Vec<ClaimedJob>), QueueError> {
        let _ = (worker, next);
        Ok((self.commit(job, commit).await?, Vec::new()))
    }

    /// Gives a claimed job back without running it (graceful shutdown), so another worker
    /// takes it at once. The attempt is not counted.
    async fn release(&self, job: &ClaimedJob) -> Result<(), QueueError>;

    /// The execution as the backend sees it now, while it holds it.
    async fn execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, QueueError>;

    /// The status of `id` while the backend holds it: a cheap check for waiters, which read the
    /// whole record only once it ended.
    async fn execution_status(
        &self,
        id: ExecutionId,
    ) -> Result<Option<ExecutionStatus>, QueueError> {
        Ok(self.execution(id).await?.map(|r| r.status))
    }

    /// Outputs of every node of `id` that has one so far.
    async fn results(&self, id: ExecutionId) -> Result<BTreeMap<String, Value>, QueueError>;

    /// The definition that executions of `workflow_id` at `version` run, when this backend
    /// holds it (so that worker processes that never registered the workflow can run it).
    async fn definition(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Option<WorkflowDefinition>, QueueError>;

    /// Counters for measurements (round trips, server CPU), when this backend keeps them.
    fn counters(&self) -> Option<&dyn QueueCounters> {
        None
    }

    /// Where large payloads are kept aside (claim check), when this backend offers it.
    fn payloads(&self) -> Option<&dyn PayloadStore> {
        None
    }

    /// The feed a write-behind history writer reads, when this backend offers one.
    fn history_feed(&self) -> Option<&dyn HistoryFeed> {
        None
    }

    /// Circuit breakers and rate limits shared by this backend's workers, when it offers them.
    fn limits(&self) -> Option<&dyn SharedLimits> {
        None
    }

    /// Pause, resume and cancel, when this backend offers them.
    fn control(&self) -> Option<&dyn ExecutionControl> {
        None
    }

    /// Sub-workflow links (binding children, resuming parents), when this backend runs
    /// sub-workflows.
    fn sub_workflows(&self) -> Option<&dyn ChildExecutions> {
        None
    }

    /// The dead-letter queue, when this backend keeps one.
    fn dead_letters(&self) -> Option<&dyn DeadLetterQueue> {
        None
    }

    /// Snapshots of executions' real state ("why is it stuck?"), when this backend offers
    /// them.
    fn inspection(&self) -> Option<&dyn ExecutionInspection> {
        None
    }

    /// The worker heartbeat registry, when this backend keeps one.
    fn workers(&self) -> Option<&dyn WorkerRegistry> {
        None
    }

    /// Idempotency keys of execution starts, when this backend keeps them.
    fn idempotency_keys(&self) -> Option<&dyn IdempotencyKeys> {
        None
    }
}
