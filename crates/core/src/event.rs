//! Events: one per transition, with the original's field names on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::ExecutionId;

/// Something that happened to an execution or one of its nodes.
///
/// Serialized as `{"type": "node:progress", "executionId": ..., "nodeId": ..., "status": ...}` or
/// `{"type": "workflow:status", "executionId": ..., "status": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum EngineEvent {
    /// A node changed state.
    #[serde(rename = "node:progress")]
    Node(NodeEvent),
    /// An execution changed state.
    #[serde(rename = "workflow:status")]
    Workflow(WorkflowEvent),
}

impl EngineEvent {
    /// The execution the event belongs to.
    pub fn execution_id(&self) -> ExecutionId {
        match self {
            Self::Node(e) => e.execution_id,
            Self::Workflow(e) => e.execution_id,
        }
    }
}

/// What happened to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NodeEventStatus {
    /// An attempt started.
    Running,
    /// The node completed.
    Completed,
    /// The node failed for good (`continued` tells whether its children still run).
    Failed,
    /// An attempt failed and another is scheduled.
    Retrying,
    /// The node will not run.
    Skipped,
    /// The node waits on a delay.
    Delayed,
}

/// A node changed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NodeEvent {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The workflow.
    pub workflow_id: String,
    /// The node.
    pub node_id: String,
    /// What happened.
    pub status: NodeEventStatus,
    /// The node's output (completed) .
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The error message (failed, retrying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The attempt number (running, failed, retrying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Milliseconds until the next attempt (retrying) or the end of the delay (delayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_delay_ms: Option<u64>,
    /// For a failure: whether `continueOnFail` lets the children run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continued: bool,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// What happened to an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum WorkflowEventStatus {
    /// The execution was created and its roots enqueued.
    Started,
    /// Every node resolved.
    Completed,
    /// A node failed for good.
    Failed,
    /// Paused by the user.
    Paused,
    /// Resumed by the user.
    Resumed,
    /// Cancelled by the user.
    Cancelled,
}

/// An execution changed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WorkflowEvent {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The workflow.
    pub workflow_id: String,
    /// What happened.
    pub status: WorkflowEventStatus,
    /// For a sub-workflow's execution: the parent execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<ExecutionId>,
    /// For a sub-workflow's execution: the parent's node that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_node_id: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl NodeEvent {
    /// `status` of node `node_id` of execution `execution_id` (of `workflow_id`), now; the
    /// optional fields are set with the methods below.
    ///
    /// ```
    /// use spane_core::{ExecutionId, NodeEvent, NodeEventStatus};
    ///
    /// let e = NodeEvent::new(ExecutionId::new(), "orders", "charge", NodeEventStatus::Failed)
    ///     .error("card declined")
    ///     .attempt(2);
    /// assert_eq!(e.attempt, Some(2));
    /// ```
    pub fn new(
        execution_id: ExecutionId,
        workflow_id: impl Into<String>,
        node_id: impl Into<String>,
        status: NodeEventStatus,
    ) -> Self {
        Self {
            execution_id,
            workflow_id: workflow_id.into(),
            node_id: node_id.into(),
            status,
            data: None,
            error: None,
            attempt: None,
            next_delay_ms: None,
            continued: false,
            timestamp: now_millis(),
        }
    }

    /// Sets [`data`](Self::data).
    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets [`error`](Self::error).
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Sets [`attempt`](Self::attempt).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// Sets [`next_delay_ms`](Self::next_delay_ms).
    pub fn next_delay_ms(mut self, ms: u64) -> Self {
        self.next_delay_ms = Some(ms);
        self
    }

    /// Sets [`continued`](Self::continued).
    pub fn continued(mut self, continued: bool) -> Self {
        self.continued = continued;
        self
    }

    /// Sets [`timestamp`](Self::timestamp) (milliseconds since the Unix epoch).
    pub fn at(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

impl WorkflowEvent {
    /// `status` of execution `execution_id` (of `workflow_id`), now; the optional fields are
    /// set with the methods below.
    ///
    /// ```
    /// use spane_core::{ExecutionId, WorkflowEvent, WorkflowEventStatus};
    ///
    /// let e = WorkflowEvent::new(ExecutionId::new(), "orders", WorkflowEventStatus::Failed)
    ///     .error("node charge failed");
    /// assert_eq!(e.error.as_deref(), Some("node charge failed"));
    /// ```
    pub fn new(
        execution_id: ExecutionId,
        workflow_id: impl Into<String>,
        status: WorkflowEventStatus,
    ) -> Self {
        Self {
            execution_id,
            workflow_id: workflow_id.into(),
            status,
            parent_execution_id: None,
            parent_node_id: None,
            error: None,
            timestamp: now_millis(),
        }
    }

    /// Sets the parent link of a sub-workflow's execution: the parent execution and its node.
    pub fn parent(mut self, execution: ExecutionId, node_id: impl Into<String>) -> Self {
        self.parent_execution_id = Some(execution);
        self.parent_node_id = Some(node_id.into());
        self
    }

    /// Sets [`error`](Self::error).
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Sets [`timestamp`](Self::timestamp) (milliseconds since the Unix epoch).
    pub fn at(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// Receives events synchronously, in the order the backend produced them.
///
/// Backends call it inside their commit step, so events of one execution arrive in causal order;
/// implementations must not block (an event bus hands the events to a channel).
pub trait EventSink: Send + Sync + 'static {
    /// Takes the events of one transition.
    fn emit(&self, events: Vec<EngineEvent>);

    /// Whether anyone would receive [`EngineEvent::Node`] events now. A backend may skip
    /// building the node events of a transition when this is `false` (they would be dropped
    /// anyway); workflow events are always emitted. Defaults to `true`.
    fn wants_node_events(&self) -> bool {
        true
    }
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _events: Vec<EngineEvent>) {}

    fn wants_node_events(&self) -> bool {
        false
    }
}

/// Milliseconds since the Unix epoch, for event and record timestamps.
pub fn now_millis() -> i64 {
    // The system clock directly: this is called several times per node.
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl NodeEventStatus {
    /// The wire name, for example `"retrying"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Retrying => "retrying",
            Self::Skipped => "skipped",
            Self::Delayed => "delayed",
        }
    }
}

impl std::fmt::Display for NodeEventStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WorkflowEventStatus {
    /// The wire name, for example `"resumed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the execution is at rest after this transition: completed, failed, cancelled
    /// or paused — nothing changes it until someone acts on it. (Started and resumed
    /// executions run on.)
    pub fn is_at_rest(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Paused
        )
    }
}

impl std::fmt::Display for WorkflowEventStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod status_names {
    #[test]
    fn completed_failed_cancelled_and_paused_executions_are_at_rest() {
        use WorkflowEventStatus::*;
        let at_rest: Vec<_> = [Started, Completed, Failed, Paused, Resumed, Cancelled]
            .into_iter()
            .filter(|s| s.is_at_rest())
            .collect();
        assert_eq!(at_rest, vec![Completed, Failed, Paused, Cancelled]);
    }

    use super::*;

    /// `as_str` is the serde wire name, for every variant.
    #[test]
    fn names_are_the_wire_names() {
        use NodeEventStatus as N;
        for s in [
            N::Running,
            N::Completed,
            N::Failed,
            N::Retrying,
            N::Skipped,
            N::Delayed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
        use WorkflowEventStatus as W;
        for s in [
            W::Started,
            W::Completed,
            W::Failed,
            W::Paused,
            W::Resumed,
            W::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
    }
}
