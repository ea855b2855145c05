//! "Why is this execution not progressing?", decided once for every backend.
//!
//! A backend fills an [`ExecutionSnapshot`] from its real state (node states, leases, due
//! times, bound children, dead letters, the ready queue) and [`explain`] turns it into an
//! [`Explanation`]: for every node not finished, the single most specific [`Reason`] with its
//! details, and one line for a person to read first. The function is pure, so the two backends
//! cannot disagree on a reason; only what they put in the snapshot differs, and both fill every
//! field.
//!
//! The reason of a node, in the order it is checked:
//!
//! 1. failed for good: in the dead-letter queue ([`Reason::DeadLettered`]) or, when its
//!    execution was cancelled, without an item ([`Reason::Failed`]);
//! 2. waiting for parents ([`Reason::WaitingForParents`], naming the unresolved ones);
//! 3. held: by a pause ([`Reason::Paused`]) or because the execution ended
//!    ([`Reason::Held`]);
//! 4. leased: running on a worker ([`Reason::Running`]) or its lease ran out
//!    ([`Reason::LeaseExpired`]);
//! 5. bound to a child execution and not leased ([`Reason::WaitingForChild`]);
//! 6. due later: a delay node's wait ([`Reason::Delay`]), a rate-limit slot
//!    ([`Reason::RateLimited`]), an open circuit breaker ([`Reason::CircuitOpen`]), a retry
//!    backoff ([`Reason::RetryBackoff`]);
//! 7. otherwise it is ready and no worker has claimed it ([`Reason::Queued`]), with how long,
//!    how many jobs are ahead of it, and whether any live worker has an executor for its type.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::breaker::{BreakerState, BreakerStatus};
use crate::dag::{CompiledNode, CompiledWorkflow, NodeIndex};
use crate::id::ExecutionId;
use crate::registry::NodeRegistry;
use crate::state::NodeState;
use crate::status::{ExecutionStatus, NodeStatus};

/// One execution as a backend sees it now: what [`explain`] reads.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExecutionSnapshot {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The definition version it runs.
    pub workflow_version: u32,
    /// Its status.
    pub status: ExecutionStatus,
    /// Why it failed, once it has.
    pub error: Option<String>,
    /// The execution this one re-runs, when it was started by a re-run.
    pub rerun_of: Option<ExecutionId>,
    /// Per node, in the definition's order (indexed like [`CompiledWorkflow::nodes`]).
    pub nodes: Vec<NodeSnapshot>,
    /// Jobs in the backend's ready queue (all executions).
    pub queue_depth: u64,
    /// The backend's clock when the snapshot was taken, ms since the Unix epoch.
    pub now: i64,
}

impl ExecutionSnapshot {
    /// An empty snapshot of a running execution with `nodes` nodes, for a backend to fill.
    pub fn new(execution_id: ExecutionId, workflow_version: u32, nodes: usize, now: i64) -> Self {
        Self {
            execution_id,
            workflow_version,
            status: ExecutionStatus::Running,
            error: None,
            rerun_of: None,
            nodes: vec![NodeSnapshot::default(); nodes],
            queue_depth: 0,
            now,
        }
    }
}

/// One node in an [`ExecutionSnapshot`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeSnapshot {
    /// Its state in the execution's graph (with the routes of a completed node).
    pub state: NodeState,
    /// What users see.
    pub shown: Option<NodeStatus>,
    /// The attempt last handed out (0 before the first claim).
    pub attempt: u32,
    /// The last error.
    pub error: Option<String>,
    /// When it last became claimable, or, while it waits for a retry, a delay or a rate-limit
    /// slot, when it will be (ms since the epoch).
    pub ready_at: Option<i64>,
    /// A delay node whose wait was committed, or a node postponed to its rate-limit slot.
    pub delay_elapsed: bool,
    /// The lease of its running attempt.
    pub lease: Option<LeaseSnapshot>,
    /// The child execution bound to its current run (a sub-workflow node).
    pub child: Option<ExecutionId>,
    /// Its dead-letter item.
    pub dead_letter: Option<DeadLetterSnapshot>,
    /// Jobs ahead of it in the ready queue, when it is there and the backend looked that far.
    pub ahead: Option<u64>,
}

impl Default for NodeSnapshot {
    fn default() -> Self {
        Self {
            state: NodeState::Waiting,
            shown: None,
            attempt: 0,
            error: None,
            ready_at: None,
            delay_elapsed: false,
            lease: None,
            child: None,
            dead_letter: None,
            ahead: None,
        }
    }
}

/// The lease of a running attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseSnapshot {
    /// When it expires unless renewed (ms since the epoch).
    pub expires_at: i64,
    /// The worker holding it, when known.
    pub worker: Option<String>,
    /// When that worker claimed the job (ms since the epoch), when known.
    pub since: Option<i64>,
}

impl LeaseSnapshot {
    /// A lease until `expires_at`, holder unknown.
    pub fn new(expires_at: i64) -> Self {
        Self {
            expires_at,
            worker: None,
            since: None,
        }
    }

    /// Names its holder and when it claimed the job.
    pub fn held_by(mut self, worker: impl Into<String>, since: Option<i64>) -> Self {
        self.worker = Some(worker.into());
        self.since = since;
        self
    }
}

/// A node's dead-letter item, as [`explain`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeadLetterSnapshot {
    /// The last error.
    pub error: String,
    /// Its lease expired too often (instead of failing).
    pub stalled: bool,
    /// Attempts made.
    pub attempts: u32,
    /// When it failed for good (ms since the epoch).
    pub failed_at: i64,
}

impl DeadLetterSnapshot {
    /// An item.
    pub fn new(error: impl Into<String>, stalled: bool, attempts: u32, failed_at: i64) -> Self {
        Self {
            error: error.into(),
            stalled,
            attempts,
            failed_at,
        }
    }
}

/// A worker as the heartbeat registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerView {
    /// Its id.
    pub id: String,
    /// Whether it sent a heartbeat recently enough to count as alive.
    pub alive: bool,
    /// The node types it has executors for.
    pub types: Vec<String>,
}

impl WorkerView {
    /// A worker.
    pub fn new(id: impl Into<String>, alive: bool, types: Vec<String>) -> Self {
        Self {
            id: id.into(),
            alive,
            types,
        }
    }
}

/// What [`explain`] reads beside the snapshot.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ExplainContext<'a> {
    /// The workers the backend knows of (`None`: it keeps no registry).
    pub workers: Option<&'a [WorkerView]>,
    /// Circuit-breaker states, by key.
    pub breakers: &'a BTreeMap<String, BreakerState>,
    /// The registry that names each external node's breaker key.
    pub registry: Option<&'a NodeRegistry>,
}

impl<'a> ExplainContext<'a> {
    /// A context with workers and breakers.
    pub fn new(
        workers: Option<&'a [WorkerView]>,
        breakers: &'a BTreeMap<String, BreakerState>,
        registry: Option<&'a NodeRegistry>,
    ) -> Self {
        Self {
            workers,
            breakers,
            registry,
        }
    }
}

/// A parent a node waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ParentWait {
    /// The parent.
    pub node_id: String,
    /// What users see of it (`None`: not started).
    pub status: Option<NodeStatus>,
}

/// Why one node has not finished: the most specific reason, with its details.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Reason {
    /// Some parents have not resolved.
    WaitingForParents {
        /// The unresolved parents and their states.
        parents: Vec<ParentWait>,
    },
    /// Ready, and no worker has claimed it.
    Queued {
        /// When it became ready (ms since the epoch).
        ready_since: Option<i64>,
        /// How long it has waited (ms).
        waited_ms: u64,
        /// Jobs ahead of it in the ready queue, when known.
        ahead: Option<u64>,
        /// Jobs in the ready queue.
        queue_depth: u64,
        /// Whether it needs an executor (built-in types do not).
        needs_executor: bool,
        /// Live workers (`None`: the backend keeps no registry).
        live_workers: Option<usize>,
        /// Live workers with an executor for its type (`None`: unknown).
        workers_with_executor: Option<usize>,
    },
    /// An attempt is running.
    Running {
        /// The attempt.
        attempt: u32,
        /// The worker running it, when known.
        worker: Option<String>,
        /// When that worker claimed it (ms since the epoch), when known.
        since: Option<i64>,
        /// When the lease expires unless renewed (ms since the epoch).
        lease_until: i64,
        /// Whether that worker is alive (`None`: unknown).
        worker_alive: Option<bool>,
    },
    /// The running attempt's lease ran out: the job is reclaimed at the next sweep.
    LeaseExpired {
        /// The attempt.
        attempt: u32,
        /// The worker that held it, when known.
        worker: Option<String>,
        /// When the lease expired (ms since the epoch).
        lease_until: i64,
        /// Whether that worker is alive (`None`: unknown).
        worker_alive: Option<bool>,
    },
    /// Held by a pause of the execution.
    Paused,
    /// Held because the execution ended (failed or cancelled); a dead-letter retry revives it.
    Held {
        /// The execution's status.
        execution_status: ExecutionStatus,
    },
    /// A delay node waiting until `until`.
    Delay {
        /// When the wait ends (ms since the epoch).
        until: i64,
    },
    /// Postponed to its rate-limit slot.
    RateLimited {
        /// When the slot comes (ms since the epoch).
        until: i64,
    },
    /// Its last attempt was rejected by an open circuit breaker; it runs again after `until`.
    CircuitOpen {
        /// The breaker's key (`{type}:{key}`).
        breaker: String,
        /// When the breaker lets a probe through (ms since the epoch).
        reopens_at: i64,
        /// When the node is due again (ms since the epoch).
        until: Option<i64>,
    },
    /// Waiting to retry after a failed attempt.
    RetryBackoff {
        /// The attempt that failed.
        attempt: u32,
        /// Its error.
        error: Option<String>,
        /// When it runs again (ms since the epoch).
        until: Option<i64>,
    },
    /// Waiting for its child execution.
    WaitingForChild {
        /// The child.
        child: ExecutionId,
        /// The child's own explanation (filled by the caller, which reads the child).
        #[serde(skip_serializing_if = "Option::is_none")]
        explanation: Option<Box<Explanation>>,
    },
    /// Failed for good and kept in the dead-letter queue.
    DeadLettered {
        /// The item.
        item: DeadLetterSnapshot,
    },
    /// Failed for good without a dead-letter item (its execution was cancelled).
    Failed {
        /// The error.
        error: Option<String>,
    },
}

impl Reason {
    /// A short name of the reason (`waitingForParents`, `queued`, ...), as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WaitingForParents { .. } => "waitingForParents",
            Self::Queued { .. } => "queued",
            Self::Running { .. } => "running",
            Self::LeaseExpired { .. } => "leaseExpired",
            Self::Paused => "paused",
            Self::Held { .. } => "held",
            Self::Delay { .. } => "delay",
            Self::RateLimited { .. } => "rateLimited",
            Self::CircuitOpen { .. } => "circuitOpen",
            Self::RetryBackoff { .. } => "retryBackoff",
            Self::WaitingForChild { .. } => "waitingForChild",
            Self::DeadLettered { .. } => "deadLettered",
            Self::Failed { .. } => "failed",
        }
    }

    /// How much a person should read this first (higher first): what needs an operator
    /// before what only needs time.
    fn urgency(&self) -> u8 {
        match self {
            Self::DeadLettered { .. } | Self::Failed { .. } => 90,
            Self::LeaseExpired { .. } => 80,
            Self::Running {
                worker_alive: Some(false),
                ..
            } => 80,
            Self::Queued {
                needs_executor: true,
                workers_with_executor: Some(0),
                ..
            } => 75,
            Self::WaitingForChild { .. } => 70,
            Self::CircuitOpen { .. } => 60,
            Self::Paused => 55,
            Self::Held { .. } => 50,
            Self::RetryBackoff { .. } => 45,
            Self::RateLimited { .. } => 40,
            Self::Delay { .. } => 35,
            Self::Queued { .. } => 30,
            Self::Running { .. } => 20,
            Self::WaitingForParents { .. } => 10,
        }
    }
}

/// One node not finished, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NodeExplanation {
    /// The node.
    pub node_id: String,
    /// Its type.
    pub node_type: String,
    /// What users see of it.
    pub status: Option<NodeStatus>,
    /// Why it has not finished.
    pub reason: Reason,
}

/// The answer to "why is this execution not progressing?".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Explanation {
    /// The execution.
    pub execution_id: ExecutionId,
    /// Its workflow.
    pub workflow_id: String,
    /// The definition version it runs.
    pub workflow_version: u32,
    /// Its status.
    pub status: ExecutionStatus,
    /// The one line to read first.
    pub summary: String,
    /// The node the summary is about, when it is about one.
    pub headline: Option<String>,
    /// The execution this one re-runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<ExecutionId>,
    /// Every node not finished, in the definition's order.
    pub nodes: Vec<NodeExplanation>,
}

impl Explanation {
    /// The explanation of `node_id`, when it is not finished.
    pub fn node(&self, node_id: &str) -> Option<&NodeExplanation> {
        self.nodes.iter().find(|n| n.node_id == node_id)
    }

    /// The explanation of an execution known only from history (the queue no longer holds
    /// it): its status and error, no node left.
    pub fn from_history(
        execution_id: ExecutionId,
        workflow_id: impl Into<String>,
        workflow_version: u32,
        status: ExecutionStatus,
        error: Option<&str>,
    ) -> Self {
        let (summary, headline) = summary(status, error, &[]);
        Self {
            execution_id,
            workflow_id: workflow_id.into(),
            workflow_version,
            status,
            summary,
            headline,
            rerun_of: None,
            nodes: Vec::new(),
        }
    }

    /// Recomputes the summary (after a caller filled in a child's explanation).
    pub fn summarize(&mut self) {
        let (summary, headline) = summary(self.status, None, &self.nodes);
        self.summary = summary;
        self.headline = headline;
    }
}

/// Explains `snapshot` of an execution of `dag`.
pub fn explain(
    dag: &CompiledWorkflow,
    snapshot: &ExecutionSnapshot,
    cx: &ExplainContext<'_>,
) -> Explanation {
    let mut nodes = Vec::new();
    for (i, node) in dag.nodes().iter().enumerate() {
        let Some(snap) = snapshot.nodes.get(i) else {
            continue;
        };
        if let Some(reason) = node_reason(dag, snapshot, i, node, snap, cx) {
            nodes.push(NodeExplanation {
                node_id: node.id.clone(),
                node_type: node.node_type.clone(),
                status: snap.shown,
                reason,
            });
        }
    }
    let (summary, headline) = summary(snapshot.status, snapshot.error.as_deref(), &nodes);
    Explanation {
        execution_id: snapshot.execution_id,
        workflow_id: dag.id().to_owned(),
        workflow_version: snapshot.workflow_version,
        status: snapshot.status,
        summary,
        headline,
        rerun_of: snapshot.rerun_of,
        nodes,
    }
}

fn node_reason(
    dag: &CompiledWorkflow,
    snapshot: &ExecutionSnapshot,
    i: NodeIndex,
    node: &CompiledNode,
    snap: &NodeSnapshot,
    cx: &ExplainContext<'_>,
) -> Option<Reason> {
    let now = snapshot.now;
    match &snap.state {
        NodeState::Completed { .. }
        | NodeState::Skipped
        | NodeState::Failed { continued: true } => None,
        NodeState::Failed { continued: false } => Some(match &snap.dead_letter {
            Some(item) => Reason::DeadLettered { item: item.clone() },
            None => Reason::Failed {
                error: snap.error.clone(),
            },
        }),
        NodeState::Waiting => Some(Reason::WaitingForParents {
            parents: node
                .parents
                .iter()
                .filter(|&&p| {
                    !matches!(
                        snapshot.nodes[p].state,
                        NodeState::Completed { .. }
                            | NodeState::Skipped
                            | NodeState::Failed { continued: true }
                    )
                })
                .map(|&p| ParentWait {
                    node_id: dag.node(p).id.clone(),
                    status: snapshot.nodes[p].shown,
                })
                .collect(),
        }),
        NodeState::Held => Some(held(snapshot.status)),
        NodeState::Ready => {
            if let Some(lease) = &snap.lease {
                let alive = lease.worker.as_deref().and_then(|w| worker_alive(cx, w));
                return Some(if lease.expires_at < now {
                    Reason::LeaseExpired {
                        attempt: snap.attempt,
                        worker: lease.worker.clone(),
                        lease_until: lease.expires_at,
                        worker_alive: alive,
                    }
                } else {
                    Reason::Running {
                        attempt: snap.attempt,
                        worker: lease.worker.clone(),
                        since: lease.since,
                        lease_until: lease.expires_at,
                        worker_alive: alive,
                    }
                });
            }
            if let Some(child) = snap.child
                && node.is_sub_workflow()
            {
                return Some(Reason::WaitingForChild {
                    child,
                    explanation: None,
                });
            }
            if snapshot.status == ExecutionStatus::Paused {
                return Some(Reason::Paused);
            }
            if snapshot.status != ExecutionStatus::Running {
                return Some(held(snapshot.status));
            }
            let due = snap.ready_at.filter(|&t| t > now);
            if snap.shown == Some(NodeStatus::Delayed)
                && let Some(until) = due
            {
                if snap.delay_elapsed {
                    return Some(if node.is_delay() {
                        Reason::Delay { until }
                    } else {
                        Reason::RateLimited { until }
                    });
                }
                if let Some(reason) = open_breaker(node, cx, now, Some(until)) {
                    return Some(reason);
                }
                return Some(Reason::RetryBackoff {
                    attempt: snap.attempt,
                    error: snap.error.clone(),
                    until: Some(until),
                });
            }
            Some(queued(i, node, snapshot, snap, cx))
        }
    }
}

fn held(status: ExecutionStatus) -> Reason {
    if status == ExecutionStatus::Paused {
        Reason::Paused
    } else {
        Reason::Held {
            execution_status: status,
        }
    }
}

fn worker_alive(cx: &ExplainContext<'_>, worker: &str) -> Option<bool> {
    let workers = cx.workers?;
    Some(workers.iter().any(|w| w.id == worker && w.alive))
}

fn open_breaker(
    node: &CompiledNode,
    cx: &ExplainContext<'_>,
    now: i64,
    until: Option<i64>,
) -> Option<Reason> {
    let key = cx.registry?.breaker_key(&node.node_type, &node.config)?;
    let state = cx.breakers.get(&key)?;
    let config = node.settings.circuit_breaker.clone().unwrap_or_default();
    let reopens_at = state.opened_at + config.open_timeout.as_millis() as i64;
    (state.status == BreakerStatus::Open && reopens_at > now).then_some(Reason::CircuitOpen {
        breaker: key,
        reopens_at,
        until,
    })
}

fn queued(
    _i: NodeIndex,
    node: &CompiledNode,
    snapshot: &ExecutionSnapshot,
    snap: &NodeSnapshot,
    cx: &ExplainContext<'_>,
) -> Reason {
    let needs_executor = !node.is_delay() && !node.is_sub_workflow();
    let live: Option<Vec<&WorkerView>> =
        cx.workers.map(|ws| ws.iter().filter(|w| w.alive).collect());
    let with_executor = live.as_ref().map(|ws| {
        ws.iter()
            .filter(|w| !needs_executor || w.types.contains(&node.node_type))
            .count()
    });
    Reason::Queued {
        ready_since: snap.ready_at,
        waited_ms: snap
            .ready_at
            .map_or(0, |t| u64::try_from(snapshot.now - t).unwrap_or(0)),
        ahead: snap.ahead,
        queue_depth: snapshot.queue_depth,
        needs_executor,
        live_workers: live.map(|ws| ws.len()),
        workers_with_executor: with_executor,
    }
}

/// The one line to read first, and the node it is about.
fn summary(
    status: ExecutionStatus,
    error: Option<&str>,
    nodes: &[NodeExplanation],
) -> (String, Option<String>) {
    let top = nodes.iter().max_by_key(|n| n.reason.urgency());
    match (status, top) {
        (ExecutionStatus::Completed, _) => ("completed".to_owned(), None),
        (ExecutionStatus::Cancelled, None) => ("cancelled".to_owned(), None),
        (ExecutionStatus::Failed, None) => (
            format!("failed: {}", error.unwrap_or("no node is left to run")),
            None,
        ),
        (_, None) => (format!("{status}: no node is waiting (finishing)"), None),
        (_, Some(n)) => (
            format!("{status}: node {:?} {}", n.node_id, sentence(&n.reason)),
            Some(n.node_id.clone()),
        ),
    }
}

fn sentence(reason: &Reason) -> String {
    match reason {
        Reason::WaitingForParents { parents } => {
            let names: Vec<&str> = parents.iter().map(|p| p.node_id.as_str()).collect();
            format!("waits for its parents {}", names.join(", "))
        }
        Reason::Queued {
            needs_executor: true,
            workers_with_executor: Some(0),
            live_workers,
            ..
        } => match live_workers {
            Some(0) => "is ready but no worker is alive".to_owned(),
            _ => "is ready but no live worker has an executor for its type".to_owned(),
        },
        Reason::Queued {
            waited_ms, ahead, ..
        } => match ahead {
            Some(a) => format!("is ready, waiting {waited_ms} ms for a worker ({a} jobs ahead)"),
            None => format!("is ready, waiting {waited_ms} ms for a worker"),
        },
        Reason::Running {
            worker,
            worker_alive,
            ..
        } => match (worker, worker_alive) {
            (Some(w), Some(false)) => format!("runs on worker {w}, which is not alive"),
            (Some(w), _) => format!("runs on worker {w}"),
            (None, _) => "is running".to_owned(),
        },
        Reason::LeaseExpired { worker, .. } => match worker {
            Some(w) => format!("lost its lease (worker {w}); it is reclaimed at the next sweep"),
            None => "lost its lease; it is reclaimed at the next sweep".to_owned(),
        },
        Reason::Paused => "is held by the pause".to_owned(),
        Reason::Held { execution_status } => {
            format!("is held because the execution is {execution_status}")
        }
        Reason::Delay { until } => format!("waits for its delay until {until}"),
        Reason::RateLimited { until } => format!("waits for a rate-limit slot at {until}"),
        Reason::CircuitOpen {
            breaker,
            reopens_at,
            ..
        } => format!("waits for circuit breaker {breaker}, open until {reopens_at}"),
        Reason::RetryBackoff { attempt, error, .. } => match error {
            Some(e) => format!("waits to retry after attempt {attempt} failed: {e}"),
            None => format!("waits to retry after attempt {attempt}"),
        },
        Reason::WaitingForChild { child, explanation } => match explanation {
            Some(e) => format!("waits for child execution {child} ({})", e.summary),
            None => format!("waits for child execution {child}"),
        },
        Reason::DeadLettered { item } => {
            format!("is in the dead-letter queue: {}", item.error)
        }
        Reason::Failed { error } => {
            format!(
                "failed: {}",
                error.as_deref().unwrap_or("no error recorded")
            )
        }
    }
}
