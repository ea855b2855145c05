//! Execution records: what an execution looks like from outside (API reads, history).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::ExecutionId;
use crate::status::{ExecutionStatus, NodeStatus};

/// One execution, with the results of its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ExecutionRecord {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The workflow it runs.
    pub workflow_id: String,
    /// The definition version it is pinned to.
    pub workflow_version: u32,
    /// Its status.
    pub status: ExecutionStatus,
    /// The data its roots received.
    pub initial_data: Value,
    /// The execution that started this one as a sub-workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<ExecutionId>,
    /// The node of the parent execution that started this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_node_id: Option<String>,
    /// Nesting depth: 0 for a top-level execution.
    pub depth: u32,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// End time, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// Results of the nodes that have one, by node id.
    pub node_results: BTreeMap<String, NodeResult>,
}

impl ExecutionRecord {
    /// The output of `node`, when it completed (or failed with `continueOnFail`).
    pub fn output(&self, node: &str) -> Option<&Value> {
        self.node_results.get(node).and_then(|r| r.data.as_ref())
    }
}

/// The result of one node within an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NodeResult {
    /// The node.
    pub node_id: String,
    /// Its status.
    pub status: NodeStatus,
    /// Its output (completed), or the error object handed to its children (failed and continued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The last error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The attempt number of the node's last run, as counted against
    /// `retryPolicy.maxAttempts` (from 1). A retried failure and an expired lease move on to
    /// the next attempt; a `retry_after` error, a rate-limit wait, a delay node's wait and a
    /// release at shutdown do not (the next run is the same attempt). A dead-letter retry
    /// starts again from 1. 0 when no worker was handed the node (a skipped node).
    pub attempts: u32,
    /// Times the node was handed to a worker (claimed) in this execution, dead-letter retries
    /// included: one per run, whether it counted as an attempt or not (`retry_after`, a
    /// rate-limit wait, a delay node's second claim, a claim after a release). 0 in records
    /// written before this field existed.
    #[serde(default)]
    pub claims: u32,
    /// Failed, but `continueOnFail` let its children run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continued: bool,
    /// First attempt's start, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// Resolution time, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

impl NodeResult {
    /// The result of node `node_id` with `status` and nothing else yet: no data, no error, no
    /// attempts or claims, not continued, no times. Set the other fields directly.
    pub fn new(node_id: impl Into<String>, status: NodeStatus) -> Self {
        Self {
            node_id: node_id.into(),
            status,
            data: None,
            error: None,
            attempts: 0,
            claims: 0,
            continued: false,
            started_at: None,
            finished_at: None,
        }
    }
}

impl ExecutionRecord {
    /// The record of execution `execution_id` of `workflow_id` at `workflow_version`, created at
    /// `created_at` (milliseconds since the Unix epoch) with `initial_data`: top level (no
    /// parent, depth 0), no error, not finished, no node results yet. Set the other fields
    /// directly.
    pub fn new(
        execution_id: ExecutionId,
        workflow_id: impl Into<String>,
        workflow_version: u32,
        status: ExecutionStatus,
        initial_data: Value,
        created_at: i64,
    ) -> Self {
        Self {
            execution_id,
            workflow_id: workflow_id.into(),
            workflow_version,
            status,
            initial_data,
            parent_execution_id: None,
            parent_node_id: None,
            depth: 0,
            error: None,
            created_at,
            finished_at: None,
            node_results: BTreeMap::new(),
        }
    }
}
