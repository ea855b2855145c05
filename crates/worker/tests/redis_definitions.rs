//! A worker with a cold definition cache on Redis: a transient error while it loads the
//! definition is retried, never committed as a failure; a definition that is really missing
//! still fails the node with a clear error.
//!
//! The fault cannot be produced on demand against a real Redis, so the queue is the real
//! `RedisQueue` (`REDIS_URL` or 127.0.0.1:6379, its own key prefix per test) behind a wrapper
//! that fails or hides the definition loads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use spane_core::{
    ExecutionId, ExecutionRecord, ExecutionStatus, NodeDefinition, NodeOutput, NodeRegistry,
    NodeStatus, WorkflowDefinition, executor_fn,
};
use spane_queue::backend::{
    ClaimedJob, CommitOutcome, HistoryFeed, NodeCommit, PayloadStore, QueueCounters,
    StartExecution, WorkerId,
};
use spane_queue::{
    DeadLetterQueue, ExecutionControl, ExecutionQueue, QueueError, RedisConfig, RedisQueue,
    SharedLimits,
};
use spane_store::MemoryStore;
use spane_worker::{Definitions, NodeProcessor, WorkerConfig, WorkerManager};

const DEADLINE: Duration = Duration::from_secs(20);

/// What the wrapper does to definition loads.
#[derive(Debug)]
enum Fault {
    /// The first `n` loads fail as if Redis were unreachable.
    Unavailable(usize),
    /// Every load finds nothing (the definition is not in the backend).
    Missing,
}

/// The real Redis queue, with definition loads failing as `fault` says. It tells the test
/// how many loads were made and which status the commit that ended the execution reported,
/// so that the test waits on those events instead of polling.
#[derive(Debug)]
struct FaultyDefinitions {
    inner: RedisQueue,
    fault: Fault,
    loads: tokio::sync::watch::Sender<usize>,
    ended: tokio::sync::watch::Sender<Option<ExecutionStatus>>,
}

impl FaultyDefinitions {
    async fn new(test: &str, fault: Fault) -> Arc<Self> {
        Arc::new(Self {
            inner: redis_queue(test).await,
            fault,
            loads: tokio::sync::watch::Sender::new(0),
            ended: tokio::sync::watch::Sender::new(None),
        })
    }

    /// Definition loads so far.
    fn loads(&self) -> usize {
        *self.loads.borrow()
    }

    /// Records the end of the execution when a commit reports it.
    fn observe(&self, outcome: &CommitOutcome) {
        if let CommitOutcome::Applied {
            finished: Some(status),
        } = outcome
        {
            self.ended.send_replace(Some(*status));
        }
    }
}

#[async_trait]
impl ExecutionQueue for FaultyDefinitions {
    async fn start_execution(&self, start: StartExecution) -> Result<(), QueueError> {
        self.inner.start_execution(start).await
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        self.inner.claim(worker, max, wait).await
    }

    async fn renew(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        self.inner.renew(job).await
    }

    async fn commit(
        &self,
        job: &ClaimedJob,
        commit: NodeCommit,
    ) -> Result<CommitOutcome, QueueError> {
        let outcome = self.inner.commit(job, commit).await?;
        self.observe(&outcome);
        Ok(outcome)
    }

    async fn commit_and_claim(
        &self,
        worker: &WorkerId,
        job: &ClaimedJob,
        commit: NodeCommit,
        next: usize,
    ) -> Result<(CommitOutcome, Vec<ClaimedJob>), QueueError> {
        let (outcome, jobs) = self
            .inner
            .commit_and_claim(worker, job, commit, next)
            .await?;
        self.observe(&outcome);
        Ok((outcome, jobs))
    }

    async fn release(&self, job: &ClaimedJob) -> Result<(), QueueError> {
        self.inner.release(job).await
    }

    async fn execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, QueueError> {
        self.inner.execution(id).await
    }

    async fn execution_status(
        &self,
        id: ExecutionId,
    ) -> Result<Option<ExecutionStatus>, QueueError> {
        self.inner.execution_status(id).await
    }

    async fn results(&self, id: ExecutionId) -> Result<BTreeMap<String, Value>, QueueError> {
        self.inner.results(id).await
    }

    async fn definition(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Option<WorkflowDefinition>, QueueError> {
        let mut load = 0;
        self.loads.send_modify(|n| {
            load = *n;
            *n += 1;
        });
        match self.fault {
            Fault::Unavailable(n) if load < n => Err(QueueError::Unavailable {
                reason: format!("injected: Redis unreachable (definition load {})", load + 1),
                source: None,
            }),
            Fault::Unavailable(_) => self.inner.definition(workflow_id, version).await,
            Fault::Missing => Ok(None),
        }
    }

    fn counters(&self) -> Option<&dyn QueueCounters> {
        self.inner.counters()
    }

    fn payloads(&self) -> Option<&dyn PayloadStore> {
        self.inner.payloads()
    }

    fn history_feed(&self) -> Option<&dyn HistoryFeed> {
        self.inner.history_feed()
    }

    fn limits(&self) -> Option<&dyn SharedLimits> {
        self.inner.limits()
    }

    fn control(&self) -> Option<&dyn ExecutionControl> {
        self.inner.control()
    }

    fn dead_letters(&self) -> Option<&dyn DeadLetterQueue> {
        self.inner.dead_letters()
    }
}

async fn redis_queue(test: &str) -> RedisQueue {
    let url = std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!(
        "spane-defload-{test}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    RedisQueue::connect(RedisConfig::new(&url).prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is needed for this test: {e}"))
}

fn registry() -> Arc<NodeRegistry> {
    let mut r = NodeRegistry::new();
    r.register(
        "ok",
        executor_fn(|_ctx| async move { Ok(NodeOutput::new(json!("ok"))) }),
    );
    Arc::new(r)
}

/// Starts a two-node chain through `queue` (which stores its definition in Redis).
async fn start(queue: &FaultyDefinitions, registry: &NodeRegistry) -> ExecutionId {
    let workflow = WorkflowDefinition::new("cold-cache", "cold cache")
        .node(NodeDefinition::new("a", "ok"))
        .node(NodeDefinition::new("b", "ok"))
        .edge("a", "b");
    let compiled = Arc::new(workflow.compile(registry).expect("valid workflow"));
    let id = ExecutionId::new();
    queue
        .start_execution(StartExecution::new(id, compiled, 1, json!({})))
        .await
        .expect("execution started");
    id
}

/// One worker on `queue` whose definition cache is cold.
fn cold_worker(queue: Arc<FaultyDefinitions>, registry: Arc<NodeRegistry>) -> WorkerManager {
    let shared: Arc<dyn ExecutionQueue> = queue;
    let store = Arc::new(MemoryStore::new());
    // Nothing inserted: every definition comes from the queue (or the store).
    let definitions = Arc::new(Definitions::new(registry, store.clone(), shared.clone()));
    let processor =
        Arc::new(NodeProcessor::new(shared.clone(), store, definitions).with_write_through(false));
    WorkerManager::start(
        shared,
        processor,
        WorkerConfig::default()
            .concurrency(2)
            .claim_wait(Duration::from_millis(50)),
    )
}

/// Runs a two-node chain with one worker whose definition cache is cold; returns the record
/// once the execution ended.
async fn run_with_cold_cache(queue: Arc<FaultyDefinitions>) -> ExecutionRecord {
    let registry = registry();
    let id = start(&queue, &registry).await;
    let worker = cold_worker(queue.clone(), registry);

    let mut ended = queue.ended.subscribe();
    let status = tokio::time::timeout(DEADLINE, ended.wait_for(Option::is_some))
        .await
        .unwrap_or_else(|_| panic!("the execution did not end within {DEADLINE:?}"))
        .map(|ended| ended.expect("an end was observed"))
        .expect("the queue outlives the test");
    worker.shutdown(Duration::from_secs(5)).await;
    let record = queue
        .execution(id)
        .await
        .expect("record readable")
        .expect("execution known");
    assert_eq!(record.status, status);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_loading_the_definition_is_retried_not_committed_as_a_failure() {
    const FAILURES: usize = 3;
    let queue = FaultyDefinitions::new("transient", Fault::Unavailable(FAILURES)).await;
    let record = run_with_cold_cache(queue.clone()).await;
    assert_eq!(
        record.status,
        ExecutionStatus::Completed,
        "a transient definition load error must not fail the execution: {record:?}"
    );
    assert!(record.error.is_none(), "{record:?}");
    // Every failed load was retried, and the definition, once loaded, is cached.
    assert_eq!(queue.loads(), FAILURES + 1);
    let dead = queue
        .dead_letters()
        .expect("Redis keeps a dead-letter queue")
        .count_dead_letters()
        .await
        .expect("dead letters readable");
    assert_eq!(dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_definition_still_fails_the_node_with_a_clear_error() {
    let queue = FaultyDefinitions::new("missing", Fault::Missing).await;
    let record = run_with_cold_cache(queue.clone()).await;
    assert_eq!(record.status, ExecutionStatus::Failed, "{record:?}");
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("\"cold-cache\" version 1 not found"),
        "the error names the missing definition: {error:?}"
    );
    // Not retried: one load, and the node failed for good.
    assert_eq!(queue.loads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_back_a_job_whose_definition_cannot_be_loaded() {
    let queue = FaultyDefinitions::new("shutdown", Fault::Unavailable(usize::MAX)).await;
    let registry = registry();
    let id = start(&queue, &registry).await;
    let worker = cold_worker(queue.clone(), registry);

    // The worker has claimed the job and is retrying the load.
    let mut loads = queue.loads.subscribe();
    tokio::time::timeout(DEADLINE, loads.wait_for(|n| *n >= 2))
        .await
        .expect("the definition load was retried")
        .expect("the queue outlives the test");
    let report = worker.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.released, 1, "{report:?}");

    // Nothing was committed: the execution still runs and its first node is claimable again.
    let record = queue
        .execution(id)
        .await
        .expect("record readable")
        .expect("execution known");
    assert_eq!(record.status, ExecutionStatus::Running, "{record:?}");
    let a = record.node_results.get("a").map(|r| r.status);
    assert_eq!(a, Some(NodeStatus::Pending), "{record:?}");
    let again = queue
        .inner
        .claim(&WorkerId::new(), 1, Duration::from_secs(1))
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "the job was given back");
    assert_eq!(again[0].node_id, "a");
}
