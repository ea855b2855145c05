//! The worker heartbeat registry: which workers are alive, which node types they run, and
//! which jobs they hold.
//!
//! Every worker manager sends a [`WorkerBeat`] every [`WorkerBeat::every_ms`] (2 s by
//! default): one small write, off the node path (on Redis one script call: a sorted set of
//! worker ids by last beat and one hash field per worker). A worker counts as alive while its
//! last beat is younger than three intervals plus a second; a manager that shuts down
//! forgets itself, and beats older than an hour are dropped by the next beat of any worker.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use spane_core::ExecutionId;

use crate::error::QueueError;

/// Beats older than this are dropped from the registry (ms).
pub const FORGET_AFTER_MS: i64 = 3_600_000;

/// One job a worker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunningJob {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The node.
    pub node_id: String,
    /// The claim's fencing token.
    pub token: u64,
    /// When the worker got it (ms since the epoch).
    pub since: i64,
}

impl RunningJob {
    /// A job held since `since`.
    pub fn new(
        execution_id: ExecutionId,
        node_id: impl Into<String>,
        token: u64,
        since: i64,
    ) -> Self {
        Self {
            execution_id,
            node_id: node_id.into(),
            token,
            since,
        }
    }
}

/// What a worker reports in each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WorkerBeat {
    /// The worker incarnation.
    pub worker: String,
    /// When it started (ms since the epoch).
    pub started_at: i64,
    /// Its heartbeat interval (ms).
    pub every_ms: u64,
    /// The node types it has executors for (built-ins excluded: every worker runs them).
    pub types: Vec<String>,
    /// The jobs it holds.
    pub jobs: Vec<RunningJob>,
    /// When the registry received the beat (ms since the epoch, the backend's clock); set by
    /// the backend.
    #[serde(default)]
    pub seen_at: i64,
}

impl WorkerBeat {
    /// A beat of `worker`.
    pub fn new(
        worker: impl Into<String>,
        started_at: i64,
        every_ms: u64,
        types: Vec<String>,
    ) -> Self {
        Self {
            worker: worker.into(),
            started_at,
            every_ms,
            types,
            jobs: Vec::new(),
            seen_at: 0,
        }
    }

    /// With the jobs it holds.
    pub fn with_jobs(mut self, jobs: Vec<RunningJob>) -> Self {
        self.jobs = jobs;
        self
    }

    /// Whether the worker counts as alive at `now`: its last beat is younger than three
    /// intervals plus a second.
    pub fn alive_at(&self, now: i64) -> bool {
        now - self.seen_at <= 3 * self.every_ms as i64 + 1000
    }
}

/// Capability of a queue that keeps the worker heartbeat registry (see
/// [`ExecutionQueue::workers`](crate::ExecutionQueue::workers)).
#[async_trait]
pub trait WorkerRegistry: Send + Sync {
    /// Records a beat (the backend sets [`WorkerBeat::seen_at`]).
    async fn heartbeat(&self, beat: &WorkerBeat) -> Result<(), QueueError>;

    /// Every worker with a beat in the last hour, most recent first.
    async fn workers(&self) -> Result<Vec<WorkerBeat>, QueueError>;

    /// Forgets a worker (it shut down).
    async fn forget_worker(&self, worker: &str) -> Result<(), QueueError>;
}
