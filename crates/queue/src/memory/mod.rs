//! The in-memory backend: everything under one mutex, events emitted inside the commit.

mod exec;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use spane_core::{
    EngineEvent, EventSink, ExecutionId, ExecutionRecord, ExecutionStatus, NoEvents, NodeIndex,
    WorkflowDefinition,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::children::ChildExecutions;
use crate::control::{CancelStream, ExecutionControl, cancel_stream};
use crate::dlq::{DeadLetter, DeadLetterQueue};
use crate::error::QueueError;
use crate::idempotency::IdempotencyKeys;
use crate::inspect::{ExecutionInspection, Inspected};
use crate::job::{ClaimedJob, CommitOutcome, NodeCommit, StartExecution, WorkerId};
use crate::limits::{BreakerInfo, SharedLimits};
use crate::payload::PayloadStore;
use crate::queue::ExecutionQueue;
use crate::workers::{FORGET_AFTER_MS, WorkerBeat, WorkerRegistry};
use exec::{Claim, Events, Exec};

/// Settings of a [`MemoryQueue`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryQueueConfig {
    /// How long a claim is valid without renewal (default 30 s). A job whose lease expires is
    /// claimable again.
    pub lease: Duration,
    /// How long a finished execution stays readable from the queue (default 1 hour); the store
    /// keeps its history.
    pub retention: Duration,
    /// How many lease expiries a job survives (default 1, as on Redis). Each expiry counts as
    /// an attempt; one more fails the node for good with reason `stalled`.
    pub max_stalled: u32,
}

impl Default for MemoryQueueConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(3600),
            max_stalled: 1,
        }
    }
}

impl MemoryQueueConfig {
    /// Sets [`lease`](Self::lease).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`retention`](Self::retention).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets [`max_stalled`](Self::max_stalled).
    pub fn max_stalled(mut self, max_stalled: u32) -> Self {
        self.max_stalled = max_stalled;
        self
    }
}

/// In-process queue: no services, for the embedded engine and tests.
///
/// Cheap to clone (shared state). Events are handed to the [`EventSink`] inside the commit, so
/// every subscriber sees an execution's events in causal order.
#[derive(Clone)]
pub struct MemoryQueue {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Mutex<Inner>,
    notify: Notify,
    /// Bumped by [`ExecutionQueue::interrupt_claims`]: a claim that sees it change returns.
    interrupts: std::sync::atomic::AtomicU64,
    cancels: tokio::sync::broadcast::Sender<ExecutionId>,
    sink: Arc<dyn EventSink>,
    config: MemoryQueueConfig,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct JobKey {
    execution: ExecutionId,
    node: NodeIndex,
}

struct Lease {
    token: u64,
    expires: Instant,
    /// The worker that claimed the job, and when (ms since the epoch).
    worker: Arc<str>,
    since: i64,
}

#[derive(Default)]
struct Inner {
    executions: HashMap<ExecutionId, Exec>,
    ready: VecDeque<JobKey>,
    delayed: BinaryHeap<Reverse<(Instant, u64, JobKey)>>,
    leases: HashMap<JobKey, Lease>,
    /// No lease expires before this (a lower bound; `None` when there were no leases at the
    /// last scan and none was taken since): claims only scan the leases once it has passed.
    lease_floor: Option<Instant>,
    next_token: u64,
    finished: VecDeque<(Instant, ExecutionId)>,
    dlq: Vec<DeadLetter>,
    breakers: std::collections::BTreeMap<String, spane_core::BreakerState>,
    /// Payloads kept aside, by key (removed with their execution).
    payloads: HashMap<String, (ExecutionId, Value)>,
    /// Execution deadlines, earliest first (ms since the epoch).
    deadlines: BinaryHeap<Reverse<(i64, ExecutionId)>>,
    /// Rate limits: key → the start (ms) of the next free slot.
    windows: HashMap<String, f64>,
    /// Sub-workflow nodes waiting for their child without a lease, with their claim's token.
    awaiting: HashMap<JobKey, u64>,
    /// Children that ended and whose parent has not been resumed yet (the outbox), with when.
    ended: VecDeque<(Instant, ExecutionId)>,
    /// The children each parent started, oldest first.
    kids: HashMap<ExecutionId, Vec<ExecutionId>>,
    /// The worker heartbeat registry, by worker id.
    workers: HashMap<String, WorkerBeat>,
    /// Idempotency keys: the execution each maps to, until when.
    idempotency: HashMap<String, (ExecutionId, Instant)>,
    /// The same keys by expiry, oldest first (the retention is fixed, so reservation order is
    /// expiry order).
    idempotency_expiry: VecDeque<(Instant, String)>,
    /// The idempotency key each execution was started with (removed with the execution).
    started_with: HashMap<ExecutionId, String>,
}

impl fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryQueue")
            .field("executions", &inner.executions.len())
            .field("ready", &inner.ready.len())
            .field("delayed", &inner.delayed.len())
            .field("in_flight", &inner.leases.len())
            .finish()
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(Arc::new(NoEvents))
    }
}

impl MemoryQueue {
    /// A queue that emits its events into `sink` (for example a `LocalBus`).
    pub fn new(sink: Arc<dyn EventSink>) -> Self {
        Self::with_config(sink, MemoryQueueConfig::default())
    }

    /// A queue with explicit settings.
    pub fn with_config(sink: Arc<dyn EventSink>, config: MemoryQueueConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                notify: Notify::new(),
                interrupts: std::sync::atomic::AtomicU64::new(0),
                cancels: tokio::sync::broadcast::channel(1024).0,
                sink,
                config,
            }),
        }
    }

    /// The status of execution `id` while the queue holds it: what
    /// [`execution`](ExecutionQueue::execution) would report, without copying the record.
    pub fn status(&self, id: ExecutionId) -> Option<ExecutionStatus> {
        self.lock().executions.get(&id).map(Exec::status)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every step completes before
        // the guard drops), so a poisoned lock is still usable.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails the executions whose deadline has passed and cancels their running executors.
    fn expire_deadlines(&self, inner: &mut Inner) {
        let now = spane_core::now_millis();
        let mut events = self.events();
        while let Some(Reverse((deadline, id))) = inner.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            inner.deadlines.pop();
            if let Some(exec) = inner.executions.get_mut(&id)
                && exec.expire(&mut events)
            {
                inner.mark_finished(Instant::now(), id);
                let _ = self.shared.cancels.send(id);
            }
        }
        self.emit(events.list);
    }

    /// An empty event list for one locked step.
    fn events(&self) -> Events {
        Events::new(self.shared.sink.wants_node_events())
    }

    fn emit(&self, events: Vec<EngineEvent>) {
        if !events.is_empty() {
            self.shared.sink.emit(events);
        }
    }
}

impl Inner {
    fn promote_due(&mut self, now: Instant) {
        while let Some(Reverse((due, _, key))) = self.delayed.peek().copied() {
            if due > now {
                break;
            }
            self.delayed.pop();
            self.ready.push_back(key);
        }
    }

    /// Applies the expiry of every lease that has run out: the core counts the stall (the
    /// next claim runs the next attempt) or, past `max_stalled`, fails the node.
    fn reclaim_expired(&mut self, now: Instant, max_stalled: u32, events: &mut Events) {
        if self.lease_floor.is_none_or(|floor| floor > now) {
            return;
        }
        let mut expired: Vec<JobKey> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        // In the order they were handed out, as on Redis (lease scores, then members).
        expired.sort_by_key(|k| self.leases[k].token);
        for key in expired {
            self.leases.remove(&key);
            tracing::warn!(execution = %key.execution, node = key.node, "lease expired");
            let Some(exec) = self.executions.get_mut(&key.execution) else {
                continue;
            };
            let applied = exec.stall(key.node, max_stalled, events);
            if applied.requeue.is_some() {
                self.ready.push_front(key);
            }
            for node in applied.ready {
                self.ready.push_back(JobKey {
                    execution: key.execution,
                    node,
                });
            }
            if let Some(dead) = applied.dead_letter {
                self.dlq.push(dead);
            }
            if applied.finished.is_some() {
                self.mark_finished(now, key.execution);
            }
        }
        self.lease_floor = self.leases.values().map(|l| l.expires).min();
    }

    /// Records a lease taken until `expires`.
    fn add_lease(&mut self, key: JobKey, token: u64, expires: Instant, worker: &Arc<str>) {
        self.leases.insert(
            key,
            Lease {
                token,
                expires,
                worker: worker.clone(),
                since: spane_core::now_millis(),
            },
        );
        // Renewals only move expiries later, so the floor stays a lower bound.
        self.lease_floor = Some(self.lease_floor.map_or(expires, |f| f.min(expires)));
    }

    fn next_wake(&self) -> Option<Instant> {
        let delayed = self.delayed.peek().map(|Reverse((due, _, _))| *due);
        let lease = self.leases.values().map(|l| l.expires).min();
        let deadline = self.deadlines.peek().map(|Reverse((at, _))| {
            let ms = (*at - spane_core::now_millis()).max(0) as u64;
            Instant::now() + Duration::from_millis(ms)
        });
        [delayed, lease, deadline].into_iter().flatten().min()
    }

    fn sweep(&mut self, now: Instant, retention: Duration) {
        while let Some(&(at, id)) = self.finished.front() {
            if now.duration_since(at) < retention {
                break;
            }
            self.finished.pop_front();
            // Executions with dead letters stay retryable until the items are purged.
            if self.dlq.iter().any(|d| d.execution_id == id) {
                self.finished.push_back((now, id));
                break;
            }
            self.executions.remove(&id);
            self.started_with.remove(&id);
            self.kids.remove(&id);
            self.payloads.retain(|_, (e, _)| *e != id);
        }
    }

    /// Records that `id` ended: kept for the retention, and its parent told (the outbox).
    fn mark_finished(&mut self, now: Instant, id: ExecutionId) {
        self.finished.push_back((now, id));
        if self.executions.get(&id).and_then(Exec::parent).is_some() {
            self.ended.push_back((now, id));
        }
    }

    fn schedule(&mut self, key: JobKey, due: Instant) {
        self.next_token += 1;
        let seq = self.next_token;
        self.delayed.push(Reverse((due, seq, key)));
    }
}

#[async_trait]
impl ExecutionQueue for MemoryQueue {
    async fn start_execution(&self, start: StartExecution) -> Result<(), QueueError> {
        {
            let mut inner = self.lock();
            inner.sweep(Instant::now(), self.shared.config.retention);
            if inner.executions.contains_key(&start.execution_id) {
                let same_key = start.idempotency_key.is_some()
                    && inner.started_with.get(&start.execution_id)
                        == start.idempotency_key.as_ref();
                if same_key {
                    return Ok(());
                }
                return Err(QueueError::DuplicateExecution(start.execution_id));
            }
            let id = start.execution_id;
            if let Some(key) = &start.idempotency_key {
                inner.started_with.insert(id, key.clone());
            }
            if let Some(deadline) = start.deadline {
                inner.deadlines.push(Reverse((deadline, id)));
            }
            let (exec, ready, events) = Exec::start(start);
            for node in ready {
                inner.ready.push_back(JobKey {
                    execution: id,
                    node,
                });
            }
            inner.executions.insert(id, exec);
            self.emit(events);
        }
        self.shared.notify.notify_waiters();
        Ok(())
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        let deadline = Instant::now() + wait;
        let worker: Arc<str> = Arc::from(worker.as_str());
        let interrupts = self.shared.interrupts.load(AtomicOrdering::SeqCst);
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let mut inner = self.lock();
                let now = Instant::now();
                inner.promote_due(now);
                let mut events = self.events();
                inner.reclaim_expired(now, self.shared.config.max_stalled, &mut events);
                self.expire_deadlines(&mut inner);
                let mut jobs = Vec::with_capacity(max.min(inner.ready.len()));
                while jobs.len() < max {
                    let Some(key) = inner.ready.pop_front() else {
                        break;
                    };
                    let lease = self.shared.config.lease;
                    inner.next_token += 1;
                    let token = inner.next_token;
                    let Some(exec) = inner.executions.get_mut(&key.execution) else {
                        continue;
                    };
                    let Some(job) = exec.claim(key.node, token, lease, &mut events) else {
                        continue;
                    };
                    inner.add_lease(key, token, now + lease, &worker);
                    jobs.push(job);
                }
                self.emit(events.list);
                if !jobs.is_empty() {
                    drop(inner);
                    // The inputs are copied once the lock is released.
                    return Ok(jobs.into_iter().map(Claim::into_job).collect());
                }
                inner.next_wake()
            };
            let now = Instant::now();
            if now >= deadline || self.shared.interrupts.load(AtomicOrdering::SeqCst) != interrupts
            {
                return Ok(Vec::new());
            }
            let until = wake.map_or(deadline, |w| w.min(deadline));
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    fn interrupt_claims(&self) {
        self.shared.interrupts.fetch_add(1, AtomicOrdering::SeqCst);
        self.shared.notify.notify_waiters();
    }

    async fn commit_and_claim(
        &self,
        worker: &WorkerId,
        job: &ClaimedJob,
        commit: NodeCommit,
        next: usize,
    ) -> Result<(CommitOutcome, Vec<ClaimedJob>), QueueError> {
        let outcome = self.commit(job, commit).await?;
        let jobs = if next > 0 {
            // Whatever is ready now, without waiting: the worker's slot runs it next.
            self.claim(worker, next, Duration::ZERO).await?
        } else {
            Vec::new()
        };
        Ok((outcome, jobs))
    }

    async fn renew(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        let mut inner = self.lock();
        let key = JobKey {
            execution: job.execution_id,
            node: job.node,
        };
        match inner.leases.get_mut(&key) {
            Some(lease) if lease.token == job.token => {
                lease.expires = Instant::now() + self.shared.config.lease;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn commit(
        &self,
        job: &ClaimedJob,
        commit: NodeCommit,
    ) -> Result<CommitOutcome, QueueError> {
        let outcome = {
            let mut inner = self.lock();
            let key = JobKey {
                execution: job.execution_id,
                node: job.node,
            };
            // A sub-workflow node waiting for its child holds no lease, only its token.
            let held = match inner.leases.get(&key) {
                Some(lease) => lease.token == job.token,
                None => inner.awaiting.get(&key) == Some(&job.token),
            };
            if !held {
                tracing::debug!(execution_id = %job.execution_id, node_id = %job.node_id, attempt = job.attempt, token = job.token, "commit refused: the token is not the lease's");
                return Ok(CommitOutcome::Stale);
            }
            inner.leases.remove(&key);
            inner.awaiting.remove(&key);
            if matches!(commit, NodeCommit::AwaitChild { .. }) {
                inner.awaiting.insert(key, job.token);
            }
            let now = Instant::now();
            let Some(exec) = inner.executions.get_mut(&key.execution) else {
                tracing::debug!(execution_id = %job.execution_id, node_id = %job.node_id, attempt = job.attempt, token = job.token, "commit refused: the execution is no longer held");
                return Ok(CommitOutcome::Stale);
            };
            let mut events = self.events();
            let applied = exec.commit(job, commit, &mut events);
            for node in &applied.ready {
                inner.ready.push_back(JobKey {
                    execution: key.execution,
                    node: *node,
                });
            }
            if let Some(delay) = applied.reschedule {
                inner.schedule(key, now + delay);
            }
            if applied.finished.is_some() {
                inner.mark_finished(now, key.execution);
            }
            if let Some(dead) = applied.dead_letter.clone() {
                inner.dlq.push(dead);
            }
            self.emit(events.list);
            applied
        };
        if !outcome.ready.is_empty() || outcome.reschedule.is_some() {
            self.shared.notify.notify_waiters();
        }
        Ok(CommitOutcome::Applied {
            finished: outcome.finished,
        })
    }

    async fn release(&self, job: &ClaimedJob) -> Result<(), QueueError> {
        {
            let mut inner = self.lock();
            let key = JobKey {
                execution: job.execution_id,
                node: job.node,
            };
            match inner.leases.get(&key) {
                Some(lease) if lease.token == job.token => {}
                _ => return Ok(()),
            }
            inner.leases.remove(&key);
            if let Some(exec) = inner.executions.get_mut(&key.execution) {
                exec.release(key.node);
            }
            inner.ready.push_front(key);
        }
        self.shared.notify.notify_waiters();
        Ok(())
    }

    async fn execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, QueueError> {
        // Copied once the lock is released.
        let record = self.lock().executions.get(&id).map(Exec::record);
        Ok(record.map(exec::Record::build))
    }

    async fn definition(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Option<WorkflowDefinition>, QueueError> {
        Ok(self
            .lock()
            .executions
            .values()
            .find_map(|e| e.definition(workflow_id, version)))
    }

    fn dead_letters(&self) -> Option<&dyn DeadLetterQueue> {
        Some(self)
    }

    fn control(&self) -> Option<&dyn ExecutionControl> {
        Some(self)
    }

    fn limits(&self) -> Option<&dyn SharedLimits> {
        Some(self)
    }

    fn payloads(&self) -> Option<&dyn PayloadStore> {
        Some(self)
    }

    fn sub_workflows(&self) -> Option<&dyn ChildExecutions> {
        Some(self)
    }

    fn inspection(&self) -> Option<&dyn ExecutionInspection> {
        Some(self)
    }

    fn workers(&self) -> Option<&dyn WorkerRegistry> {
        Some(self)
    }

    fn idempotency_keys(&self) -> Option<&dyn IdempotencyKeys> {
        Some(self)
    }

    async fn execution_status(
        &self,
        id: ExecutionId,
    ) -> Result<Option<ExecutionStatus>, QueueError> {
        Ok(self.status(id))
    }

    async fn results(&self, id: ExecutionId) -> Result<BTreeMap<String, Value>, QueueError> {
        let outputs = self
            .lock()
            .executions
            .get(&id)
            .ok_or(QueueError::ExecutionNotFound(id))?
            .outputs();
        Ok(outputs.build())
    }
}

impl MemoryQueue {
    /// Revives the dead letters of `execution` selected by `node_id` (all when `None`).
    fn revive(&self, execution: ExecutionId, node_id: Option<&str>) -> usize {
        let mut revived = 0;
        {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let mut events = self.events();
            let mut keep = Vec::with_capacity(inner.dlq.len());
            for dead in std::mem::take(&mut inner.dlq) {
                let selected =
                    dead.execution_id == execution && node_id.is_none_or(|n| n == dead.node_id);
                let exec = inner.executions.get_mut(&execution);
                let ready = match (selected, exec) {
                    (true, Some(exec)) => exec
                        .index_of(&dead.node_id)
                        .and_then(|i| exec.revive(i, &mut events)),
                    _ => None,
                };
                match ready {
                    Some(nodes) => {
                        revived += 1;
                        for node in nodes {
                            inner.ready.push_back(JobKey { execution, node });
                        }
                    }
                    // Not revivable now (the execution is paused or cancelled, or the node is
                    // no longer failed): the item stays, as on Redis.
                    None => keep.push(dead),
                }
            }
            inner.dlq = keep;
            if revived > 0 {
                // Running again: not swept until it ends again.
                inner.finished.retain(|(_, id)| *id != execution);
            }
            self.emit(events.list);
        }
        if revived > 0 {
            self.shared.notify.notify_waiters();
        }
        revived
    }
}

#[async_trait]
impl DeadLetterQueue for MemoryQueue {
    async fn list_dead_letters(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self
            .lock()
            .dlq
            .iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn count_dead_letters(&self) -> Result<usize, QueueError> {
        Ok(self.lock().dlq.len())
    }

    async fn execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self
            .lock()
            .dlq
            .iter()
            .filter(|d| d.execution_id == execution)
            .cloned()
            .collect())
    }

    async fn get_dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<Option<DeadLetter>, QueueError> {
        Ok(self
            .lock()
            .dlq
            .iter()
            .find(|d| d.execution_id == execution && d.node_id == node_id)
            .cloned())
    }

    async fn retry_dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<bool, QueueError> {
        Ok(self.revive(execution, Some(node_id)) > 0)
    }

    async fn retry_execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<usize, QueueError> {
        Ok(self.revive(execution, None))
    }

    async fn purge_dead_letters(&self) -> Result<usize, QueueError> {
        let mut inner = self.lock();
        let n = inner.dlq.len();
        inner.dlq.clear();
        Ok(n)
    }
}

fn not_allowed(
    execution: ExecutionId,
    action: &'static str,
) -> impl Fn(ExecutionStatus) -> QueueError {
    move |status| QueueError::NotAllowed {
        execution,
        action,
        status,
    }
}

#[async_trait]
impl ExecutionControl for MemoryQueue {
    async fn pause(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError> {
        let mut inner = self.lock();
        let exec = inner
            .executions
            .get_mut(&id)
            .ok_or(QueueError::ExecutionNotFound(id))?;
        let mut events = self.events();
        exec.pause(&mut events).map_err(not_allowed(id, "pause"))?;
        let status = exec.status();
        self.emit(events.list);
        Ok(status)
    }

    async fn resume(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError> {
        let status = {
            let mut inner = self.lock();
            let exec = inner
                .executions
                .get_mut(&id)
                .ok_or(QueueError::ExecutionNotFound(id))?;
            let mut events = self.events();
            let ready = exec
                .resume(&mut events)
                .map_err(not_allowed(id, "resume"))?;
            let status = exec.status();
            for node in ready {
                inner.ready.push_back(JobKey {
                    execution: id,
                    node,
                });
            }
            self.emit(events.list);
            status
        };
        self.shared.notify.notify_waiters();
        Ok(status)
    }

    async fn cancel(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError> {
        let mut inner = self.lock();
        let exec = inner
            .executions
            .get_mut(&id)
            .ok_or(QueueError::ExecutionNotFound(id))?;
        let mut events = self.events();
        let changed = exec
            .cancel(&mut events)
            .map_err(not_allowed(id, "cancel"))?;
        self.emit(events.list);
        if changed {
            inner.mark_finished(Instant::now(), id);
            let _ = self.shared.cancels.send(id);
        }
        Ok(ExecutionStatus::Cancelled)
    }

    async fn cancellations(&self) -> Result<CancelStream, QueueError> {
        let rx = self.shared.cancels.subscribe();
        Ok(cancel_stream(rx))
    }
}

#[async_trait]
impl SharedLimits for MemoryQueue {
    async fn breaker_acquire(
        &self,
        key: &str,
        config: &spane_core::CircuitBreakerConfig,
        probe_lease: Duration,
    ) -> Result<spane_core::BreakerDecision, QueueError> {
        let mut inner = self.lock();
        let state = inner.breakers.entry(key.to_owned()).or_default();
        Ok(state.acquire(config, spane_core::now_millis(), probe_lease))
    }

    async fn breaker_record(
        &self,
        key: &str,
        config: &spane_core::CircuitBreakerConfig,
        success: bool,
    ) -> Result<(), QueueError> {
        let mut inner = self.lock();
        let state = inner.breakers.entry(key.to_owned()).or_default();
        state.record(config, success, spane_core::now_millis());
        Ok(())
    }

    async fn breakers(&self) -> Result<Vec<BreakerInfo>, QueueError> {
        Ok(self
            .lock()
            .breakers
            .iter()
            .map(|(key, state)| BreakerInfo {
                key: key.clone(),
                state: *state,
            })
            .collect())
    }

    async fn reset_breaker(&self, key: &str) -> Result<bool, QueueError> {
        Ok(self.lock().breakers.remove(key).is_some())
    }

    async fn rate_acquire(
        &self,
        key: &str,
        max: u32,
        per: Duration,
    ) -> Result<Option<Duration>, QueueError> {
        // Slots are spaced evenly, one every `per / max`; each call reserves the next free one.
        let now = spane_core::now_millis() as f64;
        let spacing = per.as_secs_f64() * 1000.0 / f64::from(max.max(1));
        let mut inner = self.lock();
        let next = inner.windows.entry(key.to_owned()).or_insert(now);
        let slot = next.max(now);
        *next = slot + spacing;
        let wait = (slot - now).ceil() as u64;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }
}

#[async_trait]
impl PayloadStore for MemoryQueue {
    async fn put_payload(
        &self,
        execution: ExecutionId,
        json: String,
    ) -> Result<String, QueueError> {
        let value: Value = serde_json::from_str(&json).map_err(|e| QueueError::Backend {
            reason: format!("payload is not JSON: {e}"),
            source: None,
        })?;
        let key = format!("{execution}:{}", ulid::Ulid::new());
        self.lock().payloads.insert(key.clone(), (execution, value));
        Ok(key)
    }

    async fn get_payload(&self, key: &str) -> Result<Option<Value>, QueueError> {
        Ok(self.lock().payloads.get(key).map(|(_, v)| v.clone()))
    }
}

#[async_trait]
impl ChildExecutions for MemoryQueue {
    async fn bind_child(
        &self,
        job: &ClaimedJob,
        proposed: ExecutionId,
    ) -> Result<Option<ExecutionId>, QueueError> {
        let mut inner = self.lock();
        let key = JobKey {
            execution: job.execution_id,
            node: job.node,
        };
        if inner.leases.get(&key).map(|l| l.token) != Some(job.token) {
            return Ok(None);
        }
        let Some(child) = inner
            .executions
            .get_mut(&job.execution_id)
            .and_then(|e| e.bind_child(job.node, proposed))
        else {
            return Ok(None);
        };
        let kids = inner.kids.entry(job.execution_id).or_default();
        if !kids.contains(&child) {
            kids.push(child);
        }
        Ok(Some(child))
    }

    async fn ended_children(
        &self,
        older_than: Duration,
        max: usize,
    ) -> Result<Vec<ExecutionId>, QueueError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .ended
            .iter()
            .filter(|(at, _)| now.duration_since(*at) >= older_than)
            .take(max)
            .map(|(_, id)| *id)
            .collect())
    }

    async fn awaiting_parent(
        &self,
        parent: ExecutionId,
        node_id: &str,
        child: ExecutionId,
    ) -> Result<Option<ClaimedJob>, QueueError> {
        let claim = {
            let inner = self.lock();
            let Some(exec) = inner.executions.get(&parent) else {
                return Ok(None);
            };
            let Some(node) = exec.index_of(node_id) else {
                return Ok(None);
            };
            let key = JobKey {
                execution: parent,
                node,
            };
            let token = inner
                .leases
                .get(&key)
                .map(|l| l.token)
                .or_else(|| inner.awaiting.get(&key).copied());
            token.and_then(|t| exec.awaiting(node, child, t, self.shared.config.lease))
        };
        Ok(claim.map(Claim::into_job))
    }

    async fn forget_ended(&self, child: ExecutionId) -> Result<(), QueueError> {
        self.lock().ended.retain(|(_, c)| *c != child);
        Ok(())
    }

    async fn children(&self, parent: ExecutionId) -> Result<Vec<ExecutionId>, QueueError> {
        Ok(self.lock().kids.get(&parent).cloned().unwrap_or_default())
    }
}

#[async_trait]
impl ExecutionInspection for MemoryQueue {
    async fn snapshot(&self, id: ExecutionId) -> Result<Option<Inspected>, QueueError> {
        let inner = self.lock();
        let Some(exec) = inner.executions.get(&id) else {
            return Ok(None);
        };
        let now_ms = spane_core::now_millis();
        let now = Instant::now();
        let mut snap = exec.snapshot(now_ms);
        snap.queue_depth = inner.ready.len() as u64;
        for (pos, key) in inner.ready.iter().enumerate() {
            if key.execution == id
                && let Some(n) = snap.nodes.get_mut(key.node)
                && n.ahead.is_none()
            {
                n.ahead = Some(pos as u64);
            }
        }
        for (key, lease) in &inner.leases {
            if key.execution != id {
                continue;
            }
            let left = lease.expires.saturating_duration_since(now).as_millis() as i64;
            let expired = now.saturating_duration_since(lease.expires).as_millis() as i64;
            snap.nodes[key.node].lease = Some(
                spane_core::explain::LeaseSnapshot::new(now_ms + left - expired)
                    .held_by(&*lease.worker, Some(lease.since)),
            );
        }
        for dead in inner.dlq.iter().filter(|d| d.execution_id == id) {
            if let Some(i) = exec.index_of(&dead.node_id) {
                snap.nodes[i].dead_letter = Some(spane_core::explain::DeadLetterSnapshot::new(
                    dead.error.clone(),
                    dead.reason == crate::dlq::DeadLetterReason::Stalled,
                    dead.attempts,
                    dead.failed_at,
                ));
            }
        }
        Ok(Some(Inspected::new(exec.dag().clone(), snap)))
    }
}

#[async_trait]
impl WorkerRegistry for MemoryQueue {
    async fn heartbeat(&self, beat: &WorkerBeat) -> Result<(), QueueError> {
        let now = spane_core::now_millis();
        let mut inner = self.lock();
        inner
            .workers
            .retain(|_, b| now - b.seen_at <= FORGET_AFTER_MS);
        let mut beat = beat.clone();
        beat.seen_at = now;
        inner.workers.insert(beat.worker.clone(), beat);
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerBeat>, QueueError> {
        let mut all: Vec<WorkerBeat> = self.lock().workers.values().cloned().collect();
        all.sort_by_key(|b| std::cmp::Reverse(b.seen_at));
        Ok(all)
    }

    async fn forget_worker(&self, worker: &str) -> Result<(), QueueError> {
        self.lock().workers.remove(worker);
        Ok(())
    }
}

#[async_trait]
impl IdempotencyKeys for MemoryQueue {
    async fn reserve(
        &self,
        key: &str,
        execution: ExecutionId,
    ) -> Result<Option<ExecutionId>, QueueError> {
        let now = Instant::now();
        let mut inner = self.lock();
        while let Some((until, _)) = inner.idempotency_expiry.front()
            && *until <= now
        {
            if let Some((_, old)) = inner.idempotency_expiry.pop_front()
                && inner.idempotency.get(&old).is_some_and(|(_, u)| *u <= now)
            {
                inner.idempotency.remove(&old);
            }
        }
        if let Some((existing, _)) = inner.idempotency.get(key) {
            return Ok(Some(*existing));
        }
        let until = now + self.shared.config.retention;
        inner.idempotency.insert(key.to_owned(), (execution, until));
        inner.idempotency_expiry.push_back((until, key.to_owned()));
        Ok(None)
    }

    async fn release(&self, key: &str, execution: ExecutionId) -> Result<(), QueueError> {
        let mut inner = self.lock();
        if inner
            .idempotency
            .get(key)
            .is_some_and(|(id, _)| *id == execution)
        {
            inner.idempotency.remove(key);
        }
        Ok(())
    }
}
