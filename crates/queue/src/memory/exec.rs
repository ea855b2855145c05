//! One execution's hot state in the memory backend. Every rule comes from
//! [`spane_core::rules`]: this file stores data and timestamps and applies the
//! [`Effects`] the core decides.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spane_core::{
    CommitPlan, CompiledWorkflow, DeadLetterCause, Effects, Emit, EngineEvent, ExecutionId,
    ExecutionRecord, ExecutionState, ExecutionStatus, NodeEvent, NodeIndex, NodeResult, NodeStatus,
    WorkflowDefinition, WorkflowEvent, WorkflowEventStatus, node_input, now_millis,
};

use crate::dlq::{DeadLetter, DeadLetterReason};
use crate::job::{ClaimedJob, NodeCommit, StartExecution};

/// Per-node data beside the core's bookkeeping.
#[derive(Default)]
struct Slot {
    /// Shared, so that readers copy it after the queue's lock is released.
    output: Option<Arc<Value>>,
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
    parent_node: Option<String>,
    depth: u32,
    created_at: i64,
    finished_at: Option<i64>,
    /// The execution this one re-runs.
    rerun_of: Option<ExecutionId>,
    /// A node that runs with this input instead of its parents' (a re-run's changed input).
    input_override: Option<(NodeIndex, Arc<Value>)>,
}

/// What one step changed, for the queue to act on.
#[derive(Default)]
pub(super) struct Applied {
    /// Append to the ready queue.
    pub(super) ready: Vec<NodeIndex>,
    /// Put back at the head of the ready queue.
    pub(super) requeue: Option<NodeIndex>,
    /// Run the node again after this wait.
    pub(super) reschedule: Option<Duration>,
    pub(super) dead_letter: Option<DeadLetter>,
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
}

impl Exec {
    pub(super) fn start(start: StartExecution) -> (Self, Vec<NodeIndex>, Vec<EngineEvent>) {
        let (state, t) = match &start.rerun {
            Some(rerun) => ExecutionState::seeded(&start.workflow, &rerun.seeds),
            None => ExecutionState::start(&start.workflow),
        };
        let n = start.workflow.nodes().len();
        let now = now_millis();
        let mut exec = Self {
            rerun_of: start.rerun.as_ref().map(|r| r.of),
            input_override: start
                .rerun
                .as_ref()
                .and_then(|r| r.input.clone())
                .map(|(i, v)| (i, Arc::new(v))),
            id: start.execution_id,
            slots: (0..n).map(|_| Slot::default()).collect(),
            dag: start.workflow,
            version: start.workflow_version,
            state,
            initial: Arc::new(start.initial_data),
            parent: start.parent_execution_id,
            parent_node: start.parent_node_id,
            depth: start.depth,
            created_at: now,
            finished_at: None,
        };
        for &r in &t.ready {
            exec.slots[r].ready_at = Some(now);
        }
        if let Some(rerun) = &start.rerun {
            for (i, output) in rerun.outputs.iter().enumerate() {
                if let (Some(slot), Some(output)) = (exec.slots.get_mut(i), output) {
                    slot.output = Some(Arc::new(output.clone()));
                }
            }
            for (i, seed) in rerun.seeds.iter().enumerate() {
                if seed.is_some() {
                    exec.slots[i].finished_at = Some(now);
                }
            }
            for &s in &t.skipped {
                exec.slots[s].finished_at = Some(now);
            }
        }
        let mut events = Events::new(false);
        exec.emit(
            &Emit::Workflow {
                status: WorkflowEventStatus::Started,
                error: None,
            },
            now,
            &mut events,
        );
        (exec, t.ready, events.list)
    }

    /// Turns the core's events into engine events, with ids, outputs and a timestamp.
    fn emit(&self, emit: &Emit, now: i64, events: &mut Events) {
        match emit {
            Emit::Node(e) => {
                if !events.nodes {
                    return;
                }
                let data = if e.with_output {
                    self.slots[e.node].output.as_deref().cloned()
                } else {
                    None
                };
                let mut event = NodeEvent::new(
                    self.id,
                    self.dag.id(),
                    self.dag.node(e.node).id.as_str(),
                    e.status,
                )
                .continued(e.continued)
                .at(now);
                event.data = data;
                event.error = e.error.clone();
                event.attempt = e.attempt;
                event.next_delay_ms = e.next_delay_ms;
                events.list.push(EngineEvent::Node(event));
            }
            Emit::Workflow { status, error } => {
                let mut event = WorkflowEvent::new(self.id, self.dag.id(), *status).at(now);
                event.parent_execution_id = self.parent;
                event.parent_node_id = self.parent_node.clone();
                event.error = error.clone();
                events.list.push(EngineEvent::Workflow(event));
            }
            // `Emit` may grow: a kind this backend does not know is not emitted.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// Applies the core's effects: timestamps, events, the dead letter.
    fn apply(&mut self, effects: Effects, events: &mut Events) -> Applied {
        let now = now_millis();
        for &s in &effects.skipped {
            self.slots[s].finished_at = Some(now);
        }
        for &r in effects.ready.iter().chain(&effects.requeue) {
            self.slots[r].ready_at = Some(now);
        }
        if let Some((node, delay)) = effects.schedule {
            self.slots[node].ready_at = Some(now + delay.as_millis() as i64);
        }
        if effects.finished.is_some() {
            self.finished_at = Some(now);
        }
        for e in &effects.events {
            self.emit(e, now, events);
        }
        let dead_letter = effects.dead_letter.map(|d| DeadLetter {
            execution_id: self.id,
            workflow_id: self.dag.id().to_owned(),
            workflow_version: self.version,
            node_id: self.dag.node(d.node).id.clone(),
            reason: match d.cause {
                DeadLetterCause::Stalled => DeadLetterReason::Stalled,
                _ => DeadLetterReason::Failed,
            },
            error: d.error,
            attempts: d.attempts,
            failed_at: now,
        });
        Applied {
            ready: effects.ready,
            requeue: effects.requeue,
            reschedule: effects.schedule.map(|(_, d)| d),
            dead_letter,
            finished: effects.finished,
        }
    }

    /// Hands out `node` under `token`, or `None` when it must not run (see
    /// [`ExecutionState::claim`]).
    pub(super) fn claim(
        &mut self,
        node: NodeIndex,
        token: u64,
        lease: Duration,
        events: &mut Events,
    ) -> Option<Claim> {
        let grant = self.state.claim(node)?;
        let now = now_millis();
        self.slots[node].started_at.get_or_insert(now);
        if events.nodes {
            self.emit(&grant.event(), now, events);
        }
        Some(self.job(node, grant.attempt, token, lease, grant.delay_elapsed))
    }

    /// The job of `node` as it stands: its live parents' outputs are shared, copied later by
    /// [`Claim::into_job`].
    fn job(
        &self,
        node: NodeIndex,
        attempt: u32,
        token: u64,
        lease: Duration,
        delay_elapsed: bool,
    ) -> Claim {
        let parents = self
            .state
            .live_parents(&self.dag, node)
            .filter_map(|p| self.slots[p].output.clone().map(|v| (p, v)))
            .collect();
        Claim {
            execution_id: self.id,
            dag: self.dag.clone(),
            version: self.version,
            node,
            attempt,
            claims: self.state.book(node).claims,
            token,
            initial: self.initial.clone(),
            parents,
            parent_execution_id: self.parent,
            depth: self.depth,
            delay_elapsed,
            lease,
            ready_at: self.slots[node].ready_at,
            input_override: self.override_of(node),
        }
    }

    fn override_of(&self, node: NodeIndex) -> Option<Arc<Value>> {
        self.input_override
            .as_ref()
            .filter(|(i, _)| *i == node)
            .map(|(_, v)| v.clone())
    }

    /// The job of `node` under `token` as it stands, without handing it out (the resumption
    /// of a sub-workflow node; see [`ChildExecutions`](crate::ChildExecutions)). `None` when
    /// the node is not ready or not bound to `child`.
    pub(super) fn awaiting(
        &self,
        node: NodeIndex,
        child: ExecutionId,
        token: u64,
        lease: Duration,
    ) -> Option<Claim> {
        if *self.state.node(node) != spane_core::NodeState::Ready
            || self.state.book(node).child != Some(child)
        {
            return None;
        }
        let attempt = self.state.book(node).attempt.max(1);
        Some(self.job(node, attempt, token, lease, false))
    }

    /// Binds a child to the current run of sub-workflow node `node` (see
    /// [`ExecutionState::bind_child`]).
    pub(super) fn bind_child(
        &mut self,
        node: NodeIndex,
        proposed: ExecutionId,
    ) -> Option<ExecutionId> {
        self.state.bind_child(&self.dag, node, proposed).ok()
    }

    /// The parent execution, for a sub-workflow.
    pub(super) fn parent(&self) -> Option<ExecutionId> {
        self.parent
    }

    pub(super) fn release(&mut self, node: NodeIndex) {
        self.state.release(node);
        self.slots[node].ready_at = Some(now_millis());
    }

    pub(super) fn commit(
        &mut self,
        job: &ClaimedJob,
        commit: NodeCommit,
        events: &mut Events,
    ) -> Applied {
        let node = job.node;
        let outcome = commit.attempt();
        let plan = CommitPlan::decide(&self.dag, node, job.attempt, outcome);
        let effects = match self.state.commit(&self.dag, node, job.attempt, &plan) {
            Ok(effects) => effects,
            Err(err) => {
                tracing::error!(%err, "commit on a node that is not ready");
                return Applied::default();
            }
        };
        let output = match (plan, commit) {
            (CommitPlan::Complete { .. }, NodeCommit::Completed { data, .. }) => Some(data),
            (CommitPlan::Continue { output, .. }, _) => Some(output),
            _ => None,
        };
        let slot = &mut self.slots[node];
        if let Some(output) = output {
            slot.output = Some(Arc::new(output));
        }
        if matches!(
            self.state.node_status(node),
            Some(NodeStatus::Completed | NodeStatus::Failed)
        ) {
            slot.finished_at = Some(now_millis());
        }
        self.apply(effects, events)
    }

    /// The lease of `node` expired: the core counts the stall (see [`ExecutionState::stall`]).
    pub(super) fn stall(
        &mut self,
        node: NodeIndex,
        max_stalled: u32,
        events: &mut Events,
    ) -> Applied {
        let effects = self.state.stall(&self.dag, node, max_stalled);
        if self.state.node_status(node) == Some(NodeStatus::Failed) {
            self.slots[node].finished_at = Some(now_millis());
        }
        self.apply(effects, events)
    }

    /// Revives `node` after a dead-letter retry; returns the nodes to enqueue.
    pub(super) fn revive(
        &mut self,
        node: NodeIndex,
        events: &mut Events,
    ) -> Option<Vec<NodeIndex>> {
        let was_running = self.state.status() == ExecutionStatus::Running;
        let effects = self.state.revive_node(&self.dag, node).ok()?;
        self.slots[node].finished_at = None;
        if !was_running {
            // A failed execution runs again.
            self.finished_at = None;
        }
        Some(self.apply(effects, events).ready)
    }

    /// The index of node `id`.
    pub(super) fn index_of(&self, id: &str) -> Option<NodeIndex> {
        self.dag.index_of(id)
    }

    /// Pauses; `Err` carries a status that does not allow it.
    pub(super) fn pause(&mut self, events: &mut Events) -> Result<(), ExecutionStatus> {
        let effects = self.state.pause_effects()?;
        self.apply(effects, events);
        Ok(())
    }

    /// Resumes; returns the held nodes to enqueue.
    pub(super) fn resume(
        &mut self,
        events: &mut Events,
    ) -> Result<Vec<NodeIndex>, ExecutionStatus> {
        let effects = self.state.resume_effects()?;
        Ok(self.apply(effects, events).ready)
    }

    /// Fails the execution because its deadline passed; `true` when this call ended it.
    pub(super) fn expire(&mut self, events: &mut Events) -> bool {
        match self.state.expire_effects() {
            Some(effects) => {
                self.apply(effects, events);
                true
            }
            None => false,
        }
    }

    /// Cancels; `Ok(true)` when this call cancelled it.
    pub(super) fn cancel(&mut self, events: &mut Events) -> Result<bool, ExecutionStatus> {
        match self.state.cancel_effects()? {
            Some(effects) => {
                self.apply(effects, events);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The snapshot of this execution, without what the queue around it knows (leases,
    /// dead letters, the ready queue): the caller adds those.
    pub(super) fn snapshot(&self, now: i64) -> spane_core::explain::ExecutionSnapshot {
        let mut snap = spane_core::explain::ExecutionSnapshot::new(
            self.id,
            self.version,
            self.slots.len(),
            now,
        );
        snap.status = self.state.status();
        snap.error = self.state.error().map(str::to_owned);
        snap.rerun_of = self.rerun_of;
        for (i, n) in snap.nodes.iter_mut().enumerate() {
            let book = self.state.book(i);
            n.state = self.state.node(i).clone();
            n.shown = book.shown;
            n.attempt = book.attempt;
            n.error = book.error.clone();
            n.ready_at = self.slots[i].ready_at;
            n.delay_elapsed = book.delay_elapsed;
            n.child = book.child;
        }
        snap
    }

    /// The compiled graph it runs.
    pub(super) fn dag(&self) -> &Arc<CompiledWorkflow> {
        &self.dag
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
                let book = self.state.book(i);
                Some(SlotRecord {
                    node: i,
                    status: book.shown?,
                    output: s.output.clone(),
                    error: book.error.clone(),
                    attempts: book.attempt,
                    claims: book.claims,
                    continued: book.continued,
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
            parent_node: self.parent_node.clone(),
            depth: self.depth,
            error: self.state.error().map(str::to_owned),
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
    claims: u32,
    token: u64,
    initial: Arc<Value>,
    /// The live parents that have an output, in declaration order.
    parents: Vec<(NodeIndex, Arc<Value>)>,
    parent_execution_id: Option<ExecutionId>,
    depth: u32,
    delay_elapsed: bool,
    lease: Duration,
    ready_at: Option<i64>,
    input_override: Option<Arc<Value>>,
}

impl Claim {
    pub(super) fn into_job(self) -> ClaimedJob {
        let dag = &self.dag;
        let mut previous_results = BTreeMap::new();
        for (p, v) in &self.parents {
            previous_results.insert(dag.node(*p).id.clone(), Value::clone(v));
        }
        let input = match &self.input_override {
            Some(v) => Value::clone(v),
            None => node_input(
                dag,
                self.node,
                &self.initial,
                self.parents.iter().map(|(p, v)| (*p, &**v)),
            ),
        };
        ClaimedJob {
            execution_id: self.execution_id,
            workflow_id: dag.id().to_owned(),
            workflow_version: self.version,
            node: self.node,
            node_id: dag.node(self.node).id.clone(),
            children: dag.node(self.node).children.clone(),
            attempt: self.attempt,
            claims: self.claims,
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
    claims: u32,
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
    parent_node: Option<String>,
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
            node_results.insert(id.clone(), {
                let mut built = NodeResult::new(id.clone(), r.status);
                built.data = r.output.map(|v| Value::clone(&v));
                built.error = r.error;
                built.attempts = r.attempts;
                built.claims = r.claims;
                built.continued = r.continued;
                built.started_at = r.started_at;
                built.finished_at = r.finished_at;
                built
            });
        }
        {
            let mut built = ExecutionRecord::new(
                self.execution_id,
                self.dag.id().to_owned(),
                self.version,
                self.status,
                Value::clone(&self.initial),
                self.created_at,
            );
            built.parent_execution_id = self.parent;
            built.parent_node_id = self.parent_node;
            built.depth = self.depth;
            built.error = self.error;
            built.finished_at = self.finished_at;
            built.node_results = node_results;
            built
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
