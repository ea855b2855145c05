//! The rules of an execution, decided in one place for every backend.
//!
//! A backend never decides what a commit, a stall or a control action means: it asks this module
//! and applies the answer.
//!
//! - [`CommitPlan::decide`] turns what a worker reports for an attempt ([`Attempt`]) into a plan
//!   that needs no further reading of the graph: routes resolved to child indices (an unknown
//!   route fails the node, or continues it with `continueOnFail`), the continueOnFail output
//!   built. It depends only on the definition, so the Redis backend runs it in the worker and
//!   sends the plan to its script.
//! - The methods of [`ExecutionState`] in this module ([`ExecutionState::claim`],
//!   [`ExecutionState::commit`], [`ExecutionState::stall`], [`ExecutionState::revive_node`],
//!   [`ExecutionState::pause_effects`], ...) apply one input to the execution and return its
//!   complete [`Effects`]: nodes made ready, nodes skipped, a retry or delay to schedule, a
//!   dead-letter item, the events in order, the terminal status. The memory backend applies
//!   exactly these effects; the Redis scripts implement the same transitions over counters, and
//!   the model test (`crates/testkit/tests/model.rs`) checks that both agree with this module.
//!
//! Rules that are easy to get wrong, decided here:
//!
//! - A retry or delay committed after the execution ended (failed or cancelled by another node
//!   or an operator) does not fail the node and makes no dead-letter item: the node only
//!   waited, so it is *held*, shown as `pending`, like a ready node that was not handed out. A
//!   dead-letter retry that revives the execution runs it again.
//! - A node that fails for good while its execution is paused fails the execution.
//! - A lease that expires counts as an attempt: the next claim runs the next attempt. After
//!   `max_stalled` expiries the node fails for good with reason `stalled` (continueOnFail does
//!   not apply: the worker never reported an outcome) and goes to the dead-letter queue.
//!   A job whose lease expires after its execution ended is held, not counted.

use std::time::Duration;

use serde_json::Value;

use crate::dag::{CompiledWorkflow, NodeIndex};
use crate::data::failure_output;
use crate::event::{NodeEventStatus, WorkflowEventStatus};
use crate::id::ExecutionId;
use crate::state::{ExecutionState, NodeState, Transition, TransitionError};
use crate::status::{ExecutionStatus, NodeStatus};

/// What a worker reports for one attempt of a node, without the node's output data.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Attempt<'a> {
    /// The executor succeeded and chose `next_nodes` (all children when `None`).
    Completed {
        /// The children to run, by id.
        next_nodes: Option<&'a [String]>,
    },
    /// Failed for good.
    Failed {
        /// The error message.
        error: &'a str,
        /// Whether the node's children run anyway (`continueOnFail`).
        continue_on_fail: bool,
        /// Fields added to the failure output the children receive when the node continues
        /// (an object; for a sub-workflow node, the child's `partialResults`).
        details: Option<&'a Value>,
    },
    /// Run the node again after `delay`.
    Retry {
        /// The error of this attempt.
        error: &'a str,
        /// How long to wait.
        delay: Duration,
        /// Whether the next run is the next attempt (`false` for `retry_after`).
        consume_attempt: bool,
    },
    /// A delay node starts its wait.
    Delay {
        /// How long to wait.
        delay: Duration,
    },
    /// A sub-workflow node started its child execution (bound with
    /// [`ExecutionState::bind_child`]) and gives its worker slot back while the child runs.
    AwaitChild,
}

/// A commit decided before it is applied: everything that depends only on the definition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CommitPlan {
    /// Completed, routing to `routes` (child indices; all children when `None`).
    Complete {
        /// The chosen children.
        routes: Option<Vec<NodeIndex>>,
    },
    /// Failed with `continueOnFail`: the children run, receiving `output`.
    Continue {
        /// The error message.
        error: String,
        /// What the children receive as this node's data ([`failure_output`]).
        output: Value,
    },
    /// Failed for good.
    Fail {
        /// The error message.
        error: String,
    },
    /// Run again after `delay`.
    Retry {
        /// The error of this attempt.
        error: String,
        /// How long to wait.
        delay: Duration,
        /// Whether the next run is the next attempt.
        consume_attempt: bool,
    },
    /// A delay node starts its wait.
    Delay {
        /// How long to wait.
        delay: Duration,
    },
    /// A sub-workflow node waits for its child, holding no lease: the node stays ready (not
    /// handed out again) until the child's end is committed for it.
    AwaitChild,
}

impl CommitPlan {
    /// Decides attempt `attempt` of `node`: resolves its routes, and turns a route that names
    /// no child into a failure of the node (continued when the node has `continueOnFail`).
    pub fn decide(
        dag: &CompiledWorkflow,
        node: NodeIndex,
        attempt: u32,
        outcome: Attempt<'_>,
    ) -> Self {
        let failed = |error: String, continued: bool, details: Option<&Value>| {
            if continued {
                let mut output = failure_output(&dag.node(node).id, &error, attempt);
                if let (Value::Object(out), Some(Value::Object(extra))) = (&mut output, details) {
                    for (k, v) in extra {
                        out.insert(k.clone(), v.clone());
                    }
                }
                Self::Continue { error, output }
            } else {
                Self::Fail { error }
            }
        };
        match outcome {
            Attempt::Completed { next_nodes } => match resolve_routes(dag, node, next_nodes) {
                Ok(routes) => Self::Complete { routes },
                Err(err) => failed(
                    err.to_string(),
                    dag.node(node).settings.continue_on_fail,
                    None,
                ),
            },
            Attempt::Failed {
                error,
                continue_on_fail,
                details,
            } => failed(error.to_owned(), continue_on_fail, details),
            Attempt::Retry {
                error,
                delay,
                consume_attempt,
            } => Self::Retry {
                error: error.to_owned(),
                delay,
                consume_attempt,
            },
            Attempt::Delay { delay } => Self::Delay { delay },
            Attempt::AwaitChild => Self::AwaitChild,
        }
    }
}

impl CommitPlan {
    /// The event of the committed node, when the commit applies while its execution runs (or
    /// is paused): `completed` (carrying the stored output), `failed`, `retrying` or `delayed`
    /// (a node that starts waiting for its child has no event of its own: its `running` event
    /// was emitted at the claim, and the child's `started` event names it).
    /// Both backends emit exactly this; the Redis backend builds it in the worker.
    pub fn event(&self, node: NodeIndex, attempt: u32) -> Option<NodeEmit> {
        Some(match self {
            Self::Complete { .. } => NodeEmit {
                attempt: Some(attempt),
                with_output: true,
                ..NodeEmit::new(node, NodeEventStatus::Completed)
            },
            Self::Continue { error, .. } => NodeEmit::failed(node, attempt, error, true),
            Self::Fail { error } => NodeEmit::failed(node, attempt, error, false),
            Self::Retry { error, delay, .. } => NodeEmit {
                attempt: Some(attempt),
                error: Some(error.clone()),
                next_delay_ms: Some(millis(*delay)),
                ..NodeEmit::new(node, NodeEventStatus::Retrying)
            },
            Self::Delay { delay } => NodeEmit {
                next_delay_ms: Some(millis(*delay)),
                ..NodeEmit::new(node, NodeEventStatus::Delayed)
            },
            Self::AwaitChild => return None,
        })
    }
}

/// Resolves `next_nodes` of `node` to child indices (`None`: all children), or names the first
/// id that is not one of its children.
pub fn resolve_routes(
    dag: &CompiledWorkflow,
    node: NodeIndex,
    next_nodes: Option<&[String]>,
) -> Result<Option<Vec<NodeIndex>>, TransitionError> {
    let Some(ids) = next_nodes else {
        return Ok(None);
    };
    let children = &dag.node(node).children;
    let mut routes = Vec::with_capacity(ids.len());
    for id in ids {
        match dag.index_of(id).filter(|i| children.contains(i)) {
            Some(i) => routes.push(i),
            None => {
                return Err(TransitionError::UnknownRoute {
                    node: dag.node(node).id.clone(),
                    target: id.clone(),
                });
            }
        }
    }
    Ok(Some(routes))
}

/// Why a node went to the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterCause {
    /// It failed for good.
    Failed,
    /// Its lease expired more than `max_stalled` times.
    Stalled,
}

/// A dead-letter item to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPlan {
    /// The node.
    pub node: NodeIndex,
    /// Why.
    pub cause: DeadLetterCause,
    /// The last error.
    pub error: String,
    /// The attempt that failed.
    pub attempts: u32,
}

/// A `node:progress` event to emit, without ids and timestamps (the backend adds them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeEmit {
    /// The node.
    pub node: NodeIndex,
    /// Its new status.
    pub status: NodeEventStatus,
    /// The attempt, where it matters.
    pub attempt: Option<u32>,
    /// The error, for failures and retries.
    pub error: Option<String>,
    /// The wait before the next run, for retries and delays.
    pub next_delay_ms: Option<u64>,
    /// Failed-and-continued.
    pub continued: bool,
    /// Whether the event carries the node's stored output (completions).
    pub with_output: bool,
}

impl NodeEmit {
    /// The `failed` event of attempt `attempt`.
    fn failed(node: NodeIndex, attempt: u32, error: &str, continued: bool) -> Self {
        Self {
            attempt: Some(attempt),
            error: Some(error.to_owned()),
            continued,
            ..Self::new(node, NodeEventStatus::Failed)
        }
    }

    fn new(node: NodeIndex, status: NodeEventStatus) -> Self {
        Self {
            node,
            status,
            attempt: None,
            error: None,
            next_delay_ms: None,
            continued: false,
            with_output: false,
        }
    }
}

/// One event to emit, without ids and timestamps (the backend adds them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Emit {
    /// A `node:progress` event.
    Node(NodeEmit),
    /// A `workflow:status` event.
    Workflow {
        /// The execution's new status.
        status: WorkflowEventStatus,
        /// The error, when it failed.
        error: Option<String>,
    },
}

impl Emit {
    /// A `workflow:status` event without an error.
    fn workflow(status: WorkflowEventStatus) -> Self {
        Self::Workflow {
            status,
            error: None,
        }
    }
}

/// Everything one input changed, in the order a backend applies it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Effects {
    /// Nodes that became ready: append each to the ready queue, exactly once.
    pub ready: Vec<NodeIndex>,
    /// A node to put back at the head of the ready queue (a stalled job's next attempt).
    pub requeue: Option<NodeIndex>,
    /// Nodes that became skipped, in cascade order.
    pub skipped: Vec<NodeIndex>,
    /// A node to run again after a wait (retry or delay).
    pub schedule: Option<(NodeIndex, Duration)>,
    /// A dead-letter item to record.
    pub dead_letter: Option<DeadLetterPlan>,
    /// The events of the transition, in order.
    pub events: Vec<Emit>,
    /// Set when this input ended the execution.
    pub finished: Option<ExecutionStatus>,
}

impl Effects {
    fn from_transition(t: Transition) -> Self {
        let mut e = Self {
            ready: t.ready,
            skipped: t.skipped,
            ..Self::default()
        };
        e.events.extend(
            e.skipped
                .iter()
                .map(|&s| Emit::Node(NodeEmit::new(s, NodeEventStatus::Skipped))),
        );
        e.finished = t.finished;
        e
    }
}

/// Per-node bookkeeping beside the graph state: attempts, stalls and what users see.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeBook {
    /// What users see; `None` until the node is first made ready and touched.
    pub shown: Option<NodeStatus>,
    /// The attempt last handed out (0 before the first claim).
    pub attempt: u32,
    /// The attempt the next claim runs.
    pub next_attempt: u32,
    /// Times the node was handed to a worker in this execution (every claim; see
    /// [`NodeResult::claims`](crate::NodeResult::claims)).
    pub claims: u32,
    /// Lease expiries of the current run.
    pub stalls: u32,
    /// Whether a delay node's wait has passed (its next claim passes the input through).
    pub delay_elapsed: bool,
    /// Failed-and-continued.
    pub continued: bool,
    /// The last error.
    pub error: Option<String>,
    /// For a sub-workflow node: the child execution bound to its current run
    /// ([`ExecutionState::bind_child`]); a retry or a dead-letter retry unbinds it, so that
    /// the next run starts a fresh child.
    pub child: Option<ExecutionId>,
}

impl NodeBook {
    pub(crate) fn new() -> Self {
        Self {
            shown: None,
            attempt: 0,
            next_attempt: 1,
            claims: 0,
            stalls: 0,
            delay_elapsed: false,
            continued: false,
            error: None,
            child: None,
        }
    }
}

/// A claim granted by [`ExecutionState::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// The node handed out.
    pub node: NodeIndex,
    /// The attempt this run is.
    pub attempt: u32,
    /// Whether a delay node's wait has passed.
    pub delay_elapsed: bool,
}

impl Grant {
    /// The event of this claim: `running`, with the attempt. (Returned apart from
    /// [`Effects`], so that a claim allocates nothing.)
    pub fn event(&self) -> Emit {
        Emit::Node(NodeEmit {
            attempt: Some(self.attempt),
            ..NodeEmit::new(self.node, NodeEventStatus::Running)
        })
    }
}

/// The message of a node that stalled `stalls` times.
pub fn stalled_error(stalls: u32) -> String {
    format!("stalled: the lease expired {stalls} times (worker died or hung)")
}

impl ExecutionState {
    /// The bookkeeping of one node.
    pub fn book(&self, node: NodeIndex) -> &NodeBook {
        &self.books[node]
    }

    /// What users see of one node; `None` while it has not been made ready.
    pub fn node_status(&self, node: NodeIndex) -> Option<NodeStatus> {
        self.books[node].shown
    }

    /// Why the execution failed, once it has.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn ended(&self) -> bool {
        !matches!(
            self.status,
            ExecutionStatus::Running | ExecutionStatus::Paused
        )
    }

    /// Hands out `node` from the ready queue. `None` when it must not run: it is not ready
    /// (a stale entry), or the execution is not running, in which case it is held until a
    /// resume or a dead-letter retry. A grant's one event is [`Grant::event`].
    pub fn claim(&mut self, node: NodeIndex) -> Option<Grant> {
        if self.nodes[node] != NodeState::Ready {
            return None;
        }
        if self.status != ExecutionStatus::Running {
            self.hold(node);
            self.books[node].shown = Some(NodeStatus::Pending);
            return None;
        }
        let book = &mut self.books[node];
        book.attempt = book.next_attempt;
        book.claims = book.claims.saturating_add(1);
        book.shown = Some(NodeStatus::Running);
        Some(Grant {
            node,
            attempt: book.attempt,
            delay_elapsed: book.delay_elapsed,
        })
    }

    /// Binds a child execution to the current run of sub-workflow node `node` and returns the
    /// child that run starts: the one bound already when there is one (a replayed or stalled
    /// claim starts no second child), `proposed` otherwise. The node must be ready (handed
    /// out).
    pub fn bind_child(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
        proposed: ExecutionId,
    ) -> Result<ExecutionId, TransitionError> {
        self.check_ready(dag, node)?;
        Ok(*self.books[node].child.get_or_insert(proposed))
    }

    /// A claimed job given back unrun (its worker shut down): it is ready again.
    pub fn release(&mut self, node: NodeIndex) {
        if self.nodes[node] == NodeState::Ready {
            self.books[node].shown = Some(NodeStatus::Pending);
        }
    }

    /// Applies the commit of attempt `attempt` of `node`, decided as `plan`.
    pub fn commit(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
        attempt: u32,
        plan: &CommitPlan,
    ) -> Result<Effects, TransitionError> {
        match plan {
            CommitPlan::Complete { routes } => {
                let t = self.complete_routed(dag, node, routes.clone())?;
                let book = &mut self.books[node];
                book.shown = Some(NodeStatus::Completed);
                let mut effects = Effects::default();
                effects
                    .events
                    .extend(plan.event(node, attempt).map(Emit::Node));
                Ok(self.then(effects, t))
            }
            CommitPlan::Continue { error, .. } => self.fail_node(dag, node, attempt, error, true),
            CommitPlan::Fail { error } => self.fail_node(dag, node, attempt, error, false),
            CommitPlan::Retry {
                error,
                delay,
                consume_attempt,
            } => {
                self.check_ready(dag, node)?;
                let ended = self.ended();
                let book = &mut self.books[node];
                if *consume_attempt {
                    book.next_attempt = attempt + 1;
                }
                // A retry asks the rate limiter again, and starts a fresh child.
                book.delay_elapsed = false;
                book.child = None;
                book.error = Some(error.clone());
                let mut effects = Effects::default();
                if ended {
                    self.hold_waiting(node);
                    return Ok(effects);
                }
                self.books[node].shown = Some(NodeStatus::Delayed);
                effects.schedule = Some((node, *delay));
                effects
                    .events
                    .extend(plan.event(node, attempt).map(Emit::Node));
                Ok(effects)
            }
            CommitPlan::AwaitChild => {
                // The node stays ready and is not handed out again: the child's end is
                // committed for it under the same token.
                self.check_ready(dag, node)?;
                Ok(Effects::default())
            }
            CommitPlan::Delay { delay } => {
                self.check_ready(dag, node)?;
                let mut effects = Effects::default();
                if self.ended() {
                    self.hold_waiting(node);
                    return Ok(effects);
                }
                let book = &mut self.books[node];
                book.delay_elapsed = true;
                book.shown = Some(NodeStatus::Delayed);
                effects.schedule = Some((node, *delay));
                effects
                    .events
                    .extend(plan.event(node, attempt).map(Emit::Node));
                Ok(effects)
            }
        }
    }

    /// A node that only waited (a retry or a delay) when its execution ended: held.
    fn hold_waiting(&mut self, node: NodeIndex) {
        self.hold(node);
        self.books[node].shown = Some(NodeStatus::Pending);
    }

    fn fail_node(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
        attempt: u32,
        error: &str,
        continued: bool,
    ) -> Result<Effects, TransitionError> {
        self.fail_with(
            dag,
            node,
            attempt,
            error,
            continued,
            DeadLetterCause::Failed,
        )
    }

    fn fail_with(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
        attempt: u32,
        error: &str,
        continued: bool,
        cause: DeadLetterCause,
    ) -> Result<Effects, TransitionError> {
        let was = self.status;
        let t = self.fail(dag, node, continued)?;
        let book = &mut self.books[node];
        book.shown = Some(NodeStatus::Failed);
        book.error = Some(error.to_owned());
        book.continued = continued;
        let mut effects = Effects::default();
        effects.events.push(Emit::Node(NodeEmit::failed(
            node, attempt, error, continued,
        )));
        if !continued {
            // A node of a cancelled execution is not worth retrying: no dead letter.
            if was != ExecutionStatus::Cancelled {
                effects.dead_letter = Some(DeadLetterPlan {
                    node,
                    cause,
                    error: error.to_owned(),
                    attempts: attempt,
                });
            }
            if t.finished.is_some() {
                self.error = Some(format!("node {:?} failed: {error}", dag.node(node).id));
            }
        }
        Ok(self.then(effects, t))
    }

    /// Appends the effects of a graph transition (skips, readiness, the end) to `effects`.
    fn then(&mut self, mut effects: Effects, t: Transition) -> Effects {
        for &s in &t.skipped {
            self.books[s].shown = Some(NodeStatus::Skipped);
        }
        let rest = Effects::from_transition(t);
        effects.ready = rest.ready;
        effects.skipped = rest.skipped;
        effects.events.extend(rest.events);
        if let Some(status) = rest.finished {
            effects.finished = Some(status);
            effects.events.push(self.finish_event(status));
        }
        effects
    }

    fn finish_event(&self, status: ExecutionStatus) -> Emit {
        let (status, error) = match status {
            ExecutionStatus::Completed => (WorkflowEventStatus::Completed, None),
            ExecutionStatus::Cancelled => (WorkflowEventStatus::Cancelled, None),
            _ => (WorkflowEventStatus::Failed, self.error.clone()),
        };
        Emit::Workflow { status, error }
    }

    /// The lease of the running attempt of `node` expired. The attempt counts; past
    /// `max_stalled` expiries the node fails for good with cause [`DeadLetterCause::Stalled`].
    pub fn stall(&mut self, dag: &CompiledWorkflow, node: NodeIndex, max_stalled: u32) -> Effects {
        if self.nodes[node] != NodeState::Ready {
            return Effects::default();
        }
        if self.ended() {
            self.hold_waiting(node);
            return Effects::default();
        }
        let book = &mut self.books[node];
        book.stalls += 1;
        let (stalls, attempt) = (book.stalls, book.attempt.max(1));
        if stalls > max_stalled {
            let error = stalled_error(stalls);
            return self
                .fail_with(dag, node, attempt, &error, false, DeadLetterCause::Stalled)
                .unwrap_or_default();
        }
        book.next_attempt = attempt + 1;
        book.shown = Some(NodeStatus::Pending);
        Effects {
            requeue: Some(node),
            ..Effects::default()
        }
    }

    /// Revives `node`, which failed for good (a dead-letter retry): it runs again from attempt
    /// 1, a failed execution runs again, and the nodes held meanwhile are ready too.
    pub fn revive_node(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
    ) -> Result<Effects, TransitionError> {
        let was = self.status;
        let t = self.revive(dag, node)?;
        let book = &mut self.books[node];
        book.next_attempt = 1;
        book.stalls = 0;
        book.child = None;
        for &r in &t.ready {
            self.books[r].shown = Some(NodeStatus::Pending);
        }
        let mut effects = Effects {
            ready: t.ready,
            ..Effects::default()
        };
        if was != ExecutionStatus::Running {
            self.error = None;
            effects
                .events
                .push(Emit::workflow(WorkflowEventStatus::Resumed));
        }
        Ok(effects)
    }

    /// Pauses; `Err` carries a status that does not allow it. No event when it was paused
    /// already.
    pub fn pause_effects(&mut self) -> Result<Effects, ExecutionStatus> {
        let mut effects = Effects::default();
        if self.pause()? {
            effects
                .events
                .push(Emit::workflow(WorkflowEventStatus::Paused));
        }
        Ok(effects)
    }

    /// Resumes; the held nodes are ready again. No event when it was running already.
    pub fn resume_effects(&mut self) -> Result<Effects, ExecutionStatus> {
        let mut effects = Effects::default();
        let Some(ready) = self.resume()? else {
            return Ok(effects);
        };
        for &r in &ready {
            self.books[r].shown = Some(NodeStatus::Pending);
        }
        effects.ready = ready;
        effects
            .events
            .push(Emit::workflow(WorkflowEventStatus::Resumed));
        Ok(effects)
    }

    /// Cancels; `Ok(None)` when it was cancelled already, `Err` for a status that does not
    /// allow it.
    pub fn cancel_effects(&mut self) -> Result<Option<Effects>, ExecutionStatus> {
        match self.status {
            ExecutionStatus::Cancelled => return Ok(None),
            ExecutionStatus::Running | ExecutionStatus::Paused => {}
            other => return Err(other),
        }
        Ok(self.cancel().map(|t| self.then(Effects::default(), t)))
    }

    /// Fails the execution because its deadline passed; `None` when it had ended already.
    pub fn expire_effects(&mut self) -> Option<Effects> {
        let t = self.expire()?;
        self.error = Some("execution deadline exceeded".to_owned());
        Some(self.then(Effects::default(), t))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
