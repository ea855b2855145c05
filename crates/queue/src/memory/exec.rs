//! One execution's hot state in the memory backend, driven by [`ExecutionState`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spane_core::{
    CompiledWorkflow, EngineEvent, ExecutionId, ExecutionRecord, ExecutionState, ExecutionStatus,
    NodeEvent, NodeEventStatus, NodeIndex, NodeResult, NodeStatus, Transition, TransitionError,
    WorkflowDefinition, WorkflowEvent, WorkflowEventStatus, failure_output, node_input, now_millis,
};

use crate::dlq::{DeadLetter, DeadLetterReason};
use crate::job::{ClaimedJob, NodeCommit, StartExecution};

/// Per-node bookkeeping beside the state machine.
#[derive(Default)]
struct Slot {
    status: Option<NodeStatus>,
    /// Shared, so that readers copy it after the queue's lock is released.
    output: Option<Arc<Value>>,
    error: Option<String>,
    /// Attempts started.
    attempts: u32,
    /// The attempt number the next claim runs.
    next_attempt: u32,
    continued: bool,
    delay_elapsed: bool,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    /// When the node last became claimable.
    ready_at: Option<i64>,
}

pub(super) struct Exec {
    id: ExecutionId,
    dag: Arc<CompiledWorkflow>,
    version: u32,
    state: ExecutionState,
    slots: Vec<Slot>,
    initial: Arc<Value>,
    parent: Option<ExecutionId>,
    depth: u32,
    created_at: i64,
    finished_at: Option<i64>,
    error: Option<String>,
    /// The dead letter the last failure produced, until the queue takes it.
    dead: Option<DeadLetter>,
}

/// What a commit changed, for the queue to act on.
pub(super) struct Applied {
    pub(super) ready: Vec<NodeIndex>,
    pub(super) dead_letter: Option<DeadLetter>,
    pub(super) reschedule: Option<Duration>,
    pub(super) finished: Option<ExecutionStatus>,
}

/// The events of one locked step. Node events are only built when someone listens
/// ([`EventSink::wants_node_events`](spane_core::EventSink::wants_node_events)).
pub(super) struct Events {
    pub(super) list: Vec<EngineEvent>,
    nodes: bool,
}

impl Events {
    pub(super) fn new(nodes: bool) -> Self {
        Self {
            list: Vec::new(),
            nodes,
        }
    }

    fn push(&mut self, event: EngineEvent) {
        self.list.push(event);
    }

    /// Adds the node event `make` builds, when node events are wanted.
    fn node(&mut self, make: impl FnOnce() -> NodeEvent) {
        if self.nodes {
            self.list.push(EngineEvent::Node(make()));
        }
    }
}

impl Exec {
    pub(super) fn start(start: StartExecution) -> (Self, Vec<NodeIndex>, Vec<EngineEvent>) {
        let (state, t) = ExecutionState::start(&start.workflow);
        let n = start.workflow.nodes().len();
        let exec = Self {
            id: start.execution_id,
            slots: (0..n)
                .map(|_| Slot {
                    next_attempt: 1,
                    ..Slot::default()
                })
                .collect(),
            dag: start.workflow,
            version: start.workflow_version,
            state,
            initial: Arc::new(start.initial_data),
            parent: start.parent_execution_id,
            depth: start.depth,
            created_at: now_millis(),
            finished_at: None,
            error: None,
            dead: None,
        };
        let mut exec = exec;
        exec.mark_ready(&t.ready, now_millis());
        let events = vec![exec.workflow_event(WorkflowEventStatus::Started, None)];
        (exec, t.ready, events)
    }

    fn mark_ready(&mut self, nodes: &[NodeIndex], at: i64) {
        for &n in nodes {
            self.slots[n].ready_at = Some(at);
        }
    }

    fn workflow_event(&self, status: WorkflowEventStatus, error: Option<String>) -> EngineEvent {
        EngineEvent::Workflow(WorkflowEvent {
            execution_id: self.id,
            workflow_id: self.dag.id().to_owned(),
            status,
            error,
            timestamp: now_millis(),
        })
    }

    fn node_event(&self, node: NodeIndex, status: NodeEventStatus) -> NodeEvent {
        NodeEvent {
            execution_id: self.id,
            workflow_id: self.dag.id().to_owned(),
            node_id: self.dag.node(node).id.clone(),
            status,
            data: None,
            error: None,
            attempt: None,
            next_delay_ms: None,
            continued: false,
            timestamp: now_millis(),
        }
    }

    /// Hands out `node` under `token`, or `None` when it must not run (the execution ended).
    pub(super) fn claim(
        &mut self,
        node: NodeIndex,
        token: u64,
        lease: Duration,
        events: &mut Events,
    ) -> Option<Claim> {
        if self.state.status() != ExecutionStatus::Running {
            // Paused, failed or cancelled: the node is held (resume or a retry releases it).
            self.state.hold(node);
            self.slots[node].status = Some(NodeStatus::Pending);
            return None;
        }
        let now = now_millis();
        let slot = &mut self.slots[node];
        slot.attempts = slot.next_attempt;
        slot.status = Some(NodeStatus::Running);
        slot.started_at.get_or_insert(now);
        let attempt = slot.attempts;
        let delay_elapsed = slot.delay_elapsed;
        let ready_at = slot.ready_at;

        let parents = self
            .state
            .live_parents(&self.dag, node)
            .filter_map(|p| self.slots[p].output.clone().map(|v| (p, v)))
            .collect();
        events.node(|| {
            let mut e = self.node_event(node, NodeEventStatus::Running);
            e.attempt = Some(attempt);
            e
        });
        Some(Claim {
            execution_id: self.id,
            dag: self.dag.clone(),
            version: self.version,
            node,
            attempt,
            token,
            initial: self.initial.clone(),
            parents,
            parent_execution_id: self.parent,
            depth: self.depth,
            delay_elapsed,
            lease,
            ready_at,
        })
    }

    pub(super) fn release(&mut self, node: NodeIndex) {
        let slot = &mut self.slots[node];
        slot.status = Some(NodeStatus::Pending);
        slot.ready_at = Some(now_millis());
    }

    pub(super) fn commit(
        &mut self,
        job: &ClaimedJob,
        commit: NodeCommit,
        events: &mut Events,
    ) -> Applied {
        let node = job.node;
        let terminal = self.state.status().is_terminal();
        let transition = match commit {
            NodeCommit::Completed { data, next_nodes } => {
                match self.state.complete(&self.dag, node, next_nodes.as_deref()) {
                    Ok(t) => {
                        events.node(|| {
                            let mut e = self.node_event(node, NodeEventStatus::Completed);
                            e.data = Some(data.clone());
                            e.attempt = Some(job.attempt);
                            e
                        });
                        let slot = &mut self.slots[node];
                        slot.status = Some(NodeStatus::Completed);
                        slot.output = Some(Arc::new(data));
                        slot.finished_at = Some(now_millis());
                        Some(t)
                    }
                    Err(err @ TransitionError::UnknownRoute { .. }) => {
                        let continued = self.dag.node(node).settings.continue_on_fail;
                        self.fail(node, job.attempt, err.to_string(), continued, events)
                    }
                    Err(err) => {
                        tracing::error!(%err, "commit on a node that is not ready");
                        None
                    }
                }
            }
            NodeCommit::Failed {
                error,
                continue_on_fail,
            } => self.fail(node, job.attempt, error, continue_on_fail, events),
            // The execution ended while this attempt ran: start nothing new.
            NodeCommit::Retry { error, .. } if terminal => {
                self.fail(node, job.attempt, error, false, events)
            }
            NodeCommit::Delay { .. } if terminal => self.fail(
                node,
                job.attempt,
                "the execution ended before the delay started".to_owned(),
                false,
                events,
            ),
            NodeCommit::Retry {
                error,
                delay,
                consume_attempt,
            } => {
                let slot = &mut self.slots[node];
                if consume_attempt {
                    slot.next_attempt = job.attempt + 1;
                }
                // A retry asks the rate limiter again.
                slot.delay_elapsed = false;
                slot.ready_at = Some(now_millis() + delay.as_millis() as i64);
                slot.status = Some(NodeStatus::Delayed);
                events.node(|| {
                    let mut e = self.node_event(node, NodeEventStatus::Retrying);
                    e.error = Some(error.clone());
                    e.attempt = Some(job.attempt);
                    e.next_delay_ms = Some(delay.as_millis() as u64);
                    e
                });
                self.slots[node].error = Some(error);
                return Applied {
                    ready: Vec::new(),
                    dead_letter: None,
                    reschedule: Some(delay),
                    finished: None,
                };
            }
            NodeCommit::Delay { delay } => {
                let slot = &mut self.slots[node];
                slot.delay_elapsed = true;
                slot.ready_at = Some(now_millis() + delay.as_millis() as i64);
                slot.status = Some(NodeStatus::Delayed);
                events.node(|| {
                    let mut e = self.node_event(node, NodeEventStatus::Delayed);
                    e.next_delay_ms = Some(delay.as_millis() as u64);
                    e
                });
                return Applied {
                    ready: Vec::new(),
                    dead_letter: None,
                    reschedule: Some(delay),
                    finished: None,
                };
            }
        };
        let t = transition.unwrap_or_default();
        self.apply(t, events)
    }

    fn fail(
        &mut self,
        node: NodeIndex,
        attempt: u32,
        error: String,
        continued: bool,
        events: &mut Events,
    ) -> Option<Transition> {
        let t = match self.state.fail(&self.dag, node, continued) {
            Ok(t) => t,
            Err(err) => {
                tracing::error!(%err, "failure committed on a node that is not ready");
                return None;
            }
        };
        let node_id = self.dag.node(node).id.clone();
        let slot = &mut self.slots[node];
        slot.status = Some(NodeStatus::Failed);
        slot.error = Some(error.clone());
        slot.continued = continued;
        slot.finished_at = Some(now_millis());
        if continued {
            slot.output = Some(Arc::new(failure_output(&node_id, &error, attempt)));
        }
        if !continued {
            if self.state.status() == ExecutionStatus::Failed && t.finished.is_some() {
                self.error = Some(format!("node {node_id:?} failed: {error}"));
            }
            // A node of a cancelled execution is not worth retrying: no dead letter.
            let cancelled = self.state.status() == ExecutionStatus::Cancelled;
            self.dead = (!cancelled).then(|| DeadLetter {
                execution_id: self.id,
                workflow_id: self.dag.id().to_owned(),
                workflow_version: self.version,
                node_id,
                reason: DeadLetterReason::Failed,
                error: error.clone(),
                attempts: attempt,
                failed_at: now_millis(),
            });
        }
        events.node(|| {
            let mut e = self.node_event(node, NodeEventStatus::Failed);
            e.error = Some(error);
            e.attempt = Some(attempt);
            e.continued = continued;
            e
        });
        Some(t)
    }

    fn apply(&mut self, t: Transition, events: &mut Events) -> Applied {
        let now = now_millis();
        for &s in &t.skipped {
            let slot = &mut self.slots[s];
            slot.status = Some(NodeStatus::Skipped);
            slot.finished_at = Some(now);
            events.node(|| self.node_event(s, NodeEventStatus::Skipped));
        }
        if let Some(status) = t.finished {
            self.finished_at = Some(now);
            let (kind, error) = match status {
                ExecutionStatus::Completed => (WorkflowEventStatus::Completed, None),
                ExecutionStatus::Cancelled => (WorkflowEventStatus::Cancelled, None),
                _ => (WorkflowEventStatus::Failed, self.error.clone()),
            };
            events.push(self.workflow_event(kind, error));
        }
        self.mark_ready(&t.ready, now);
        Applied {
            ready: t.ready,
            dead_letter: self.dead.take(),
            reschedule: None,
            finished: t.finished,
        }
    }

    /// Revives `node` after a dead-letter retry; returns the nodes to enqueue.
    pub(super) fn revive(
        &mut self,
        node: NodeIndex,
        events: &mut Events,
    ) -> Option<Vec<NodeIndex>> {
        let was = self.state.status();
        let t = self.state.revive(&self.dag, node).ok()?;
        let slot = &mut self.slots[node];
        slot.next_attempt = 1;
        slot.status = Some(NodeStatus::Pending);
        slot.finished_at = None;
        for &r in &t.ready[1..] {
            self.slots[r].status = Some(NodeStatus::Pending);
        }
        self.mark_ready(&t.ready, now_millis());
        if was != ExecutionStatus::Running {
            self.error = None;
            self.finished_at = None;
            events.push(self.workflow_event(WorkflowEventStatus::Resumed, None));
        }
        Some(t.ready)
    }

    /// The index of node `id`.
    pub(super) fn index_of(&self, id: &str) -> Option<NodeIndex> {
        self.dag.index_of(id)
    }

    /// Pauses; `Err` carries a status that does not allow it.
    pub(super) fn pause(&mut self, events: &mut Events) -> Result<(), ExecutionStatus> {
        if self.state.pause()? {
            events.push(self.workflow_event(WorkflowEventStatus::Paused, None));
        }
        Ok(())
    }

    /// Resumes; returns the held nodes to enqueue.
    pub(super) fn resume(
        &mut self,
        events: &mut Events,
    ) -> Result<Vec<NodeIndex>, ExecutionStatus> {
        let Some(ready) = self.state.resume()? else {
            return Ok(Vec::new());
        };
        events.push(self.workflow_event(WorkflowEventStatus::Resumed, None));
        self.mark_ready(&ready, now_millis());
        Ok(ready)
    }

    /// Fails the execution because its deadline passed; `true` when this call ended it.
    pub(super) fn expire(&mut self, events: &mut Events) -> bool {
        let Some(t) = self.state.expire() else {
            return false;
        };
        self.error = Some("execution deadline exceeded".to_owned());
        self.apply(t, events);
        true
    }

    /// Cancels; `Ok(true)` when this call cancelled it.
    pub(super) fn cancel(&mut self, events: &mut Events) -> Result<bool, ExecutionStatus> {
        match self.state.status() {
            ExecutionStatus::Cancelled => return Ok(false),
            ExecutionStatus::Running | ExecutionStatus::Paused => {}
            other => return Err(other),
        }
        if let Some(t) = self.state.cancel() {
            self.apply(t, events);
        }
        Ok(true)
    }

    /// The execution's status.
    pub(super) fn status(&self) -> ExecutionStatus {
        self.state.status()
    }

    pub(super) fn definition(&self, workflow_id: &str, version: u32) -> Option<WorkflowDefinition> {
        (self.dag.id() == workflow_id && self.version == version)
            .then(|| self.dag.definition().clone())
    }

    /// The outputs, to copy with [`Outputs::build`] once the lock is released.
    pub(super) fn outputs(&self) -> Outputs {
        Outputs {
            dag: self.dag.clone(),
            outputs: self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.output.clone().map(|v| (i, v)))
                .collect(),
        }
    }

    /// The record, to copy with [`Record::build`] once the lock is released.
    pub(super) fn record(&self) -> Record {
        let results = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Some(SlotRecord {
                    node: i,
                    status: s.status?,
                    output: s.output.clone(),
                    error: s.error.clone(),
                    attempts: s.attempts,
                    continued: s.continued,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                })
            })
            .collect();
        Record {
            execution_id: self.id,
            dag: self.dag.clone(),
            version: self.version,
            status: self.state.status(),
            initial: self.initial.clone(),
            parent: self.parent,
            depth: self.depth,
            error: self.error.clone(),
            created_at: self.created_at,
            finished_at: self.finished_at,
            results,
        }
    }
}

/// A claimed node as taken under the queue's lock: the outputs it reads are shared, and
/// [`Claim::into_job`] copies them into the job after the lock is released, so that other
/// workers' commits do not wait for the copies.
pub(super) struct Claim {
    execution_id: ExecutionId,
    dag: Arc<CompiledWorkflow>,
    version: u32,
    node: NodeIndex,
    attempt: u32,
    token: u64,
    initial: Arc<Value>,
    /// The live parents that have an output, in declaration order.
    parents: Vec<(NodeIndex, Arc<Value>)>,
    parent_execution_id: Option<ExecutionId>,
    depth: u32,
    delay_elapsed: bool,
    lease: Duration,
    ready_at: Option<i64>,
}

impl Claim {
    pub(super) fn into_job(self) -> ClaimedJob {
        let dag = &self.dag;
        let mut previous_results = BTreeMap::new();
        for (p, v) in &self.parents {
            previous_results.insert(dag.node(*p).id.clone(), Value::clone(v));
        }
        let input = node_input(
            dag,
            self.node,
            &self.initial,
            self.parents.iter().map(|(p, v)| (*p, &**v)),
        );
        ClaimedJob {
            execution_id: self.execution_id,
            workflow_id: dag.id().to_owned(),
            workflow_version: self.version,
            node: self.node,
            node_id: dag.node(self.node).id.clone(),
            children: dag.node(self.node).children.clone(),
            attempt: self.attempt,
            token: self.token,
            input,
            previous_results,
            parent_execution_id: self.parent_execution_id,
            depth: self.depth,
            delay_elapsed: self.delay_elapsed,
            lease: self.lease,
            ready_at: self.ready_at,
        }
    }
}

/// One node's part of a [`Record`].
struct SlotRecord {
    node: NodeIndex,
    status: NodeStatus,
    output: Option<Arc<Value>>,
    error: Option<String>,
    attempts: u32,
    continued: bool,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

/// An execution's record as taken under the queue's lock, copied by [`Record::build`] after.
pub(super) struct Record {
    execution_id: ExecutionId,
    dag: Arc<CompiledWorkflow>,
    version: u32,
    status: ExecutionStatus,
    initial: Arc<Value>,
    parent: Option<ExecutionId>,
    depth: u32,
    error: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
    results: Vec<SlotRecord>,
}

impl Record {
    pub(super) fn build(self) -> ExecutionRecord {
        // Inserted one by one: no intermediate list of (id, result) to collect and sort.
        let mut node_results = BTreeMap::new();
        for r in self.results {
            let id = &self.dag.node(r.node).id;
            node_results.insert(
                id.clone(),
                NodeResult {
                    node_id: id.clone(),
                    status: r.status,
                    data: r.output.map(|v| Value::clone(&v)),
                    error: r.error,
                    attempts: r.attempts,
                    continued: r.continued,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                },
            );
        }
        ExecutionRecord {
            execution_id: self.execution_id,
            workflow_id: self.dag.id().to_owned(),
            workflow_version: self.version,
            status: self.status,
            initial_data: Value::clone(&self.initial),
            parent_execution_id: self.parent,
            depth: self.depth,
            error: self.error,
            created_at: self.created_at,
            finished_at: self.finished_at,
            node_results,
        }
    }
}

/// An execution's outputs as taken under the queue's lock, copied by [`Outputs::build`] after.
pub(super) struct Outputs {
    dag: Arc<CompiledWorkflow>,
    outputs: Vec<(NodeIndex, Arc<Value>)>,
}

impl Outputs {
    pub(super) fn build(self) -> BTreeMap<String, Value> {
        let mut outputs = BTreeMap::new();
        for (i, v) in self.outputs {
            outputs.insert(self.dag.node(i).id.clone(), Value::clone(&v));
        }
        outputs
    }
}
