//! The executor contract: what users implement to give a node type its behaviour.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::id::ExecutionId;

/// Runs nodes of one type.
///
/// Executors are shared by every worker task (`Arc<dyn NodeExecutor>`), so they take `&self`.
/// An execution is at-least-once: after a crash, an attempt may run again, so side effects
/// should be idempotent (use [`ExecutionContext::execution_id`] and
/// [`ExecutionContext::node_id`] as an idempotency key).
///
/// ```
/// use spane_core::{async_trait, ExecutionContext, NodeError, NodeExecutor, NodeOutput};
///
/// struct Double;
///
/// #[async_trait]
/// impl NodeExecutor for Double {
///     async fn execute(&self, ctx: ExecutionContext) -> Result<NodeOutput, NodeError> {
///         let n = ctx.input_data["n"].as_i64().ok_or_else(|| NodeError::fatal("n must be a number"))?;
///         Ok(NodeOutput::new(serde_json::json!({ "n": n * 2 })))
///     }
/// }
/// ```
#[async_trait]
pub trait NodeExecutor: Send + Sync + 'static {
    /// Runs one attempt of one node.
    async fn execute(&self, ctx: ExecutionContext) -> Result<NodeOutput, NodeError>;
}

/// Reads results of other nodes of the same execution on demand; provided by the backend.
#[async_trait]
pub trait ResultsSource: Send + Sync + 'static {
    /// Outputs of every node of `execution` that has one so far, by node id.
    async fn all_results(
        &self,
        execution: ExecutionId,
    ) -> Result<BTreeMap<String, Value>, NodeError>;
}

/// Everything an executor knows about the attempt it runs.
#[derive(Clone)]
pub struct ExecutionContext {
    /// The workflow being run.
    pub workflow_id: String,
    /// The definition version the execution is pinned to.
    pub workflow_version: u32,
    /// The execution.
    pub execution_id: ExecutionId,
    /// The node being run.
    pub node_id: String,
    /// The node's type.
    pub node_type: String,
    /// The node's input (see the data-passing rules).
    pub input_data: Value,
    /// The node's `config` as written in the definition.
    pub node_config: Value,
    /// Outputs of the direct parents whose data flows into this node, by node id.
    pub previous_results: BTreeMap<String, Value>,
    /// The parent execution, when this execution runs as a sub-workflow.
    pub parent_execution_id: Option<ExecutionId>,
    /// Nesting depth: 0 for a top-level execution.
    pub depth: u32,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// Cancelled when the worker stops this attempt (graceful shutdown past its deadline; and
    /// execution cancel, once that lands); long-running executors should watch it
    /// (`ctx.cancellation.cancelled().await`).
    pub cancellation: CancellationToken,
    results: Option<Arc<dyn ResultsSource>>,
}

impl fmt::Debug for ExecutionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionContext")
            .field("workflow_id", &self.workflow_id)
            .field("execution_id", &self.execution_id)
            .field("node_id", &self.node_id)
            .field("node_type", &self.node_type)
            .field("attempt", &self.attempt)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl ExecutionContext {
    /// A context for `node_id` of `execution_id`; the remaining fields start empty.
    /// Backends build one per attempt; tests of executors can build their own.
    pub fn new(
        workflow_id: impl Into<String>,
        execution_id: ExecutionId,
        node_id: impl Into<String>,
        node_type: impl Into<String>,
    ) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            workflow_version: 1,
            execution_id,
            node_id: node_id.into(),
            node_type: node_type.into(),
            input_data: Value::Null,
            node_config: Value::Null,
            previous_results: BTreeMap::new(),
            parent_execution_id: None,
            depth: 0,
            attempt: 1,
            cancellation: CancellationToken::new(),
            results: None,
        }
    }

    /// Sets where [`ExecutionContext::all_results`] reads from.
    pub fn with_results_source(mut self, source: Arc<dyn ResultsSource>) -> Self {
        self.results = Some(source);
        self
    }

    /// Outputs of every node of this execution that has one so far, by node id. Read on demand
    /// (one backend read), so executors that do not need it pay nothing.
    pub async fn all_results(&self) -> Result<BTreeMap<String, Value>, NodeError> {
        match &self.results {
            Some(source) => source.all_results(self.execution_id).await,
            None => Ok(self.previous_results.clone()),
        }
    }
}

/// What a successful attempt returns.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeOutput {
    /// The node's output, handed to its children.
    pub data: Value,
    /// The children to run; the others are skipped. `None` runs every child, `Some(vec![])` none.
    pub next_nodes: Option<Vec<String>>,
}

impl NodeOutput {
    /// An output that runs every child.
    pub fn new(data: Value) -> Self {
        Self {
            data,
            next_nodes: None,
        }
    }

    /// Runs only the named children (conditional branching).
    pub fn with_next_nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.next_nodes = Some(nodes.into_iter().map(Into::into).collect());
        self
    }
}

impl From<Value> for NodeOutput {
    fn from(data: Value) -> Self {
        Self::new(data)
    }
}

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    /// What went wrong.
    pub message: String,
    /// Whether the retry policy may run another attempt.
    pub retryable: bool,
    /// Ask to be run again after this long without consuming an attempt (the remote side
    /// rate-limited the call).
    pub retry_after: Option<Duration>,
}

impl NodeError {
    /// A failure that the retry policy may retry (network errors, timeouts, 5xx).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure that no retry can fix (bad input, 4xx): remaining attempts are skipped.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// Run the node again after `delay` without consuming an attempt.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: Some(delay),
        }
    }
}

/// An executor made from an async closure; see [`executor_fn`].
pub struct FnExecutor<F>(F);

impl<F> fmt::Debug for FnExecutor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnExecutor")
    }
}

/// Wraps an async closure as a [`NodeExecutor`].
///
/// ```
/// use spane_core::{executor_fn, NodeOutput};
///
/// let upper = executor_fn(|ctx| async move {
///     let s = ctx.input_data.as_str().unwrap_or_default().to_uppercase();
///     Ok(NodeOutput::new(s.into()))
/// });
/// # let _ = upper;
/// ```
pub fn executor_fn<F, Fut>(f: F) -> FnExecutor<F>
where
    F: Fn(ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<NodeOutput, NodeError>> + Send + 'static,
{
    FnExecutor(f)
}

#[async_trait]
impl<F, Fut> NodeExecutor for FnExecutor<F>
where
    F: Fn(ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<NodeOutput, NodeError>> + Send + 'static,
{
    async fn execute(&self, ctx: ExecutionContext) -> Result<NodeOutput, NodeError> {
        (self.0)(ctx).await
    }
}
