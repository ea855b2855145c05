//! The worker manager: claims jobs in batches up to the concurrency limit and runs them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spane_queue::backend::{ClaimedJob, WorkerId};
use spane_queue::{ExecutionQueue, RunningJob, WorkerBeat};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::processor::NodeProcessor;

/// Settings of a [`WorkerManager`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Node jobs run at once by this manager (default 5, as in the original).
    pub concurrency: usize,
    /// How long one claim call waits for work before trying again (default 1 s). Shutdown
    /// does not wait for it: a stopping manager interrupts its claim
    /// ([`ExecutionQueue::interrupt_claims`](spane_queue::ExecutionQueue::interrupt_claims)).
    pub claim_wait: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 5,
            claim_wait: Duration::from_secs(1),
        }
    }
}

impl WorkerConfig {
    /// Sets [`concurrency`](Self::concurrency).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets [`claim_wait`](Self::claim_wait).
    pub fn claim_wait(mut self, claim_wait: Duration) -> Self {
        self.claim_wait = claim_wait;
        self
    }
}

/// What [`WorkerManager::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Jobs that were running when shutdown began and finished within the deadline.
    pub drained: usize,
    /// Jobs still running at the deadline: their executors were cancelled and the jobs given
    /// back to the queue for another worker.
    pub released: usize,
}

/// Runs node jobs from a queue with bounded concurrency.
pub struct WorkerManager {
    stop: CancellationToken,
    executors_cancel: CancellationToken,
    claim_loop: tokio::task::JoinHandle<JoinSet<()>>,
    in_flight: InFlight,
    queue: Arc<dyn ExecutionQueue>,
    worker: WorkerId,
    cancel_watch: tokio::task::JoinHandle<()>,
}

/// Jobs being run, with the token that cancels each one's executor.
type InFlight =
    Arc<Mutex<HashMap<(spane_core::ExecutionId, usize), (ClaimedJob, CancellationToken, i64)>>>;

/// How often a manager reports to the worker heartbeat registry
/// ([`spane_queue::WorkerRegistry`]): its executor types and the jobs it holds.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// Reports this manager to the backend's worker registry every [`HEARTBEAT_EVERY`], while it
/// runs: one small write, off the node path.
async fn heartbeat(
    queue: Arc<dyn ExecutionQueue>,
    worker: WorkerId,
    types: Vec<String>,
    in_flight: InFlight,
    stop: CancellationToken,
) {
    let Some(registry) = queue.workers() else {
        return;
    };
    let started = spane_core::now_millis();
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let jobs = in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|(job, _, since)| {
                RunningJob::new(job.execution_id, job.node_id.clone(), job.token, *since)
            })
            .collect();
        let beat = WorkerBeat::new(
            worker.as_str(),
            started,
            HEARTBEAT_EVERY.as_millis() as u64,
            types.clone(),
        )
        .with_jobs(jobs);
        if let Err(e) = registry.heartbeat(&beat).await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }
}

/// Cancels the executors of this manager's jobs whose execution gets cancelled (by any process).
async fn watch_cancellations(queue: Arc<dyn ExecutionQueue>, in_flight: InFlight) {
    let Some(control) = queue.control() else {
        return;
    };
    let mut cancelled = match control.cancellations().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch cancellations; cancelled executors run to their end");
            return;
        }
    };
    while let Some(id) = futures::StreamExt::next(&mut cancelled).await {
        let jobs = in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((execution, _), (job, token, _)) in jobs.iter() {
            if *execution == id {
                tracing::info!(node = %job.node_id, execution = %id, "execution cancelled, cancelling its executor");
                token.cancel();
            }
        }
    }
}

/// Keeps the dead-letter queue size gauge current while the manager runs, when the backend keeps
/// a dead-letter queue (one count every [`metrics::DLQ_REFRESH`]).
async fn report_dlq_size(queue: Arc<dyn ExecutionQueue>, stop: CancellationToken) {
    let Some(dlq) = queue.dead_letters() else {
        return;
    };
    let mut every = tokio::time::interval(metrics::DLQ_REFRESH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        match dlq.count_dead_letters().await {
            Ok(items) => metrics::dlq_size(items),
            Err(e) => tracing::debug!(error = %e, "reading the dead-letter queue size failed"),
        }
    }
}

/// Resumes the parents of sub-workflows whose worker died between the child's end and the
/// parent's resumption (every `every`, while the manager runs).
async fn sweep_ended_children(
    processor: Arc<NodeProcessor>,
    stop: CancellationToken,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        processor.sweep_ended_children().await;
    }
}

impl fmt::Debug for WorkerManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerManager")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl WorkerManager {
    /// Starts claiming from `queue` and processing with `processor`. Needs a tokio runtime.
    pub fn start(
        queue: Arc<dyn ExecutionQueue>,
        processor: Arc<NodeProcessor>,
        config: WorkerConfig,
    ) -> Self {
        let stop = CancellationToken::new();
        let executors_cancel = CancellationToken::new();
        let worker = WorkerId::new();
        let in_flight: InFlight = Arc::new(Mutex::new(HashMap::new()));
        let cancel_watch = tokio::spawn(watch_cancellations(queue.clone(), in_flight.clone()));
        tokio::spawn(report_dlq_size(queue.clone(), stop.clone()));
        tokio::spawn(sweep_ended_children(
            processor.clone(),
            stop.clone(),
            crate::subworkflow::sweep_every(config.claim_wait),
        ));
        let types = processor
            .definitions
            .registry()
            .types()
            .into_iter()
            .map(str::to_owned)
            .collect();
        tokio::spawn(heartbeat(
            queue.clone(),
            worker.clone(),
            types,
            in_flight.clone(),
            stop.clone(),
        ));
        let claim_loop = tokio::spawn(claim_loop(
            queue.clone(),
            processor,
            config,
            worker.clone(),
            stop.clone(),
            executors_cancel.clone(),
            in_flight.clone(),
        ));
        tracing::info!(%worker, "worker started");
        Self {
            stop,
            executors_cancel,
            claim_loop,
            in_flight,
            queue,
            worker,
            cancel_watch,
        }
    }

    /// This worker incarnation's id.
    pub fn worker_id(&self) -> &WorkerId {
        &self.worker
    }

    /// Stops claiming, lets in-flight jobs finish within `deadline`, then cancels the rest and
    /// gives their jobs back to the queue so that another worker takes them at once.
    pub async fn shutdown(self, deadline: Duration) -> ShutdownReport {
        self.stop.cancel();
        let running_at_stop = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        let mut tasks = match self.claim_loop.await {
            Ok(tasks) => tasks,
            Err(e) => {
                tracing::error!(error = %e, "claim loop ended abnormally");
                JoinSet::new()
            }
        };
        let mut report = ShutdownReport::default();
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, drain).await.is_err() {
            self.executors_cancel.cancel();
            for (_, token, _) in self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
            {
                token.cancel();
            }
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let left: Vec<ClaimedJob> = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain()
                .map(|(_, (j, _, _))| j)
                .collect();
            for job in left {
                if let Err(e) = self.queue.release(&job).await {
                    tracing::warn!(error = %e, node = %job.node_id, "release failed; the lease will expire");
                }
                report.released += 1;
            }
        }
        self.cancel_watch.abort();
        if let Some(registry) = self.queue.workers()
            && let Err(e) = registry.forget_worker(self.worker.as_str()).await
        {
            tracing::debug!(error = %e, "leaving the worker registry failed");
        }
        report.drained = running_at_stop.saturating_sub(report.released);
        tracing::info!(worker = %self.worker, drained = report.drained, released = report.released, "worker stopped");
        report
    }
}

/// How long a stopping worker waits for its interrupted claim (a backend that cannot be
/// reached may not answer) before it drops the call.
const INTERRUPTED_CLAIM_BOUND: Duration = Duration::from_secs(5);

async fn claim_loop(
    queue: Arc<dyn ExecutionQueue>,
    processor: Arc<NodeProcessor>,
    config: WorkerConfig,
    worker: WorkerId,
    stop: CancellationToken,
    executors_cancel: CancellationToken,
    in_flight: InFlight,
) -> JoinSet<()> {
    let concurrency = config.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut error_backoff = Duration::from_millis(50);
    loop {
        if stop.is_cancelled() {
            break;
        }
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        let claim = queue.claim(&worker, permits.len(), config.claim_wait);
        tokio::pin!(claim);
        // The claim is polled first, so that it has begun (and sees the interrupt) before a
        // stop is acted on. On stop it is interrupted and awaited, not dropped: a claim dropped
        // half-way could leave a job claimed until its lease expires. What it brings back is
        // given back by the slots, which see the stop.
        let claimed = tokio::select! {
            biased;
            claimed = &mut claim => claimed,
            () = stop.cancelled() => {
                queue.interrupt_claims();
                match tokio::time::timeout(INTERRUPTED_CLAIM_BOUND, &mut claim).await {
                    Ok(claimed) => claimed,
                    Err(_) => {
                        tracing::warn!("an interrupted claim did not return; dropping it");
                        break;
                    }
                }
            }
        };
        let jobs = match claimed {
            Ok(jobs) => {
                error_backoff = Duration::from_millis(50);
                jobs
            }
            Err(e) => {
                tracing::warn!(error = %e, "claim failed, retrying");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(error_backoff) => {}
                }
                error_backoff = (error_backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        for job in jobs {
            let Some(permit) = permits.pop() else {
                // The queue returned more than asked; give the surplus back.
                if let Err(e) = queue.release(&job).await {
                    tracing::warn!(error = %e, "release failed");
                }
                continue;
            };
            tasks.spawn(run_slot(
                job,
                permit,
                Slot {
                    queue: queue.clone(),
                    processor: processor.clone(),
                    worker: worker.clone(),
                    stop: stop.clone(),
                    executors_cancel: executors_cancel.clone(),
                    in_flight: in_flight.clone(),
                },
            ));
        }
    }
    tasks
}

/// What one concurrency slot needs to run jobs.
struct Slot {
    queue: Arc<dyn ExecutionQueue>,
    processor: Arc<NodeProcessor>,
    worker: WorkerId,
    stop: CancellationToken,
    executors_cancel: CancellationToken,
    in_flight: InFlight,
}

/// Runs `job` in one slot, then the jobs its commit claimed next, until a commit brings none
/// (or the manager stops: a job claimed meanwhile is given back).
async fn run_slot(job: ClaimedJob, permit: tokio::sync::OwnedSemaphorePermit, slot: Slot) {
    let mut queued = vec![job];
    while let Some(job) = queued.pop() {
        if slot.stop.is_cancelled() {
            if let Err(e) = slot.queue.release(&job).await {
                tracing::warn!(error = %e, node = %job.node_id, "release failed; the lease will expire");
            }
            continue;
        }
        let key = (job.execution_id, job.node);
        // A token of its own (no lock shared by every job on a parent token); shutdown cancels
        // the tokens of the jobs in flight.
        let cancel = CancellationToken::new();
        if slot.executors_cancel.is_cancelled() {
            cancel.cancel();
        }
        // What a release needs: the ids and the token, not the inputs.
        let kept = ClaimedJob {
            input: serde_json::Value::Null,
            previous_results: Default::default(),
            workflow_id: job.workflow_id.clone(),
            node_id: job.node_id.clone(),
            children: Vec::new(),
            ..job
        };
        slot.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, (kept, cancel.clone(), spane_core::now_millis()));
        // Ask for a next job only while nothing is queued in this slot and the manager runs.
        let want = usize::from(queued.is_empty() && !slot.stop.is_cancelled());
        let next = slot
            .processor
            .process_and_claim(&slot.worker, job, cancel, want)
            .await;
        slot.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        queued.extend(next);
    }
    drop(permit);
}
