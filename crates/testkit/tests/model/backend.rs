//! One backend under test as the driver uses it: its queue, the events it emitted, the jobs the
//! driver holds (renewed until the plan lets one expire), and waits that poll a condition until
//! a deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, StreamsInterface};
use spane_core::{EngineEvent, EventSink, ExecutionId, ExecutionRecord, NodeIndex, NodeStatus};
use spane_queue::backend::{ClaimedJob, CommitOutcome, NodeCommit, StartExecution, WorkerId};
use spane_queue::{
    ExecutionQueue, MemoryQueue, MemoryQueueConfig, QueueError, RedisConfig, RedisQueue,
};
use tokio::time::Instant;

use crate::oracle::{AfterExpiry, ControlAnswer, DeadLetterView, JobView, reason_name};

/// How long one call to a backend may take.
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// How long the driver waits for a condition (jobs to come out, a lease to expire).
const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// The `wait` of a claim while jobs are expected.
const CLAIM_WAIT: Duration = Duration::from_millis(25);
/// Clock slack when deciding whether a lease may have run out (Redis counts whole ms).
const CLOCK_SLACK: Duration = Duration::from_millis(20);

/// Starts the message of a failure that comes from the machine, not from a backend: the driver
/// was starved for longer than a lease, so a job it holds may have expired unplanned. The test
/// runs such a case again on fresh queues.
pub(crate) const TOO_SLOW: &str = "[too slow for the lease]";

/// Collects the events a [`MemoryQueue`] emits.
#[derive(Debug, Default)]
struct Collector(Mutex<Vec<EngineEvent>>);

impl EventSink for Collector {
    fn emit(&self, events: Vec<EngineEvent>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(events);
    }
}

/// Where a backend's events are read.
enum Events {
    Memory(Arc<Collector>),
    /// The stream the Redis scripts append to, read from after `after`.
    Redis {
        client: Client,
        stream: String,
        after: String,
    },
}

/// A claimed job the driver holds.
struct Held {
    job: ClaimedJob,
    /// When the call that last claimed or renewed it was sent: its lease runs from a moment
    /// after this.
    renewed: Instant,
}

impl Held {
    /// Whether its lease may have run out by `at`.
    fn may_have_expired(&self, at: Instant, lease: Duration) -> bool {
        at.duration_since(self.renewed) + CLOCK_SLACK >= lease
    }
}

/// A backend under test, running one execution.
pub(crate) struct Side {
    pub(crate) name: &'static str,
    queue: Arc<dyn ExecutionQueue>,
    worker: WorkerId,
    execution: ExecutionId,
    lease: Duration,
    events: Events,
    jobs: BTreeMap<NodeIndex, Held>,
    /// Sub-workflow nodes waiting for their child (no lease, nothing to renew).
    awaiting: BTreeMap<NodeIndex, ExecutionId>,
    /// Redis: the client and the key prefix to delete when the case ends.
    keys: Option<(Client, String)>,
}

/// The time a call to a backend may take, as an error.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(CALL_LIMIT, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {CALL_LIMIT:?}"))
}

/// The Redis of the machine: `SPANE_REDIS_URL` / `REDIS_URL`, or the standard local port.
pub(crate) fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fred client for reading the event stream and deleting keys.
pub(crate) async fn redis_client(url: &str) -> Result<Client, String> {
    let config = Config::from_url(url).map_err(|e| format!("Redis URL {url:?}: {e}"))?;
    let client = Builder::from_config(config)
        .build()
        .map_err(|e| format!("Redis client: {e}"))?;
    bounded("connecting to Redis", client.init())
        .await?
        .map_err(|e| format!("Redis at {url} is needed for this test: {e}"))?;
    Ok(client)
}

/// Timestamps removed, so that events compare by content.
fn normalized(mut e: EngineEvent) -> EngineEvent {
    match &mut e {
        EngineEvent::Node(n) => n.timestamp = 0,
        EngineEvent::Workflow(w) => w.timestamp = 0,
        _ => {}
    }
    e
}

fn queue_error(side: &str, what: &str, e: QueueError) -> String {
    format!("{side}: {what} failed: {e}")
}

impl Side {
    /// A fresh [`MemoryQueue`] whose claims last `lease`.
    pub(crate) fn memory(execution: ExecutionId, lease: Duration) -> Self {
        let sink = Arc::new(Collector::default());
        let config = MemoryQueueConfig::default().lease(lease);
        Self {
            name: "memory",
            queue: Arc::new(MemoryQueue::with_config(sink.clone(), config)),
            worker: WorkerId::new(),
            execution,
            lease,
            events: Events::Memory(sink),
            jobs: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            keys: None,
        }
    }

    /// A fresh [`RedisQueue`] under a key prefix of its own, whose claims last `lease` and
    /// whose jobs fail as stalled after `max_stalled` expiries.
    pub(crate) async fn redis(
        client: &Client,
        execution: ExecutionId,
        lease: Duration,
        max_stalled: u32,
    ) -> Result<Self, String> {
        let url = redis_url();
        let prefix = format!(
            "spane-test-model-{}",
            ExecutionId::new().to_string().to_lowercase()
        );
        let config = RedisConfig::new(&url)
            .prefix(prefix.clone())
            .lease(lease)
            .max_stalled(max_stalled)
            .reclaim_every(Duration::from_millis(10))
            .retention(Duration::from_secs(600));
        let queue = bounded("RedisQueue::connect", RedisQueue::connect(config))
            .await?
            .map_err(|e| format!("Redis at {url} is needed for this test: {e}"))?;
        let stream = queue
            .event_streams()
            .into_iter()
            .next()
            .ok_or("the Redis queue names no event stream")?;
        Ok(Self {
            name: "redis",
            queue: Arc::new(queue),
            worker: WorkerId::new(),
            execution,
            lease,
            events: Events::Redis {
                client: client.clone(),
                stream,
                after: "-".to_owned(),
            },
            jobs: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            keys: Some((client.clone(), prefix)),
        })
    }

    /// Deletes the keys of a Redis side.
    pub(crate) async fn cleanup(&self) {
        let Some((client, prefix)) = &self.keys else {
            return;
        };
        let pattern = format!("{prefix}:*");
        let mut cursor = "0".to_owned();
        for _ in 0..1000 {
            let page: Result<(String, Vec<String>), _> = client
                .scan_page(cursor.clone(), pattern.as_str(), Some(1000), None)
                .await;
            let Ok((next, keys)) = page else { return };
            if !keys.is_empty() {
                let _: Result<i64, _> = client.unlink(keys).await;
            }
            if next == "0" {
                return;
            }
            cursor = next;
        }
    }

    /// `start_execution`.
    pub(crate) async fn start(&self, start: StartExecution) -> Result<(), String> {
        bounded("start_execution", self.queue.start_execution(start))
            .await?
            .map_err(|e| queue_error(self.name, "start_execution", e))
    }

    /// The events emitted since the last call, without timestamps.
    pub(crate) async fn events(&mut self) -> Result<Vec<EngineEvent>, String> {
        let execution = self.execution;
        let events = match &mut self.events {
            Events::Memory(sink) => std::mem::take(
                &mut *sink
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
            Events::Redis {
                client,
                stream,
                after,
            } => {
                let entries: Vec<(String, HashMap<String, String>)> = bounded(
                    "XRANGE",
                    client.xrange_values(stream.as_str(), after.as_str(), "+", None),
                )
                .await?
                .map_err(|e| format!("redis: reading the events: {e}"))?;
                let mut out = Vec::new();
                for (id, fields) in entries {
                    let text = fields
                        .get("e")
                        .ok_or_else(|| format!("redis: stream entry {id} has no `e` field"))?;
                    let events: Vec<EngineEvent> = serde_json::from_str(text).map_err(|e| {
                        format!("redis: stream entry {id} is not a list of events ({e}): {text}")
                    })?;
                    out.extend(events);
                    *after = format!("({id}");
                }
                out
            }
        };
        Ok(events
            .into_iter()
            .filter(|e| e.execution_id() == execution)
            .map(normalized)
            .collect())
    }

    /// The nodes of the jobs the driver holds.
    pub(crate) fn held(&self) -> Vec<NodeIndex> {
        let mut nodes: Vec<NodeIndex> = self
            .jobs
            .keys()
            .chain(self.awaiting.keys())
            .copied()
            .collect();
        nodes.sort_unstable();
        nodes
    }

    fn links(&self) -> Result<&dyn spane_queue::ChildExecutions, String> {
        self.queue
            .sub_workflows()
            .ok_or_else(|| format!("{}: no sub-workflow links", self.name))
    }

    /// Binds `proposed` as the child of the held job of `node`.
    pub(crate) async fn bind(
        &self,
        node: NodeIndex,
        proposed: ExecutionId,
    ) -> Result<Option<ExecutionId>, String> {
        let held = self
            .jobs
            .get(&node)
            .ok_or_else(|| format!("{}: no claim of node {node} to bind", self.name))?;
        bounded("bind_child", self.links()?.bind_child(&held.job, proposed))
            .await?
            .map_err(|e| queue_error(self.name, "bind_child", e))
    }

    /// Commits `AwaitChild` for the held job of `node`; the node then waits, unleased.
    pub(crate) async fn commit_await(
        &mut self,
        node: NodeIndex,
        child: ExecutionId,
    ) -> Result<CommitOutcome, String> {
        let outcome = self.commit(node, NodeCommit::AwaitChild { child }).await?;
        self.awaiting.insert(node, child);
        Ok(outcome)
    }

    /// Commits the end of the child of `node` for it, through `awaiting_parent`, which must
    /// give the node's job before and nothing after.
    pub(crate) async fn commit_child_end(
        &mut self,
        node: NodeIndex,
        commit: NodeCommit,
    ) -> Result<CommitOutcome, String> {
        let child = self
            .awaiting
            .remove(&node)
            .ok_or_else(|| format!("{}: node {node} awaits no child", self.name))?;
        let id = crate::plan::node_id(node);
        let links = self.links()?;
        let job = bounded(
            "awaiting_parent",
            links.awaiting_parent(self.execution, &id, child),
        )
        .await?
        .map_err(|e| queue_error(self.name, "awaiting_parent", e))?
        .ok_or_else(|| format!("{}: {id} does not await its child {child}", self.name))?;
        let outcome = bounded("commit", self.queue.commit(&job, commit))
            .await?
            .map_err(|e| queue_error(self.name, "commit", e))?;
        let again = bounded(
            "awaiting_parent",
            links.awaiting_parent(self.execution, &id, child),
        )
        .await?
        .map_err(|e| queue_error(self.name, "awaiting_parent", e))?;
        if again.is_some() {
            return Err(format!(
                "{}: {id} still awaits its child after the child's end was committed",
                self.name
            ));
        }
        Ok(outcome)
    }

    /// One claim call; the jobs are held (and renewed) until committed.
    async fn claim(&mut self, wait: Duration) -> Result<Vec<ClaimedJob>, String> {
        let sent = Instant::now();
        let jobs = bounded("claim", self.queue.claim(&self.worker, 64, wait))
            .await?
            .map_err(|e| queue_error(self.name, "claim", e))?;
        let answered = Instant::now();
        for job in &jobs {
            if job.execution_id != self.execution {
                return Err(format!(
                    "{}: claimed a job of another execution ({})",
                    self.name, job.execution_id
                ));
            }
            if let Some(held) = self.jobs.get(&job.node) {
                let slow = if held.may_have_expired(answered, self.lease) {
                    TOO_SLOW
                } else {
                    ""
                };
                return Err(format!(
                    "{slow}{}: handed out {} while the driver holds a claim of it (renewed {:?} before)",
                    self.name,
                    job.node_id,
                    answered.duration_since(held.renewed)
                ));
            }
            self.jobs.insert(
                job.node,
                Held {
                    job: job.clone(),
                    renewed: sent,
                },
            );
        }
        Ok(jobs)
    }

    /// Renews the held jobs whose lease is a quarter gone, as a worker would.
    pub(crate) async fn renew_due(&mut self) -> Result<(), String> {
        for held in self.jobs.values_mut() {
            let sent = Instant::now();
            if sent.duration_since(held.renewed) < self.lease / 4 {
                continue;
            }
            let alive = bounded("renew", self.queue.renew(&held.job))
                .await?
                .map_err(|e| queue_error(self.name, "renew", e))?;
            if !alive {
                let slow = if held.may_have_expired(Instant::now(), self.lease) {
                    TOO_SLOW
                } else {
                    ""
                };
                return Err(format!(
                    "{slow}{}: renew of {} refused (renewed {:?} before, lease {:?})",
                    self.name,
                    held.job.node_id,
                    sent.duration_since(held.renewed),
                    self.lease
                ));
            }
            held.renewed = sent;
        }
        Ok(())
    }

    /// Claims until every node of `expected` is handed out (jobs waiting on tiny delays come
    /// out once due) and none of `delayed_holds` shows `delayed` any more, then once more
    /// without waiting. Returns the jobs handed out, in node order; stops early on a job that
    /// was not expected.
    pub(crate) async fn claim_all(
        &mut self,
        expected: &BTreeSet<String>,
        delayed_holds: &[String],
    ) -> Result<Vec<JobView>, String> {
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut got: BTreeMap<String, JobView> = BTreeMap::new();
        loop {
            let missing = expected.iter().any(|n| !got.contains_key(n));
            let waiting = !delayed_holds.is_empty();
            let wait = if missing || waiting {
                CLAIM_WAIT
            } else {
                Duration::ZERO
            };
            let jobs = self.claim(wait).await?;
            let extra = jobs.iter().any(|j| !expected.contains(&j.node_id));
            got.extend(jobs.iter().map(|j| (j.node_id.clone(), JobView::of(j))));
            self.renew_due().await?;
            if extra {
                break;
            }
            let missing = expected.iter().any(|n| !got.contains_key(n));
            if !missing {
                if !waiting {
                    break;
                }
                let record = self.record().await?;
                let still = delayed_holds.iter().any(|n| {
                    record.node_results.get(n).map(|r| r.status) == Some(NodeStatus::Delayed)
                });
                if !still {
                    // Anything else that comes out now was not expected.
                    let jobs = self.claim(Duration::ZERO).await?;
                    got.extend(jobs.iter().map(|j| (j.node_id.clone(), JobView::of(j))));
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let mut jobs: Vec<JobView> = got.into_values().collect();
        jobs.sort_by_key(|j| node_index(&j.node));
        Ok(jobs)
    }

    /// Stops renewing the job of `node`, waits until its lease expires and a claim sees it,
    /// and reports what became of it. The old claim is returned for a stale commit.
    pub(crate) async fn let_expire(
        &mut self,
        node: NodeIndex,
    ) -> Result<(AfterExpiry, ClaimedJob), String> {
        let held = self
            .jobs
            .remove(&node)
            .ok_or_else(|| format!("{}: no claim of node {node} to let expire", self.name))?;
        let old = held.job;
        let deadline = Instant::now() + WAIT_LIMIT + self.lease;
        loop {
            let jobs = self.claim(CLAIM_WAIT).await?;
            self.renew_due().await?;
            if let Some(job) = jobs.iter().find(|j| j.node == node) {
                if jobs.len() > 1 {
                    return Err(format!(
                        "{}: the claim that reclaimed {} also handed out {:?}",
                        self.name,
                        old.node_id,
                        jobs.iter().map(|j| &j.node_id).collect::<Vec<_>>()
                    ));
                }
                return Ok((AfterExpiry::Reclaimed(JobView::of(job)), old));
            }
            if let Some(other) = jobs.first() {
                return Err(format!(
                    "{}: waiting for the lease of {} to expire, the claim handed out {}",
                    self.name, old.node_id, other.node_id
                ));
            }
            let record = self.record().await?;
            let shown = record.node_results.get(&old.node_id).map(|r| r.status);
            if shown != Some(NodeStatus::Running) {
                return Ok((AfterExpiry::Shown(shown), old));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: the lease of {} ({:?}) did not expire within {:?}",
                    self.name,
                    old.node_id,
                    self.lease,
                    WAIT_LIMIT + self.lease
                ));
            }
        }
    }

    /// Commits the held job of `node`.
    pub(crate) async fn commit(
        &mut self,
        node: NodeIndex,
        commit: NodeCommit,
    ) -> Result<CommitOutcome, String> {
        let held = self
            .jobs
            .remove(&node)
            .ok_or_else(|| format!("{}: no claim of node {node} to commit", self.name))?;
        let outcome = bounded("commit", self.queue.commit(&held.job, commit))
            .await?
            .map_err(|e| queue_error(self.name, "commit", e))?;
        if outcome == CommitOutcome::Stale && held.may_have_expired(Instant::now(), self.lease) {
            return Err(format!(
                "{TOO_SLOW}{}: the commit of {} was stale, and its lease may have run out",
                self.name, held.job.node_id
            ));
        }
        Ok(outcome)
    }

    /// Commits a claim the driver no longer holds.
    pub(crate) async fn commit_old(
        &self,
        job: &ClaimedJob,
        commit: NodeCommit,
    ) -> Result<CommitOutcome, String> {
        bounded("commit", self.queue.commit(job, commit))
            .await?
            .map_err(|e| queue_error(self.name, "commit", e))
    }

    /// The execution's record.
    pub(crate) async fn record(&self) -> Result<ExecutionRecord, String> {
        bounded("execution", self.queue.execution(self.execution))
            .await?
            .map_err(|e| queue_error(self.name, "execution", e))?
            .ok_or_else(|| format!("{}: the execution is gone", self.name))
    }

    /// Every dead letter, in node order.
    pub(crate) async fn dead_letters(&self) -> Result<Vec<DeadLetterView>, String> {
        let dlq = self
            .queue
            .dead_letters()
            .ok_or_else(|| format!("{}: no dead-letter queue", self.name))?;
        let items = bounded("list_dead_letters", dlq.list_dead_letters(0, 10_000))
            .await?
            .map_err(|e| queue_error(self.name, "list_dead_letters", e))?;
        let mut out: Vec<DeadLetterView> = items
            .into_iter()
            .map(|d| (d.node_id, reason_name(d.reason)))
            .collect();
        out.sort_by_key(|(n, _)| node_index(n));
        Ok(out)
    }

    /// `retry_dead_letter` of `node_id`.
    pub(crate) async fn retry_dead_letter(&self, node_id: &str) -> Result<bool, String> {
        let dlq = self
            .queue
            .dead_letters()
            .ok_or_else(|| format!("{}: no dead-letter queue", self.name))?;
        bounded(
            "retry_dead_letter",
            dlq.retry_dead_letter(self.execution, node_id),
        )
        .await?
        .map_err(|e| queue_error(self.name, "retry_dead_letter", e))
    }

    /// `pause`, `resume` or `cancel`.
    pub(crate) async fn control(&self, action: &str) -> Result<ControlAnswer, String> {
        let control = self
            .queue
            .control()
            .ok_or_else(|| format!("{}: no execution control", self.name))?;
        let id = self.execution;
        let answer = match action {
            "pause" => bounded(action, control.pause(id)).await?,
            "resume" => bounded(action, control.resume(id)).await?,
            "cancel" => bounded(action, control.cancel(id)).await?,
            other => return Err(format!("unknown control action {other}")),
        };
        match answer {
            Ok(status) => Ok(Ok(status)),
            Err(QueueError::NotAllowed { status, .. }) => Ok(Err(status)),
            Err(e) => Err(queue_error(self.name, action, e)),
        }
    }
}

/// The index of node `n<i>` (node ids are generated that way).
pub(crate) fn node_index(id: &str) -> usize {
    id.strip_prefix('n')
        .and_then(|i| i.parse().ok())
        .unwrap_or(usize::MAX)
}
