//! The execution state machine: the semantics every backend implements.
//!
//! Pure and synchronous. The in-memory backend runs it directly under its lock; the Redis backend
//! implements the same transitions inside its commit script and is tested against the same
//! scenarios. Rules (see the README, "Semantics"):
//!
//! - Every root is ready at start and receives the initial data.
//! - A completed parent keeps the edge to a child *live* unless it returned `next_nodes` without
//!   that child; a parent that failed with `continueOnFail` keeps all its edges live; a skipped
//!   parent's edges are dead.
//! - A node whose parents have all resolved is ready if at least one edge into it is live, and
//!   skipped otherwise; skips cascade.
//! - A node that fails for good fails the execution once: nothing new becomes ready (nodes that
//!   would have are *held*), nodes already running finish and are recorded.
//! - A node that failed for good can be revived (a dead-letter retry): it is ready again, the
//!   execution runs again, and the held nodes are ready too.
//! - Pause holds every node that has not started (in-flight ones finish and are recorded, their
//!   children are held); resume makes the held nodes ready again. Cancel ends the execution:
//!   nothing not yet started will run.
//! - The execution completes when every node is resolved, decided by the transition that resolves
//!   the last one: exactly one `completed` or `failed`.

use crate::dag::{CompiledWorkflow, NodeIndex};
use crate::rules::NodeBook;
use crate::status::ExecutionStatus;

/// Where one node is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    /// Some parent has not resolved yet.
    Waiting,
    /// Enqueued (or running, or waiting on a delay): exactly once per node.
    Ready,
    /// Finished; `routes` holds the children it chose (`None`: all of them).
    Completed {
        /// The children the node routed to, when it returned `next_nodes`.
        routes: Option<Vec<NodeIndex>>,
    },
    /// Failed for good; `continued` when `continueOnFail` let its children run.
    Failed {
        /// Whether the failure was recorded as failed-and-continued.
        continued: bool,
    },
    /// Not run.
    Skipped,
    /// Ready, but not handed out because the execution was paused, failed or cancelled; resume
    /// (or a dead-letter retry that revives the execution) makes it ready again.
    Held,
}

impl NodeState {
    fn is_resolved(&self) -> bool {
        matches!(
            self,
            Self::Completed { .. } | Self::Failed { .. } | Self::Skipped
        )
    }

    /// Whether the edge from a node in this state to `child` carries data.
    fn feeds(&self, child: NodeIndex) -> bool {
        match self {
            Self::Completed { routes: None } | Self::Failed { continued: true } => true,
            Self::Completed { routes: Some(r) } => r.contains(&child),
            _ => false,
        }
    }
}

/// What one transition changed, for the backend to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    /// Nodes that became ready: enqueue each exactly once.
    pub ready: Vec<NodeIndex>,
    /// Nodes that became skipped.
    pub skipped: Vec<NodeIndex>,
    /// Set when this transition ended the execution.
    pub finished: Option<ExecutionStatus>,
}

/// A transition that the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The node is not ready (never enqueued, or already resolved): a duplicate or stale commit.
    #[error("node {node:?} is not ready (state {state:?})")]
    NotReady {
        /// The node id.
        node: String,
        /// Its current state.
        state: NodeState,
    },
    /// Only a node that failed for good, in an execution that is failed or running, can be
    /// revived.
    #[error("node {node:?} cannot be revived (state {state:?}, execution {status})")]
    NotRevivable {
        /// The node id.
        node: String,
        /// Its state.
        state: NodeState,
        /// The execution's status.
        status: ExecutionStatus,
    },
    /// `next_nodes` names a node that is not a child of the node.
    #[error("node {node:?}: next_nodes names {target:?}, which is not one of its outputs")]
    UnknownRoute {
        /// The node id.
        node: String,
        /// The unknown target.
        target: String,
    },
}

/// The state of one execution's graph.
#[derive(Debug, Clone)]
pub struct ExecutionState {
    pub(crate) nodes: Vec<NodeState>,
    /// Parents not yet resolved, per node.
    remaining: Vec<usize>,
    /// Parents resolved with a live edge into the node.
    live: Vec<usize>,
    unresolved: usize,
    pub(crate) status: ExecutionStatus,
    /// Per node: attempts, stalls and what users see (see [`crate::rules`]).
    pub(crate) books: Vec<NodeBook>,
    /// Why the execution failed, once it has.
    pub(crate) error: Option<String>,
}

impl ExecutionState {
    /// A new execution of `dag`: the roots are ready and listed in the returned transition.
    pub fn start(dag: &CompiledWorkflow) -> (Self, Transition) {
        let n = dag.nodes().len();
        let mut nodes = vec![NodeState::Waiting; n];
        for &r in dag.roots() {
            nodes[r] = NodeState::Ready;
        }
        let state = Self {
            nodes,
            remaining: dag.nodes().iter().map(|n| n.parents.len()).collect(),
            live: vec![0; n],
            unresolved: n,
            status: ExecutionStatus::Running,
            books: vec![NodeBook::new(); n],
            error: None,
        };
        let t = Transition {
            ready: dag.roots().to_vec(),
            ..Transition::default()
        };
        (state, t)
    }

    /// A new execution of `dag` in which the nodes given a seed are already resolved with the
    /// outcome a previous execution recorded (a re-run, see [`crate::rerun`]): the others
    /// become ready, skipped or waiting exactly as if the seeded nodes had just resolved in
    /// that way. The returned transition lists the nodes ready at start and those skipped by
    /// the seeds. Seeds must be closed under ancestors (every parent of a seeded node is
    /// seeded), which [`crate::rerun::RerunPlan`] guarantees.
    pub fn seeded(
        dag: &CompiledWorkflow,
        seeds: &[Option<crate::rerun::Seed>],
    ) -> (Self, Transition) {
        use crate::rerun::Seed;
        let (mut state, _) = Self::start(dag);
        for (i, seed) in seeds.iter().enumerate() {
            let Some(seed) = seed else { continue };
            state.nodes[i] = match seed {
                Seed::Completed { routes } => NodeState::Completed {
                    routes: routes.clone(),
                },
                Seed::Continued => NodeState::Failed { continued: true },
                Seed::Skipped => NodeState::Skipped,
            };
            let book = &mut state.books[i];
            book.shown = Some(match seed {
                Seed::Completed { .. } => crate::status::NodeStatus::Completed,
                Seed::Continued => crate::status::NodeStatus::Failed,
                Seed::Skipped => crate::status::NodeStatus::Skipped,
            });
            book.continued = matches!(seed, Seed::Continued);
        }
        let mut t = Transition::default();
        for i in crate::rerun::topological_order(dag) {
            if seeds.get(i).is_some_and(Option::is_some) {
                let step = state.resolve(dag, i);
                t.ready.extend(step.ready);
                t.skipped.extend(step.skipped);
            }
        }
        for &r in dag.roots() {
            if state.nodes[r] == NodeState::Ready {
                t.ready.push(r);
            }
        }
        for &s in &t.skipped {
            state.books[s].shown = Some(crate::status::NodeStatus::Skipped);
        }
        t.ready.sort_unstable();
        (state, t)
    }

    /// Per node: parents not resolved yet, and parents resolved with a live edge into it (the
    /// join counters a backend stores).
    pub fn join_counters(&self, node: NodeIndex) -> (usize, usize) {
        (self.remaining[node], self.live[node])
    }

    /// Nodes not resolved yet.
    pub fn unresolved(&self) -> usize {
        self.unresolved
    }

    /// The execution's status.
    pub fn status(&self) -> ExecutionStatus {
        self.status
    }

    /// The state of one node.
    pub fn node(&self, index: NodeIndex) -> &NodeState {
        &self.nodes[index]
    }

    /// Parents whose data flows into `node`: completed parents that routed to it and parents
    /// that failed with `continueOnFail`, in the order of the node's `inputs`.
    pub fn live_parents<'a>(
        &'a self,
        dag: &'a CompiledWorkflow,
        node: NodeIndex,
    ) -> impl Iterator<Item = NodeIndex> + 'a {
        dag.node(node)
            .parents
            .iter()
            .copied()
            .filter(move |&p| self.nodes[p].feeds(node))
    }

    /// Records that `node` completed, routing to `next_nodes` (all children when `None`).
    pub fn complete(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
        next_nodes: Option<&[String]>,
    ) -> Result<Transition, TransitionError> {
        self.check_ready(dag, node)?;
        let routes = crate::rules::resolve_routes(dag, node, next_nodes)?;
        self.complete_routed(dag, node, routes)
    }

    /// Records that `node` completed, routing to the children `routes` (indices, all children
    /// when `None`), as [`resolve_routes`](crate::rules::resolve_routes) resolved them.
    pub fn complete_routed(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
        routes: Option<Vec<NodeIndex>>,
    ) -> Result<Transition, TransitionError> {
        self.check_ready(dag, node)?;
        self.nodes[node] = NodeState::Completed { routes };
        Ok(self.resolve(dag, node))
    }

    /// Records that `node` failed for good. With `continued` (its `continueOnFail`), its children
    /// run and the execution can still complete; otherwise the execution fails.
    pub fn fail(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
        continued: bool,
    ) -> Result<Transition, TransitionError> {
        self.check_ready(dag, node)?;
        self.nodes[node] = NodeState::Failed { continued };
        if continued {
            return Ok(self.resolve(dag, node));
        }
        // Failed for good: the node stays unresolved (it can be revived) and the execution
        // fails, once. A paused execution fails too: otherwise its resume would leave it
        // running with a node that can never resolve.
        if matches!(
            self.status,
            ExecutionStatus::Running | ExecutionStatus::Paused
        ) {
            self.status = ExecutionStatus::Failed;
            return Ok(Transition {
                finished: Some(ExecutionStatus::Failed),
                ..Transition::default()
            });
        }
        Ok(Transition::default())
    }

    /// Records that a ready node was not handed out because the execution is not running
    /// (paused, failed or cancelled).
    pub fn hold(&mut self, node: NodeIndex) {
        if self.nodes[node] == NodeState::Ready && self.status != ExecutionStatus::Running {
            self.nodes[node] = NodeState::Held;
        }
    }

    /// Pauses a running execution. `Ok(true)` when this call paused it, `Ok(false)` when it
    /// was already paused.
    pub fn pause(&mut self) -> Result<bool, ExecutionStatus> {
        match self.status {
            ExecutionStatus::Running => {
                self.status = ExecutionStatus::Paused;
                Ok(true)
            }
            ExecutionStatus::Paused => Ok(false),
            other => Err(other),
        }
    }

    /// Resumes a paused execution and returns the held nodes, now ready again (`Ok(None)`
    /// when it was already running). A finished, failed or cancelled execution cannot resume.
    pub fn resume(&mut self) -> Result<Option<Vec<NodeIndex>>, ExecutionStatus> {
        match self.status {
            ExecutionStatus::Paused => {
                self.status = ExecutionStatus::Running;
                Ok(Some(self.release_held()))
            }
            ExecutionStatus::Running => Ok(None),
            other => Err(other),
        }
    }

    fn release_held(&mut self) -> Vec<NodeIndex> {
        let mut ready = Vec::new();
        for (i, s) in self.nodes.iter_mut().enumerate() {
            if *s == NodeState::Held {
                *s = NodeState::Ready;
                ready.push(i);
            }
        }
        ready
    }

    /// Revives a node that failed for good (a dead-letter retry): the node is ready again, a
    /// failed execution runs again, and the nodes dropped meanwhile are ready too.
    pub fn revive(
        &mut self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
    ) -> Result<Transition, TransitionError> {
        if self.nodes[node] != (NodeState::Failed { continued: false })
            || !matches!(
                self.status,
                ExecutionStatus::Failed | ExecutionStatus::Running
            )
        {
            return Err(TransitionError::NotRevivable {
                node: dag.node(node).id.clone(),
                state: self.nodes[node].clone(),
                status: self.status,
            });
        }
        self.status = ExecutionStatus::Running;
        self.nodes[node] = NodeState::Ready;
        let mut ready = vec![node];
        ready.extend(self.release_held());
        Ok(Transition {
            ready,
            ..Transition::default()
        })
    }

    /// Ends a running or paused execution as cancelled. Returns `None` when it had already
    /// ended.
    pub fn cancel(&mut self) -> Option<Transition> {
        if self.status.is_terminal() {
            return None;
        }
        self.status = ExecutionStatus::Cancelled;
        Some(Transition {
            finished: Some(ExecutionStatus::Cancelled),
            ..Transition::default()
        })
    }

    /// Ends a running or paused execution as failed because its deadline passed. Returns
    /// `None` when it had already ended.
    pub fn expire(&mut self) -> Option<Transition> {
        if self.status.is_terminal() {
            return None;
        }
        self.status = ExecutionStatus::Failed;
        Some(Transition {
            finished: Some(ExecutionStatus::Failed),
            ..Transition::default()
        })
    }

    pub(crate) fn check_ready(
        &self,
        dag: &CompiledWorkflow,
        node: NodeIndex,
    ) -> Result<(), TransitionError> {
        match &self.nodes[node] {
            NodeState::Ready => Ok(()),
            other => Err(TransitionError::NotReady {
                node: dag.node(node).id.clone(),
                state: other.clone(),
            }),
        }
    }

    /// Propagates the resolution of `node` to its descendants.
    fn resolve(&mut self, dag: &CompiledWorkflow, node: NodeIndex) -> Transition {
        let mut t = Transition::default();
        self.unresolved -= 1;
        // When the execution is paused or has ended, propagation still runs (so a resumed or
        // revived execution can finish) but nothing new is handed out.
        let running = self.status == ExecutionStatus::Running;
        let live = running || self.status == ExecutionStatus::Paused;
        let mut work = vec![node];
        while let Some(parent) = work.pop() {
            for &child in &dag.node(parent).children {
                self.remaining[child] -= 1;
                if self.nodes[parent].feeds(child) {
                    self.live[child] += 1;
                }
                if self.remaining[child] == 0 && self.nodes[child] == NodeState::Waiting {
                    if self.live[child] > 0 && running {
                        self.nodes[child] = NodeState::Ready;
                        t.ready.push(child);
                    } else if self.live[child] > 0 {
                        self.nodes[child] = NodeState::Held;
                    } else {
                        self.nodes[child] = NodeState::Skipped;
                        self.unresolved -= 1;
                        t.skipped.push(child);
                        work.push(child);
                    }
                }
            }
        }
        if self.unresolved == 0 && live {
            self.status = ExecutionStatus::Completed;
            t.finished = Some(ExecutionStatus::Completed);
        }
        t
    }

    /// Whether every node has resolved.
    pub fn all_resolved(&self) -> bool {
        self.nodes.iter().all(NodeState::is_resolved)
    }
}
