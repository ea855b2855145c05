//! Helpers shared by the scenarios: every call to the queue is bounded by a deadline, and every
//! expectation fails with a message naming what was expected.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spane_core::{
    AnyNodeType, CompiledWorkflow, ExecutionId, ExecutionRecord, ExecutionStatus, NodeDefinition,
    NodeStatus, WorkflowDefinition,
};
use spane_queue::ExecutionQueue;
use spane_queue::backend::{ClaimedJob, CommitOutcome, NodeCommit, StartExecution, WorkerId};
use tokio::time::Instant;

use crate::QueueFactory;

/// How long any one expectation may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
/// The `wait` of one claim call while polling for a job.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// The `wait` of a claim that is expected to return nothing.
pub(crate) const IDLE: Duration = Duration::from_millis(50);
/// A lease long enough never to expire during a test.
pub(crate) const LONG_LEASE: Duration = Duration::from_secs(60);
/// The node type of every test node (compiled with [`AnyNodeType`]).
pub(crate) const NODE_TYPE: &str = "test";

/// Awaits `fut`, failing the test when it takes longer than [`DEADLINE`].
pub(crate) async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {DEADLINE:?}"),
    }
}

/// A workflow of `test` nodes with the given edges.
pub(crate) fn workflow(id: &str, nodes: &[&str], edges: &[(&str, &str)]) -> Arc<CompiledWorkflow> {
    let mut def = WorkflowDefinition::new(id, id);
    for node in nodes {
        def = def.node(NodeDefinition::new(*node, NODE_TYPE));
    }
    compile(edges.iter().fold(def, |def, (a, b)| def.edge(a, b)))
}

/// Compiles `def`, which the scenario built to be valid.
pub(crate) fn compile(def: WorkflowDefinition) -> Arc<CompiledWorkflow> {
    match def.compile(&AnyNodeType) {
        Ok(compiled) => Arc::new(compiled),
        Err(errors) => panic!("test workflow does not compile: {errors}"),
    }
}

/// A top-level execution of `workflow` (version 1) with `data`.
pub(crate) fn start_of(workflow: &Arc<CompiledWorkflow>, data: Value) -> StartExecution {
    StartExecution::new(ExecutionId::new(), Arc::clone(workflow), 1, data)
}

/// The node ids of `jobs`, for messages.
pub(crate) fn ids(jobs: &[ClaimedJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.node_id.as_str()).collect()
}

/// The status of `node` in `record`, if the record lists it.
pub(crate) fn status_of(record: &ExecutionRecord, node: &str) -> Option<NodeStatus> {
    record.node_results.get(node).map(|r| r.status)
}

/// A queue under test with one worker id.
#[derive(Clone)]
pub(crate) struct Harness {
    pub(crate) queue: Arc<dyn ExecutionQueue>,
    pub(crate) worker: WorkerId,
}

impl Harness {
    /// A fresh queue from `factory` with claims valid for `lease`.
    pub(crate) async fn new(factory: &dyn QueueFactory, lease: Duration) -> Self {
        Self {
            queue: bounded("QueueFactory::queue", factory.queue(lease)).await,
            worker: WorkerId::new(),
        }
    }

    /// The same queue seen by another worker.
    pub(crate) fn other_worker(&self) -> Self {
        Self {
            queue: Arc::clone(&self.queue),
            worker: WorkerId::new(),
        }
    }

    /// Starts `start`, which must succeed, and returns its id.
    pub(crate) async fn start_execution(&self, start: StartExecution) -> ExecutionId {
        let id = start.execution_id;
        bounded("start_execution", self.queue.start_execution(start))
            .await
            .unwrap_or_else(|e| panic!("start_execution of {id} failed: {e}"));
        id
    }

    /// Starts a top-level execution of `workflow` with `data`.
    pub(crate) async fn start(&self, workflow: &Arc<CompiledWorkflow>, data: Value) -> ExecutionId {
        self.start_execution(start_of(workflow, data)).await
    }

    /// One claim call.
    pub(crate) async fn claim(&self, max: usize, wait: Duration) -> Vec<ClaimedJob> {
        bounded("claim", self.queue.claim(&self.worker, max, wait))
            .await
            .unwrap_or_else(|e| panic!("claim failed: {e}"))
    }

    /// Polls until exactly `n` jobs were claimed (at most `per_call` per claim call), failing
    /// on more jobs than `n` or at the deadline.
    pub(crate) async fn claim_exactly(&self, n: usize, per_call: usize) -> Vec<ClaimedJob> {
        let deadline = Instant::now() + DEADLINE;
        let mut jobs: Vec<ClaimedJob> = Vec::new();
        while jobs.len() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} claimable jobs within {DEADLINE:?}, got {} ({:?})",
                jobs.len(),
                ids(&jobs)
            );
            let max = per_call.min(n - jobs.len());
            let got = self.claim(max, POLL).await;
            assert!(
                got.len() <= max,
                "claim(max = {max}) returned {} jobs: {:?}",
                got.len(),
                ids(&got)
            );
            jobs.extend(got);
        }
        jobs
    }

    /// Polls until one job is claimed and checks that it is `node` of `execution`.
    pub(crate) async fn claim_node(&self, execution: ExecutionId, node: &str) -> ClaimedJob {
        let mut jobs = self.claim_exactly(1, 1).await;
        let job = jobs.remove(0);
        assert_eq!(
            (job.execution_id, job.node_id.as_str()),
            (execution, node),
            "claimed the wrong job"
        );
        job
    }

    /// Claims with a short wait and fails if anything is handed out.
    pub(crate) async fn assert_idle(&self, why: &str) {
        let jobs = self.claim(16, IDLE).await;
        assert!(
            jobs.is_empty(),
            "{why}, but claim handed out {:?}",
            jobs.iter()
                .map(|j| format!("{}/{}", j.execution_id, j.node_id))
                .collect::<Vec<_>>()
        );
    }

    /// One commit call.
    pub(crate) async fn commit(&self, job: &ClaimedJob, commit: NodeCommit) -> CommitOutcome {
        bounded("commit", self.queue.commit(job, commit))
            .await
            .unwrap_or_else(|e| panic!("commit of {} failed: {e}", job.node_id))
    }

    /// Commits and expects the commit to apply; returns the execution's final status when the
    /// commit decided it.
    pub(crate) async fn applied(
        &self,
        job: &ClaimedJob,
        commit: NodeCommit,
    ) -> Option<ExecutionStatus> {
        match self.commit(job, commit.clone()).await {
            CommitOutcome::Applied { finished } => finished,
            other => panic!(
                "commit {commit:?} of {} (attempt {}, token {}) should apply, got {other:?}",
                job.node_id, job.attempt, job.token
            ),
        }
    }

    /// Commits and expects the commit to be refused as stale.
    pub(crate) async fn assert_stale(&self, job: &ClaimedJob, commit: NodeCommit, why: &str) {
        let outcome = self.commit(job, commit).await;
        assert_eq!(outcome, CommitOutcome::Stale, "{why}");
    }

    /// Completes `job` with `data` (all children), expecting the commit to apply.
    pub(crate) async fn complete(&self, job: &ClaimedJob, data: Value) -> Option<ExecutionStatus> {
        self.applied(
            job,
            NodeCommit::Completed {
                data,
                next_nodes: None,
            },
        )
        .await
    }

    /// The execution's status as `execution_status` reports it.
    pub(crate) async fn status(&self, id: ExecutionId) -> Option<ExecutionStatus> {
        bounded("execution_status", self.queue.execution_status(id))
            .await
            .unwrap_or_else(|e| panic!("execution_status failed: {e}"))
    }

    /// One renew call.
    pub(crate) async fn renew(&self, job: &ClaimedJob) -> bool {
        bounded("renew", self.queue.renew(job))
            .await
            .unwrap_or_else(|e| panic!("renew of {} failed: {e}", job.node_id))
    }

    /// One release call.
    pub(crate) async fn release(&self, job: &ClaimedJob) {
        bounded("release", self.queue.release(job))
            .await
            .unwrap_or_else(|e| panic!("release of {} failed: {e}", job.node_id));
    }

    /// The record of `id`, which must exist.
    pub(crate) async fn record(&self, id: ExecutionId) -> ExecutionRecord {
        bounded("execution", self.queue.execution(id))
            .await
            .unwrap_or_else(|e| panic!("execution({id}) failed: {e}"))
            .unwrap_or_else(|| panic!("execution({id}) returned None for a known execution"))
    }

    /// The node ids of `record` that have the status `status`.
    pub(crate) fn nodes_with(record: &ExecutionRecord, status: NodeStatus) -> BTreeSet<String> {
        record
            .node_results
            .values()
            .filter(|r| r.status == status)
            .map(|r| r.node_id.clone())
            .collect()
    }
}
