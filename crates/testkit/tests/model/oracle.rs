//! The model the backends are compared with: what a queue must answer and emit for each call
//! the driver makes, built on the core state machine ([`ExecutionState`]) plus the bookkeeping a
//! queue keeps beside it (attempts, stalls, the status users see, the dead-letter queue, the
//! ready list).
//!
//! The driver only sees the answers ([`JobView`], [`AfterExpiry`], [`RecordView`], events), never
//! the state machine, so this module can move to a new core rules API without touching the
//! driver.
//!
//! Decided semantics it encodes beyond the README:
//!
//! 1. **Stalls.** A lease that expires while the execution runs or is paused counts as a stall:
//!    the next claim runs the next attempt, and the stall after [`MAX_STALLED`] of them fails
//!    the node for good (not continued, even with continueOnFail, as the Redis backend does)
//!    with a dead letter of reason `stalled`. A lease that expires after the execution ended
//!    (failed or cancelled) holds the node, counts nothing and emits nothing.
//! 2. **Retry or delay after the end.** A `Retry` or `Delay` committed while the execution is
//!    failed or cancelled does not fail the node and makes no dead letter: the node is held
//!    (shown as `pending`), emits nothing, and a dead-letter retry that revives the execution
//!    releases it like any held node. The model lets such a retry consume its attempt (it ran).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use spane_core::{
    CompiledWorkflow, EngineEvent, ExecutionId, ExecutionState, ExecutionStatus, NodeEvent,
    NodeEventStatus, NodeIndex, NodeStatus, Transition, TransitionError, WorkflowEvent,
    WorkflowEventStatus, failure_output, node_input,
};
use spane_queue::DeadLetterReason;
use spane_queue::backend::{ClaimedJob, CommitOutcome, NodeCommit};

/// Stalls a node survives; the next one fails it (the backends are configured alike).
pub(crate) const MAX_STALLED: u32 = 1;

/// What the driver compares of a claimed job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobView {
    pub(crate) node: String,
    pub(crate) attempt: u32,
    pub(crate) delay_elapsed: bool,
    /// The keys of `previous_results`, sorted: the parents whose data flows in.
    pub(crate) previous: Vec<String>,
    pub(crate) input: Value,
}

impl JobView {
    /// The view of a job a backend handed out.
    pub(crate) fn of(job: &ClaimedJob) -> Self {
        Self {
            node: job.node_id.clone(),
            attempt: job.attempt,
            delay_elapsed: job.delay_elapsed,
            previous: job.previous_results.keys().cloned().collect(),
            input: job.input.clone(),
        }
    }
}

/// What a claim of everything ready must do.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimPhase {
    /// The jobs handed out, in node order.
    pub(crate) claimed: Vec<JobView>,
    /// Nodes waiting on a delay that the claim holds once they are due (the execution does
    /// not run): the driver waits until the backend no longer shows them `delayed`.
    pub(crate) delayed_holds: Vec<String>,
    pub(crate) events: Vec<EngineEvent>,
}

/// What a node looks like once its lease has expired and a claim has seen it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterExpiry {
    /// Handed out again, by the claim that found the expiry.
    Reclaimed(JobView),
    /// Not handed out; the status the record shows for it.
    Shown(Option<NodeStatus>),
}

/// The answer of pause, resume or cancel: the status, or the status that refused it.
pub(crate) type ControlAnswer = Result<ExecutionStatus, ExecutionStatus>;

/// What the driver compares of one node of a record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeView {
    pub(crate) status: NodeStatus,
    pub(crate) attempts: u32,
    pub(crate) claims: u32,
    pub(crate) continued: bool,
}

/// What the driver compares of an execution record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordView {
    pub(crate) status: ExecutionStatus,
    pub(crate) error: Option<String>,
    pub(crate) nodes: BTreeMap<String, NodeView>,
}

/// A dead letter as compared: node and reason.
pub(crate) type DeadLetterView = (String, &'static str);

/// The name of a dead-letter reason.
pub(crate) fn reason_name(reason: DeadLetterReason) -> &'static str {
    match reason {
        DeadLetterReason::Failed => "failed",
        DeadLetterReason::Stalled => "stalled",
        _ => "other",
    }
}

/// The model's bookkeeping of one node beside its [`ExecutionState`] state.
#[derive(Debug, Clone)]
struct NodeModel {
    /// The status the record shows (`None`: not listed).
    shown: Option<NodeStatus>,
    /// The attempt of the last claim.
    attempts: u32,
    /// The attempt the next claim runs.
    next_attempt: u32,
    /// Times handed out.
    claims: u32,
    /// Lease expiries since the node was last revived.
    stalls: u32,
    delay_elapsed: bool,
    output: Option<Value>,
    continued: bool,
}

/// One execution as the queue must see it.
#[derive(Debug)]
pub(crate) struct Model {
    dag: Arc<CompiledWorkflow>,
    execution: ExecutionId,
    initial: Value,
    state: ExecutionState,
    nodes: Vec<NodeModel>,
    /// Jobs in the ready list or waiting on a delay (`true`).
    queued: BTreeMap<NodeIndex, bool>,
    /// Jobs handed out and not committed.
    running: BTreeSet<NodeIndex>,
    dead: BTreeMap<NodeIndex, DeadLetterReason>,
    error: Option<String>,
    /// Per sub-workflow node, the child bound to its current run (the protocol of
    /// `spane_queue::ChildExecutions`): a retry or a revival unbinds it.
    bound: Vec<Option<ExecutionId>>,
}

impl Model {
    /// A started execution: its roots are ready.
    pub(crate) fn start(
        dag: Arc<CompiledWorkflow>,
        execution: ExecutionId,
        initial: Value,
    ) -> (Self, Vec<EngineEvent>) {
        let (state, t) = ExecutionState::start(&dag);
        let n = dag.nodes().len();
        let mut model = Self {
            nodes: vec![
                NodeModel {
                    shown: None,
                    attempts: 0,
                    next_attempt: 1,
                    claims: 0,
                    stalls: 0,
                    delay_elapsed: false,
                    output: None,
                    continued: false,
                };
                n
            ],
            dag,
            execution,
            initial,
            state,
            queued: BTreeMap::new(),
            running: BTreeSet::new(),
            dead: BTreeMap::new(),
            error: None,
            bound: vec![None; n],
        };
        model.queued.extend(t.ready.iter().map(|&r| (r, false)));
        let events = vec![model.workflow_event(WorkflowEventStatus::Started, None)];
        (model, events)
    }

    /// The execution's status.
    pub(crate) fn status(&self) -> ExecutionStatus {
        self.state.status()
    }

    /// Jobs handed out and not committed, in node order.
    pub(crate) fn in_flight(&self) -> Vec<NodeIndex> {
        self.running.iter().copied().collect()
    }

    /// How many jobs wait in the ready list or on a delay.
    pub(crate) fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Whether some job waits in the ready list or on a delay.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// The attempt the last claim of `node` runs.
    pub(crate) fn attempt(&self, node: NodeIndex) -> u32 {
        self.nodes[node].attempts
    }

    /// Dead letters, in node order.
    pub(crate) fn dead_letter_nodes(&self) -> Vec<NodeIndex> {
        self.dead.keys().copied().collect()
    }

    /// Dead letters as compared, in node order.
    pub(crate) fn dead_letters(&self) -> Vec<DeadLetterView> {
        self.dead
            .iter()
            .map(|(&n, &r)| (self.id(n).to_owned(), reason_name(r)))
            .collect()
    }

    /// The record as compared.
    pub(crate) fn record(&self) -> RecordView {
        RecordView {
            status: self.state.status(),
            error: self.error.clone(),
            nodes: self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    Some((
                        self.id(i).to_owned(),
                        NodeView {
                            status: n.shown?,
                            attempts: n.attempts,
                            claims: n.claims,
                            continued: n.continued,
                        },
                    ))
                })
                .collect(),
        }
    }

    /// A claim of everything ready (and everything waiting on a delay, once due): each job is
    /// handed out while the execution runs, held otherwise.
    pub(crate) fn claim_all(&mut self) -> ClaimPhase {
        let mut phase = ClaimPhase::default();
        for (node, delayed) in std::mem::take(&mut self.queued) {
            if self.state.status() == ExecutionStatus::Running {
                let job = self.hand_out(node, &mut phase.events);
                phase.claimed.push(job);
            } else {
                self.hold(node);
                if delayed {
                    phase.delayed_holds.push(self.id(node).to_owned());
                }
            }
        }
        phase
    }

    /// Applies the commit of the running job of `node`.
    pub(crate) fn commit(
        &mut self,
        node: NodeIndex,
        commit: &NodeCommit,
    ) -> (CommitOutcome, Vec<EngineEvent>) {
        assert!(self.running.remove(&node), "model: {node} is not running");
        let attempt = self.nodes[node].attempts;
        let mut events = Vec::new();
        let ended = self.state.status().is_terminal();
        let t = match commit {
            NodeCommit::Completed { data, next_nodes } => {
                match self.state.complete(&self.dag, node, next_nodes.as_deref()) {
                    Ok(t) => {
                        let mut e = self.node_event(node, NodeEventStatus::Completed);
                        e.data = Some(data.clone());
                        e.attempt = Some(attempt);
                        events.push(EngineEvent::Node(e));
                        let n = &mut self.nodes[node];
                        n.shown = Some(NodeStatus::Completed);
                        n.output = Some(data.clone());
                        t
                    }
                    Err(err @ TransitionError::UnknownRoute { .. }) => {
                        let continued = self.dag.node(node).settings.continue_on_fail;
                        let reason = DeadLetterReason::Failed;
                        self.fail(node, err.to_string(), continued, reason, &mut events)
                    }
                    Err(err) => panic!("model: {err}"),
                }
            }
            NodeCommit::Failed {
                error,
                continue_on_fail,
                ..
            } => self.fail(
                node,
                error.clone(),
                *continue_on_fail,
                DeadLetterReason::Failed,
                &mut events,
            ),
            // Decided (2): after the end, a retry or a delay holds the node.
            NodeCommit::Retry {
                consume_attempt, ..
            } if ended => {
                self.bound[node] = None;
                let n = &mut self.nodes[node];
                if *consume_attempt {
                    n.next_attempt = attempt + 1;
                }
                n.delay_elapsed = false;
                self.hold(node);
                return (CommitOutcome::Applied { finished: None }, events);
            }
            NodeCommit::Delay { .. } if ended => {
                self.hold(node);
                return (CommitOutcome::Applied { finished: None }, events);
            }
            NodeCommit::Retry {
                error,
                delay,
                consume_attempt,
            } => {
                self.bound[node] = None;
                let mut e = self.node_event(node, NodeEventStatus::Retrying);
                e.error = Some(error.clone());
                e.attempt = Some(attempt);
                e.next_delay_ms = Some(delay.as_millis() as u64);
                events.push(EngineEvent::Node(e));
                let n = &mut self.nodes[node];
                if *consume_attempt {
                    n.next_attempt = attempt + 1;
                }
                n.delay_elapsed = false;
                n.shown = Some(NodeStatus::Delayed);
                self.queued.insert(node, true);
                return (CommitOutcome::Applied { finished: None }, events);
            }
            NodeCommit::Delay { delay } => {
                let mut e = self.node_event(node, NodeEventStatus::Delayed);
                e.next_delay_ms = Some(delay.as_millis() as u64);
                events.push(EngineEvent::Node(e));
                let n = &mut self.nodes[node];
                n.delay_elapsed = true;
                n.shown = Some(NodeStatus::Delayed);
                self.queued.insert(node, true);
                return (CommitOutcome::Applied { finished: None }, events);
            }
            other => panic!("model: unknown commit {other:?}"),
        };
        let finished = self.apply(t, &mut events);
        (CommitOutcome::Applied { finished }, events)
    }

    /// Binds a child to the run of the running node `node`: the bound one, else `proposed`.
    pub(crate) fn bind_child(&mut self, node: NodeIndex, proposed: ExecutionId) -> ExecutionId {
        assert!(self.running.contains(&node), "model: {node} is not running");
        *self.bound[node].get_or_insert(proposed)
    }

    /// The running node `node` waits for its child: nothing changes but its lease, which goes
    /// (the node stays running until the child's end is committed for it).
    pub(crate) fn await_child(&mut self, node: NodeIndex) -> (CommitOutcome, Vec<EngineEvent>) {
        assert!(self.running.contains(&node), "model: {node} is not running");
        (CommitOutcome::Applied { finished: None }, Vec::new())
    }

    /// The lease of the running job of `node` expired, and a claim found it.
    pub(crate) fn lease_expired(&mut self, node: NodeIndex) -> (AfterExpiry, Vec<EngineEvent>) {
        assert!(self.running.remove(&node), "model: {node} is not running");
        let mut events = Vec::new();
        if self.state.status().is_terminal() {
            self.hold(node);
            return (AfterExpiry::Shown(Some(NodeStatus::Pending)), events);
        }
        let n = &mut self.nodes[node];
        n.stalls += 1;
        if n.stalls > MAX_STALLED {
            let message = format!(
                "stalled: the lease expired {} times (worker died or hung)",
                n.stalls
            );
            let t = self.fail(node, message, false, DeadLetterReason::Stalled, &mut events);
            self.apply(t, &mut events);
            return (AfterExpiry::Shown(Some(NodeStatus::Failed)), events);
        }
        n.next_attempt = n.attempts + 1;
        n.shown = Some(NodeStatus::Pending);
        if self.state.status() == ExecutionStatus::Running {
            let job = self.hand_out(node, &mut events);
            (AfterExpiry::Reclaimed(job), events)
        } else {
            self.hold(node);
            (AfterExpiry::Shown(Some(NodeStatus::Pending)), events)
        }
    }

    /// `pause`.
    pub(crate) fn pause(&mut self) -> (ControlAnswer, Vec<EngineEvent>) {
        match self.state.pause() {
            Ok(true) => (
                Ok(ExecutionStatus::Paused),
                vec![self.workflow_event(WorkflowEventStatus::Paused, None)],
            ),
            Ok(false) => (Ok(ExecutionStatus::Paused), Vec::new()),
            Err(status) => (Err(status), Vec::new()),
        }
    }

    /// `resume`: the held nodes are ready again.
    pub(crate) fn resume(&mut self) -> (ControlAnswer, Vec<EngineEvent>) {
        match self.state.resume() {
            Ok(Some(ready)) => {
                self.queued.extend(ready.into_iter().map(|r| (r, false)));
                (
                    Ok(ExecutionStatus::Running),
                    vec![self.workflow_event(WorkflowEventStatus::Resumed, None)],
                )
            }
            Ok(None) => (Ok(ExecutionStatus::Running), Vec::new()),
            Err(status) => (Err(status), Vec::new()),
        }
    }

    /// `cancel`.
    pub(crate) fn cancel(&mut self) -> (ControlAnswer, Vec<EngineEvent>) {
        match self.state.status() {
            ExecutionStatus::Cancelled => (Ok(ExecutionStatus::Cancelled), Vec::new()),
            ExecutionStatus::Running | ExecutionStatus::Paused => {
                let mut events = Vec::new();
                if let Some(t) = self.state.cancel() {
                    self.apply(t, &mut events);
                }
                (Ok(ExecutionStatus::Cancelled), events)
            }
            other => (Err(other), Vec::new()),
        }
    }

    /// `retry_dead_letter` of `node`: revives it when it has a dead letter and the execution
    /// can run again (failed or running); the dead letter stays otherwise.
    pub(crate) fn retry_dead_letter(&mut self, node: NodeIndex) -> (bool, Vec<EngineEvent>) {
        if !self.dead.contains_key(&node) {
            return (false, Vec::new());
        }
        let was = self.state.status();
        let Ok(t) = self.state.revive(&self.dag, node) else {
            return (false, Vec::new());
        };
        self.dead.remove(&node);
        self.bound[node] = None;
        let n = &mut self.nodes[node];
        n.shown = Some(NodeStatus::Pending);
        n.next_attempt = 1;
        n.stalls = 0;
        self.queued.extend(t.ready.iter().map(|&r| (r, false)));
        let mut events = Vec::new();
        if was != ExecutionStatus::Running {
            self.error = None;
            events.push(self.workflow_event(WorkflowEventStatus::Resumed, None));
        }
        (true, events)
    }

    fn id(&self, node: NodeIndex) -> &str {
        &self.dag.node(node).id
    }

    /// Hands `node` out: the next attempt runs, with the live parents' outputs as input.
    fn hand_out(&mut self, node: NodeIndex, events: &mut Vec<EngineEvent>) -> JobView {
        let n = &mut self.nodes[node];
        n.attempts = n.next_attempt;
        n.claims += 1;
        n.shown = Some(NodeStatus::Running);
        let (attempt, delay_elapsed) = (n.attempts, n.delay_elapsed);
        self.running.insert(node);
        let parents: Vec<(NodeIndex, &Value)> = self
            .state
            .live_parents(&self.dag, node)
            .filter_map(|p| self.nodes[p].output.as_ref().map(|v| (p, v)))
            .collect();
        let mut previous: Vec<String> = parents
            .iter()
            .map(|&(p, _)| self.id(p).to_owned())
            .collect();
        previous.sort();
        let input = node_input(&self.dag, node, &self.initial, parents.iter().copied());
        let mut e = self.node_event(node, NodeEventStatus::Running);
        e.attempt = Some(attempt);
        events.push(EngineEvent::Node(e));
        JobView {
            node: self.id(node).to_owned(),
            attempt,
            delay_elapsed,
            previous,
            input,
        }
    }

    /// A ready node not handed out because the execution does not run: shown as pending.
    fn hold(&mut self, node: NodeIndex) {
        self.state.hold(node);
        self.nodes[node].shown = Some(NodeStatus::Pending);
    }

    /// `node` failed for good with `message`.
    fn fail(
        &mut self,
        node: NodeIndex,
        message: String,
        continued: bool,
        reason: DeadLetterReason,
        events: &mut Vec<EngineEvent>,
    ) -> Transition {
        let t = match self.state.fail(&self.dag, node, continued) {
            Ok(t) => t,
            Err(err) => panic!("model: {err}"),
        };
        let attempt = self.nodes[node].attempts;
        let id = self.id(node).to_owned();
        let mut e = self.node_event(node, NodeEventStatus::Failed);
        e.error = Some(message.clone());
        e.attempt = Some(attempt);
        e.continued = continued;
        events.push(EngineEvent::Node(e));
        let n = &mut self.nodes[node];
        n.shown = Some(NodeStatus::Failed);
        n.continued = continued;
        if continued {
            n.output = Some(failure_output(&id, &message, attempt));
        } else {
            if t.finished == Some(ExecutionStatus::Failed) {
                self.error = Some(format!("node {id:?} failed: {message}"));
            }
            if self.state.status() != ExecutionStatus::Cancelled {
                self.dead.insert(node, reason);
            }
        }
        t
    }

    /// Applies the rest of a transition: skips, ready children, the end.
    fn apply(&mut self, t: Transition, events: &mut Vec<EngineEvent>) -> Option<ExecutionStatus> {
        for &s in &t.skipped {
            self.nodes[s].shown = Some(NodeStatus::Skipped);
            events.push(EngineEvent::Node(
                self.node_event(s, NodeEventStatus::Skipped),
            ));
        }
        self.queued.extend(t.ready.iter().map(|&r| (r, false)));
        if let Some(status) = t.finished {
            let event = match status {
                ExecutionStatus::Completed => {
                    self.workflow_event(WorkflowEventStatus::Completed, None)
                }
                ExecutionStatus::Cancelled => {
                    self.workflow_event(WorkflowEventStatus::Cancelled, None)
                }
                _ => self.workflow_event(WorkflowEventStatus::Failed, self.error.clone()),
            };
            events.push(event);
        }
        t.finished
    }

    fn node_event(&self, node: NodeIndex, status: NodeEventStatus) -> NodeEvent {
        NodeEvent::new(self.execution, self.dag.id(), self.id(node), status).at(0)
    }

    fn workflow_event(&self, status: WorkflowEventStatus, error: Option<String>) -> EngineEvent {
        let event = WorkflowEvent::new(self.execution, self.dag.id(), status).at(0);
        EngineEvent::Workflow(match error {
            Some(error) => event.error(error),
            None => event,
        })
    }
}
