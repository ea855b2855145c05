//! Validation errors: everything wrong with a definition, each naming the node and the field.

use std::fmt;

/// One problem found in a workflow definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The workflow id is empty.
    #[error("workflow id is empty")]
    EmptyWorkflowId,
    /// The workflow has no nodes.
    #[error("workflow has no nodes")]
    NoNodes,
    /// A node id is empty.
    #[error("node #{index}: id is empty")]
    EmptyNodeId {
        /// Position of the node in `nodes`.
        index: usize,
    },
    /// Two nodes share an id.
    #[error("node {node:?}: duplicate id")]
    DuplicateNodeId {
        /// The repeated id.
        node: String,
    },
    /// `inputs` or `outputs` names a node that does not exist.
    #[error("node {node:?}: {field} references unknown node {reference:?}")]
    UnknownReference {
        /// The node whose list holds the reference.
        node: String,
        /// `inputs` or `outputs`.
        field: &'static str,
        /// The unknown id.
        reference: String,
    },
    /// `a.outputs` lists `b` but `b.inputs` does not list `a`, or the other way round.
    #[error(
        "node {node:?}: {field} lists {other:?}, but {other:?} does not list {node:?} in its {counterpart}"
    )]
    EdgeMismatch {
        /// The node whose list holds the one-sided edge.
        node: String,
        /// `inputs` or `outputs`.
        field: &'static str,
        /// The other end of the edge.
        other: String,
        /// The list on `other` that should hold `node`.
        counterpart: &'static str,
    },
    /// A node lists the same neighbour twice.
    #[error("node {node:?}: {field} lists {reference:?} more than once")]
    RepeatedReference {
        /// The node.
        node: String,
        /// `inputs` or `outputs`.
        field: &'static str,
        /// The repeated id.
        reference: String,
    },
    /// The graph has a cycle; `path` starts and ends with the same node.
    #[error("cycle: {}", path.join(" -> "))]
    Cycle {
        /// The nodes of the cycle, first node repeated at the end.
        path: Vec<String>,
    },
    /// Sub-workflow nodes call workflows that call this one back (A calls B calls A): the
    /// chain of workflow ids, first repeated at the end.
    #[error("sub-workflow cycle: {}", chain.join(" -> "))]
    SubWorkflowCycle {
        /// The workflow ids of the cycle.
        chain: Vec<String>,
    },
    /// No node is without inputs.
    #[error("workflow has no root node (every node has inputs)")]
    NoRoot,
    /// `entryNodeId` names no node.
    #[error("entryNodeId {entry:?} names no node")]
    UnknownEntry {
        /// The value of `entryNodeId`.
        entry: String,
    },
    /// `entryNodeId` names a node that has inputs.
    #[error("entryNodeId {entry:?} is not a root: it has inputs {inputs:?}")]
    EntryNotRoot {
        /// The value of `entryNodeId`.
        entry: String,
        /// The entry node's inputs.
        inputs: Vec<String>,
    },
    /// No executor is registered for the node's type.
    #[error("node {node:?}: unknown node type {node_type:?} (no executor registered)")]
    UnknownNodeType {
        /// The node.
        node: String,
        /// Its type.
        node_type: String,
    },
    /// A configuration field has a value the engine cannot use.
    #[error("node {node:?}: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The node.
        node: String,
        /// The field path, for example `config.retryPolicy.maxAttempts`.
        field: String,
        /// The offending value, as JSON.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required configuration field is absent.
    #[error("node {node:?}: {field} is required{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    MissingConfig {
        /// The node.
        node: String,
        /// The field path, for example `config.workflowId`.
        field: String,
        /// What the field is for.
        hint: Option<&'static str>,
    },
    /// A trigger's configuration is invalid.
    #[error("trigger #{index} ({kind}): {field} = {value:?}: {reason}")]
    InvalidTrigger {
        /// Position of the trigger in `triggers`.
        index: usize,
        /// `webhook` or `schedule`.
        kind: &'static str,
        /// The field, for example `config.cron`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ValidationError {
    /// The node this problem is about, when it is about one node.
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::DuplicateNodeId { node }
            | Self::UnknownReference { node, .. }
            | Self::EdgeMismatch { node, .. }
            | Self::RepeatedReference { node, .. }
            | Self::UnknownNodeType { node, .. }
            | Self::InvalidConfig { node, .. }
            | Self::MissingConfig { node, .. } => Some(node),
            Self::EntryNotRoot { entry, .. } => Some(entry),
            _ => None,
        }
    }
}

/// Every problem found in one definition; validation reports all of them, not only the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    /// The workflow the problems were found in.
    pub workflow_id: String,
    /// The problems, in the order they were found (never empty).
    pub errors: Vec<ValidationError>,
}

impl ValidationErrors {
    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.errors.iter()
    }

    /// Whether a problem matches `predicate`.
    pub fn any(&self, predicate: impl Fn(&ValidationError) -> bool) -> bool {
        self.errors.iter().any(predicate)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workflow {:?} is invalid ({} problem{})",
            self.workflow_id,
            self.errors.len(),
            if self.errors.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}
