//! What flows through a queue: executions to start, claimed node jobs, and commits.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spane_core::{CompiledWorkflow, ExecutionId, ExecutionStatus, NodeIndex};
use ulid::Ulid;

/// Identifies one worker incarnation. Orphaned jobs are reclaimed by lease expiry, never by
/// worker id, so a restarted worker gets a fresh id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerId(String);

impl WorkerId {
    /// A fresh, unique worker id.
    pub fn new() -> Self {
        Self(format!("worker-{}", Ulid::new()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for WorkerId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new execution for the queue to create: its roots become ready at once.
///
/// ```
/// # use std::sync::Arc;
/// # use serde_json::json;
/// # use spane_core::{AnyNodeType, ExecutionId, NodeDefinition, WorkflowDefinition};
/// use spane_queue::backend::StartExecution;
///
/// let dag = WorkflowDefinition::new("w", "W")
///     .node(NodeDefinition::new("a", "noop"))
///     .compile(&AnyNodeType)
///     .unwrap();
/// let start = StartExecution::new(ExecutionId::new(), Arc::new(dag), 1, json!({"x": 1}))
///     .deadline(Some(4_102_444_800_000));
/// assert_eq!(start.depth, 0);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StartExecution {
    /// The new execution's id.
    pub execution_id: ExecutionId,
    /// The compiled definition, pinned for the whole execution.
    pub workflow: Arc<CompiledWorkflow>,
    /// The definition version.
    pub workflow_version: u32,
    /// The data every root receives.
    pub initial_data: Value,
    /// The parent execution, for a sub-workflow.
    pub parent_execution_id: Option<ExecutionId>,
    /// The parent's node that started this execution, for a sub-workflow.
    pub parent_node_id: Option<String>,
    /// Nesting depth.
    pub depth: u32,
    /// When the whole execution must have ended, milliseconds since the Unix epoch: past it,
    /// the execution fails ("execution deadline exceeded") and running executors are
    /// cancelled.
    pub deadline: Option<i64>,
    /// For a re-run: the earlier execution and the outcomes it keeps.
    pub rerun: Option<Arc<RerunStart>>,
    /// The idempotency key this start was sent with (see
    /// [`IdempotencyKeys`](crate::IdempotencyKeys)): a start of an existing execution that
    /// was created with the same key succeeds without change.
    pub idempotency_key: Option<String>,
}

/// What a re-run starts from (see [`spane_core::rerun`]): the nodes that keep the outcome the
/// earlier execution recorded, with their outputs, and optionally a changed input for the
/// node re-run from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RerunStart {
    /// The execution re-run.
    pub of: ExecutionId,
    /// Per node of the new execution's graph: its recorded outcome, when it keeps one.
    pub seeds: Vec<Option<spane_core::rerun::Seed>>,
    /// Per node: the recorded output of a kept node (completed, or failed-and-continued).
    pub outputs: Vec<Option<Value>>,
    /// A node that runs with this input instead of the one its parents pass.
    pub input: Option<(NodeIndex, Value)>,
}

impl RerunStart {
    /// A re-run of `of` keeping `seeds` with `outputs`.
    pub fn new(
        of: ExecutionId,
        seeds: Vec<Option<spane_core::rerun::Seed>>,
        outputs: Vec<Option<Value>>,
    ) -> Self {
        Self {
            of,
            seeds,
            outputs,
            input: None,
        }
    }

    /// Node `node` runs with `input`.
    pub fn with_input(mut self, node: NodeIndex, input: Value) -> Self {
        self.input = Some((node, input));
        self
    }
}

impl StartExecution {
    /// A top-level execution of `workflow` (pinned at `workflow_version`) whose roots receive
    /// `initial_data`.
    pub fn new(
        execution_id: ExecutionId,
        workflow: Arc<CompiledWorkflow>,
        workflow_version: u32,
        initial_data: Value,
    ) -> Self {
        Self {
            execution_id,
            workflow,
            workflow_version,
            initial_data,
            parent_execution_id: None,
            parent_node_id: None,
            depth: 0,
            deadline: None,
            rerun: None,
            idempotency_key: None,
        }
    }

    /// Makes it a re-run that starts from what `rerun` keeps.
    pub fn rerun(mut self, rerun: RerunStart) -> Self {
        self.rerun = Some(Arc::new(rerun));
        self
    }

    /// Makes it the child of node `node_id` of execution `parent`, at nesting depth `depth`.
    pub fn child_of(mut self, parent: ExecutionId, node_id: impl Into<String>, depth: u32) -> Self {
        self.parent_execution_id = Some(parent);
        self.parent_node_id = Some(node_id.into());
        self.depth = depth;
        self
    }

    /// Sets the deadline of the whole execution (milliseconds since the Unix epoch).
    pub fn deadline(mut self, deadline: Option<i64>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sends the start with an idempotency key: starting again an execution that was created
    /// with the same key succeeds without change (see
    /// [`IdempotencyKeys`](crate::IdempotencyKeys), which maps keys to execution ids).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A node job claimed by a worker, with everything needed to run it (one round trip).
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The workflow.
    pub workflow_id: String,
    /// The pinned definition version.
    pub workflow_version: u32,
    /// The node's index in the compiled workflow.
    pub node: NodeIndex,
    /// The node's id.
    pub node_id: String,
    /// The node's children (indices in the compiled workflow), as the pinned definition has
    /// them. Backends use them to read the children's join state along with the node's own in
    /// the commit.
    pub children: Vec<NodeIndex>,
    /// The attempt this claim runs, starting at 1 (see
    /// [`NodeResult::attempts`](spane_core::NodeResult::attempts)).
    pub attempt: u32,
    /// Times the node has been claimed in this execution, this claim included (see
    /// [`NodeResult::claims`](spane_core::NodeResult::claims)).
    pub claims: u32,
    /// Fencing token: a commit carrying a token other than the current lease's is refused.
    pub token: u64,
    /// The node's input, by the data-passing rules.
    pub input: Value,
    /// Outputs of the parents whose data flows into the node, by node id.
    pub previous_results: BTreeMap<String, Value>,
    /// The parent execution, for a sub-workflow.
    pub parent_execution_id: Option<ExecutionId>,
    /// Nesting depth.
    pub depth: u32,
    /// The job comes back from a wait it was given: for a delay node, the delay has elapsed
    /// (pass the data through); for other nodes, the rate-limit slot it reserved has come.
    pub delay_elapsed: bool,
    /// How long the claim is valid without renewal.
    pub lease: Duration,
    /// When the job became claimable (ready, or due after a delay), milliseconds since the
    /// Unix epoch: the claim time minus this is the time it waited in the queue.
    pub ready_at: Option<i64>,
}

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NodeCommit {
    /// The node completed; `next_nodes` restricts which children run.
    Completed {
        /// The output.
        data: Value,
        /// The children to run (`None`: all).
        next_nodes: Option<Vec<String>>,
    },
    /// The node failed for good.
    Failed {
        /// The error message.
        error: String,
        /// Record it as failed-and-continued and run the children.
        continue_on_fail: bool,
        /// Fields added to the output the children receive when it continues (an object).
        details: Option<Value>,
    },
    /// Run the node again after `delay`.
    Retry {
        /// The error of this attempt.
        error: String,
        /// The backoff.
        delay: Duration,
        /// Whether this attempt counts against `maxAttempts` (false when the remote side asked
        /// to be called later).
        consume_attempt: bool,
    },
    /// A delay node starts waiting; it is claimed again with `delay_elapsed` set.
    Delay {
        /// How long to wait.
        delay: Duration,
    },
    /// A sub-workflow node started `child` and waits for it without holding its lease: the
    /// child's end is committed for the node later, exactly once, under the claim's token
    /// (see [`ChildExecutions`](crate::ChildExecutions)).
    AwaitChild {
        /// The child execution.
        child: ExecutionId,
    },
}

impl NodeCommit {
    /// A failure for good, without details.
    pub fn failed(error: impl Into<String>, continue_on_fail: bool) -> Self {
        Self::Failed {
            error: error.into(),
            continue_on_fail,
            details: None,
        }
    }
}

impl NodeCommit {
    /// The commit as the core's rules see it: everything but the output data.
    pub(crate) fn attempt(&self) -> spane_core::Attempt<'_> {
        match self {
            Self::Completed { next_nodes, .. } => spane_core::Attempt::Completed {
                next_nodes: next_nodes.as_deref(),
            },
            Self::Failed {
                error,
                continue_on_fail,
                details,
            } => spane_core::Attempt::Failed {
                error,
                continue_on_fail: *continue_on_fail,
                details: details.as_ref(),
            },
            Self::Retry {
                error,
                delay,
                consume_attempt,
            } => spane_core::Attempt::Retry {
                error,
                delay: *delay,
                consume_attempt: *consume_attempt,
            },
            Self::Delay { delay } => spane_core::Attempt::Delay { delay: *delay },
            Self::AwaitChild { .. } => spane_core::Attempt::AwaitChild,
        }
    }
}

/// What the queue did with a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitOutcome {
    /// Applied; `finished` is set when this commit ended the execution.
    Applied {
        /// The execution's final status, when this commit decided it.
        finished: Option<ExecutionStatus>,
    },
    /// Refused: the claim's lease was lost (expired and taken by another worker, or the job
    /// was already committed). The other owner's result stands.
    Stale,
}
