//! The node processor: one claimed job, end to end, as a short pipeline of named steps.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use spane_core::{
    CompiledNode, CompiledWorkflow, ExecutionContext, ExecutionId, NodeError, NodeOutput,
    NodeResult, NodeStatus, RateLimit, ResultsSource, now_millis,
};
use spane_queue::backend::{
    ClaimedJob, CommitOutcome, NodeCommit, WorkerId, payload_ref, resolve_payloads,
};
use spane_queue::{ExecutionQueue, QueueError};
use spane_store::{ExecutionStore, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::definitions::Definitions;
use crate::error::WorkerError;
use crate::gate::Gate;
use crate::metrics;
use crate::outcome::decide;
use crate::starter::ExecutionStarter;

/// Runs claimed node jobs: resolve the pinned definition, build the context, run the executor
/// (panics caught, timeout applied, lease renewed meanwhile), commit the outcome, record history.
pub struct NodeProcessor {
    pub(crate) queue: Arc<dyn ExecutionQueue>,
    pub(crate) store: Arc<dyn ExecutionStore>,
    pub(crate) definitions: Arc<Definitions>,
    pub(crate) starter: ExecutionStarter,
    gate: Gate,
    cpu_pool: Option<tokio::runtime::Handle>,
    write_through: bool,
    payload_threshold: Option<usize>,
}

impl fmt::Debug for NodeProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeProcessor")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Reads all results of an execution from the queue, for [`ExecutionContext::all_results`].
struct QueueResults(Arc<dyn ExecutionQueue>);

#[async_trait]
impl ResultsSource for QueueResults {
    async fn all_results(
        &self,
        execution: ExecutionId,
    ) -> Result<std::collections::BTreeMap<String, Value>, NodeError> {
        let mut results = self
            .0
            .results(execution)
            .await
            .map_err(|e| NodeError::retryable(format!("reading results: {e}")))?;
        if let Some(payloads) = self.0.payloads() {
            for v in results.values_mut() {
                resolve_payloads(payloads, v)
                    .await
                    .map_err(|e| NodeError::retryable(format!("reading a payload: {e}")))?;
            }
        }
        Ok(results)
    }
}

impl NodeProcessor {
    /// A processor over `queue`, recording history in `store`.
    pub fn new(
        queue: Arc<dyn ExecutionQueue>,
        store: Arc<dyn ExecutionStore>,
        definitions: Arc<Definitions>,
    ) -> Self {
        let gate = Gate {
            queue: queue.clone(),
            registry: definitions.registry().clone(),
            global: None,
        };
        Self {
            starter: ExecutionStarter::new(queue.clone(), store.clone()),
            queue,
            store,
            definitions,
            gate,
            cpu_pool: None,
            write_through: true,
            payload_threshold: None,
        }
    }

    /// Keeps outputs larger than `bytes` (as JSON) aside in the queue backend and commits a
    /// reference instead (claim check); readers resolve it. `None`: never.
    pub fn with_payload_threshold(mut self, bytes: Option<usize>) -> Self {
        self.payload_threshold = bytes;
        self
    }

    /// Whether each commit's history is written by the worker right after it (write-through,
    /// the default), or left to a [`HistoryWriter`](crate::HistoryWriter) (write-behind).
    pub fn with_write_through(mut self, write_through: bool) -> Self {
        self.write_through = write_through;
        self.starter = self.starter.record_at_start(write_through);
        self
    }

    /// Limits every node of every worker of the backend to `limit` (the global rate limiter).
    pub fn with_global_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.gate.global = limit;
        self
    }

    /// Runs the executors of node types marked CPU-heavy on `pool` (see
    /// [`NodeRegistry::mark_cpu_heavy`](spane_core::NodeRegistry::mark_cpu_heavy)).
    pub fn with_cpu_pool(mut self, pool: Option<tokio::runtime::Handle>) -> Self {
        self.cpu_pool = pool;
        self
    }

    /// Processes one claimed job to its commit and, with the commit, claims up to `next` more
    /// jobs for `worker` (when the backend can: see
    /// [`ExecutionQueue::commit_and_claim`]), which it returns for the caller to run.
    pub async fn process_and_claim(
        &self,
        worker: &WorkerId,
        mut job: ClaimedJob,
        cancel: CancellationToken,
        next: usize,
    ) -> Vec<ClaimedJob> {
        let span = tracing::info_span!(
            "node",
            execution_id = %job.execution_id,
            workflow_id = %job.workflow_id,
            node_id = %job.node_id,
            attempt = job.attempt,
            node_type = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        async {
            let Some(dag) = self.definition(&job, &cancel).await else {
                return Vec::new();
            };
            let node_type = dag.as_ref().map_or(metrics::UNKNOWN_NODE_TYPE, |dag| {
                dag.node(job.node).node_type.as_str()
            });
            tracing::Span::current().record("node_type", node_type);
            metrics::queue_wait(node_type, job.ready_at);
            let commit = match &dag {
                Ok(dag) => self.run(&mut job, dag, cancel).await,
                Err(e) => NodeCommit::failed(e.to_string(), false),
            };
            self.commit(worker, &job, commit, node_type, next).await
        }
        .instrument(span)
        .await
    }

    /// The definition `job` runs. A transient error (the queue backend or the store cannot be
    /// reached, as when a worker with a cold cache loads a definition during a Redis outage) is
    /// retried with backoff while the job's lease is renewed: it is never committed as a failure
    /// of the node. A definition that is missing or invalid is returned as the error it is.
    /// `None` when `cancel` fires first (shutdown's deadline, or the execution was cancelled):
    /// the job is then given back to the queue, to run later.
    async fn definition(
        &self,
        job: &ClaimedJob,
        cancel: &CancellationToken,
    ) -> Option<Result<Arc<CompiledWorkflow>, WorkerError>> {
        // The hot path: a cached definition, or a first load that works.
        let mut error = match self
            .definitions
            .get(&job.workflow_id, job.workflow_version)
            .await
        {
            Err(e) if e.is_transient() => e,
            other => return Some(other),
        };
        let retry = async {
            let mut backoff = DEFINITION_BACKOFF_MIN;
            loop {
                tracing::warn!(
                    error = %error,
                    workflow_id = %job.workflow_id,
                    version = job.workflow_version,
                    retry_in_ms = backoff.as_millis() as u64,
                    "loading the definition failed (transient), retrying"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(DEFINITION_BACKOFF_MAX);
                match self
                    .definitions
                    .get(&job.workflow_id, job.workflow_version)
                    .await
                {
                    Err(e) if e.is_transient() => error = e,
                    other => return Some(other),
                }
            }
        };
        let loaded = self.with_lease(job, retry).await;
        if loaded.is_none() {
            tracing::info!(
                node = %job.node_id,
                "stopped before the definition could be loaded; giving the job back"
            );
            tracing::Span::current().record("outcome", "released");
            if let Err(e) = self.queue.release(job).await {
                tracing::warn!(error = %e, node = %job.node_id, "release failed; the lease will expire");
            }
        }
        loaded
    }

    async fn run(
        &self,
        job: &mut ClaimedJob,
        dag: &Arc<CompiledWorkflow>,
        cancel: CancellationToken,
    ) -> NodeCommit {
        let node = dag.node(job.node);
        if node.is_delay() {
            return delay_step(job, node);
        }
        if node.is_sub_workflow() {
            return self.start_child(job, node).await;
        }
        let Some(executor) = self.definitions.registry().get(&node.node_type).cloned() else {
            return NodeCommit::failed(
                format!(
                    "node {:?}: no executor registered for type {:?}",
                    node.id, node.node_type
                ),
                false,
            );
        };
        // A job that comes back from a rate-limit postponement holds its slot already.
        if !job.delay_elapsed
            && let Some(wait) = self.gate.reserve_rate_slot(node).await
        {
            return NodeCommit::Delay { delay: wait };
        }
        // The context takes the job's input and previous results (moved, not copied).
        let mut ctx = self.context(job, node, cancel);
        let job = &*job;
        if let Some(payloads) = self.queue.payloads() {
            // Large inputs come as references (claim check): the executor sees the data.
            let resolved = async {
                resolve_payloads(payloads, &mut ctx.input_data).await?;
                for v in ctx.previous_results.values_mut() {
                    resolve_payloads(payloads, v).await?;
                }
                Ok::<_, QueueError>(())
            };
            if let Err(e) = resolved.await {
                return decide(
                    &node.settings,
                    job.attempt,
                    Err(NodeError::retryable(format!(
                        "reading an input payload: {e}"
                    ))),
                    jitter_sample(),
                );
            }
        }
        let attempt = async {
            match self.gate.breaker(node, job.lease).await {
                // An open breaker fails the attempt without calling the executor.
                Err(open) => Err(open),
                Ok(ticket) => {
                    let pool = self
                        .cpu_pool
                        .as_ref()
                        .filter(|_| self.definitions.registry().is_cpu_heavy(&node.node_type));
                    let started = std::time::Instant::now();
                    let result = run_guarded(executor, ctx, node.settings.timeout, pool).await;
                    metrics::node_duration(&node.node_type, started.elapsed());
                    self.gate.report(ticket, result.is_ok()).await;
                    result
                }
            }
        };
        let result = self.with_lease(job, attempt).await;
        let result = match result {
            Ok(out) => self.claim_check(job, out).await,
            Err(e) => Err(e),
        };
        // Jitter matters only for a retry's backoff.
        let random = if result.is_err() {
            jitter_sample()
        } else {
            0.0
        };
        decide(&node.settings, job.attempt, result, random)
    }

    /// Replaces an output larger than the threshold by a reference to it, stored aside.
    async fn claim_check(
        &self,
        job: &ClaimedJob,
        mut out: NodeOutput,
    ) -> Result<NodeOutput, NodeError> {
        let (Some(threshold), Some(payloads)) = (self.payload_threshold, self.queue.payloads())
        else {
            return Ok(out);
        };
        if !longer_than(&out.data, threshold) {
            return Ok(out);
        }
        let json = out.data.to_string();
        let bytes = json.len();
        let key = payloads
            .put_payload(job.execution_id, json)
            .await
            .map_err(|e| NodeError::retryable(format!("storing a large output: {e}")))?;
        out.data = payload_ref(&key, bytes);
        Ok(out)
    }

    fn context(
        &self,
        job: &mut ClaimedJob,
        node: &CompiledNode,
        cancel: CancellationToken,
    ) -> ExecutionContext {
        let mut ctx = ExecutionContext::new(
            job.workflow_id.clone(),
            job.execution_id,
            job.node_id.clone(),
            node.node_type.clone(),
        )
        .with_results_source(Arc::new(QueueResults(self.queue.clone())));
        ctx.workflow_version = job.workflow_version;
        ctx.input_data = std::mem::take(&mut job.input);
        ctx.node_config = node.config.clone();
        ctx.previous_results = std::mem::take(&mut job.previous_results);
        ctx.parent_execution_id = job.parent_execution_id;
        ctx.depth = job.depth;
        ctx.attempt = job.attempt;
        ctx.cancellation = cancel;
        ctx
    }

    /// Runs `work` while renewing the job's lease at a third of its length (in this task: no
    /// task and no copy of the job per node).
    pub(crate) async fn with_lease<F: std::future::Future>(
        &self,
        job: &ClaimedJob,
        work: F,
    ) -> F::Output {
        tokio::pin!(work);
        // Most executors finish at their first poll: no timer then.
        if let std::task::Poll::Ready(out) = futures::poll!(&mut work) {
            return out;
        }
        let every = (job.lease / 3).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut renewing = true;
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tick.tick(), if renewing => match self.queue.renew(job).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(node = %job.node_id, "lease lost while the executor runs");
                        renewing = false;
                    }
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                },
            }
        }
    }

    /// Commits, retrying while the backend is unavailable (the commit is idempotent: a repeat
    /// after a lost reply is refused as stale), then records history.
    pub(crate) async fn commit(
        &self,
        worker: &WorkerId,
        job: &ClaimedJob,
        commit: NodeCommit,
        node_type: &str,
        next: usize,
    ) -> Vec<ClaimedJob> {
        let mut backoff = Duration::from_millis(50);
        let (outcome, jobs) = loop {
            match self
                .queue
                .commit_and_claim(worker, job, commit.clone(), next)
                .await
            {
                Ok(o) => break o,
                Err(QueueError::Unavailable { reason, .. }) => {
                    tracing::warn!(%reason, node = %job.node_id, "commit failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, node = %job.node_id, "commit rejected");
                    tracing::Span::current().record("outcome", "rejected");
                    return Vec::new();
                }
            }
        };
        let label = metrics::outcome_label(&commit, &outcome);
        metrics::node_committed(node_type, label);
        if matches!(outcome, CommitOutcome::Stale) {
            // The metric has no job labels: this line ties each one it counts to its job.
            tracing::warn!(
                execution_id = %job.execution_id,
                node_id = %job.node_id,
                attempt = job.attempt,
                token = job.token,
                "stale commit refused: the lease was lost, another run's result stands"
            );
        }
        tracing::Span::current().record("outcome", label);
        let CommitOutcome::Applied { finished } = outcome else {
            return jobs;
        };
        if let Some(status) = finished {
            metrics::execution_finished(status);
        }
        if let NodeCommit::AwaitChild { child } = &commit {
            self.after_await(job, *child).await;
        }
        self.record_history(job, commit, finished.is_some()).await;
        if finished.is_some() && job.parent_execution_id.is_some() {
            // A sub-workflow's execution ended: resume its parent now (the periodic sweep
            // covers a crash before this; see spane_queue::ChildExecutions).
            Box::pin(self.resume_parent(job.execution_id)).await;
        }
        jobs
    }

    async fn record_history(&self, job: &ClaimedJob, commit: NodeCommit, finished: bool) {
        if !self.write_through {
            return;
        }
        let result = match commit {
            NodeCommit::Completed { data, .. } => Some({
                let mut built = NodeResult::new(job.node_id.clone(), NodeStatus::Completed);
                built.data = Some(data);
                built.attempts = job.attempt;
                built.claims = job.claims;
                built.finished_at = Some(now_millis());
                built
            }),
            NodeCommit::Failed {
                error,
                continue_on_fail,
                ..
            } => Some({
                let mut built = NodeResult::new(job.node_id.clone(), NodeStatus::Failed);
                built.error = Some(error);
                built.attempts = job.attempt;
                built.claims = job.claims;
                built.continued = continue_on_fail;
                built.finished_at = Some(now_millis());
                built
            }),
            _ => None,
        };
        if finished {
            // The queue's record is complete (skips included): write it whole.
            match self.queue.execution(job.execution_id).await {
                Ok(Some(mut record)) => {
                    if let Some(payloads) = self.queue.payloads()
                        && let Err(e) =
                            spane_queue::backend::resolve_record(payloads, &mut record).await
                    {
                        tracing::error!(error = %e, "resolving payloads for history failed");
                    }
                    if let Err(e) = self.store.save_execution(&record).await {
                        tracing::error!(error = %e, "writing execution history failed");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "reading the finished execution failed"),
            }
        } else if let Some(mut result) = result {
            if let (Some(payloads), Some(data)) = (self.queue.payloads(), result.data.as_mut())
                && let Err(e) = resolve_payloads(payloads, data).await
            {
                tracing::error!(error = %e, "resolving a payload for history failed");
            }
            match self.store.save_node_result(job.execution_id, &result).await {
                Ok(()) => {}
                // Another process created the execution in a store this one does not share.
                Err(StoreError::ExecutionNotFound(_)) => {
                    tracing::debug!(
                        "execution unknown to this process's store; history not written"
                    );
                }
                Err(e) => tracing::error!(error = %e, "writing node history failed"),
            }
        }
    }
}

/// First and longest wait between two attempts at loading a definition after a transient error.
const DEFINITION_BACKOFF_MIN: Duration = Duration::from_millis(50);
const DEFINITION_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A delay node: first claim starts the wait, the claim after it passes the data through.
fn delay_step(job: &ClaimedJob, node: &CompiledNode) -> NodeCommit {
    let delay = node.settings.delay.unwrap_or_default();
    if job.delay_elapsed || delay.is_zero() {
        NodeCommit::Completed {
            data: job.input.clone(),
            next_nodes: None,
        }
    } else {
        NodeCommit::Delay { delay }
    }
}

/// Runs the executor (on the CPU pool when given one), so that a panic fails the attempt
/// instead of the worker, and a timeout ends it.
async fn run_guarded(
    executor: Arc<dyn spane_core::NodeExecutor>,
    ctx: ExecutionContext,
    timeout: Option<Duration>,
    pool: Option<&tokio::runtime::Handle>,
) -> Result<NodeOutput, NodeError> {
    let work = async move { executor.execute(ctx).await };
    let Some(pool) = pool else {
        // In this task (no task spawned per node): a panic is caught here, and a timeout drops
        // the executor's future.
        let guarded = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work));
        let caught = match timeout {
            None => guarded.await,
            Some(limit) => match tokio::time::timeout(limit, guarded).await {
                Ok(caught) => caught,
                Err(_) => return Err(timed_out(limit)),
            },
        };
        return caught.unwrap_or_else(|payload| Err(panicked(payload.as_ref())));
    };
    let task = pool.spawn(work);
    let abort = task.abort_handle();
    let joined = match timeout {
        None => task.await,
        Some(limit) => match tokio::time::timeout(limit, task).await {
            Ok(joined) => joined,
            Err(_) => {
                abort.abort();
                return Err(timed_out(limit));
            }
        },
    };
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(panicked(e.into_panic().as_ref())),
        Err(_) => Err(NodeError::retryable("executor task was cancelled")),
    }
}

fn timed_out(limit: Duration) -> NodeError {
    NodeError::retryable(format!("timed out after {} ms", limit.as_millis()))
}

/// The failure of an attempt whose executor panicked with `payload`.
fn panicked(payload: &(dyn std::any::Any + Send)) -> NodeError {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    NodeError::retryable(format!("executor panicked: {msg}"))
}

/// Whether `value` as JSON is longer than `limit` bytes; stops writing once it is.
fn longer_than(value: &Value, limit: usize) -> bool {
    struct Count {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written += buf.len();
            if self.written > self.limit {
                return Err(std::io::Error::other("long enough"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count { written: 0, limit };
    serde_json::to_writer(&mut count, value).is_err() || count.written > limit
}

/// A number in `[0, 1)` for backoff jitter, from a fresh ULID's random bits.
pub(crate) fn jitter_sample() -> f64 {
    let bits = (ulid::Ulid::new().random() & ((1u128 << 53) - 1)) as u64;
    bits as f64 / (1u64 << 53) as f64
}
