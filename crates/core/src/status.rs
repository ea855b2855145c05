//! Execution and node statuses, with the original's lowercase names on the wire.

use serde::{Deserialize, Serialize};

/// Status of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ExecutionStatus {
    /// Nodes are running or ready.
    Running,
    /// Held by the user: nodes not yet started wait for resume.
    Paused,
    /// Every node completed, was skipped, or failed with `continueOnFail`.
    Completed,
    /// A node failed for good.
    Failed,
    /// Cancelled by the user.
    Cancelled,
}

impl ExecutionStatus {
    /// Whether the execution has ended (completed, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The wire name, for example `"completed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of one node within an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NodeStatus {
    /// Waiting for its parents.
    Pending,
    /// Queued or running.
    Running,
    /// Waiting on a delay (a delay node, or a retry's backoff).
    Delayed,
    /// Finished successfully.
    Completed,
    /// Failed for good (see `continued` on the result for `continueOnFail`).
    Failed,
    /// Not run: every parent was skipped or routed elsewhere, or the execution was cancelled.
    Skipped,
}

impl NodeStatus {
    /// The wire name, for example `"skipped"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Delayed => "delayed",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod names {
    use super::*;

    /// `as_str` and `Display` give the serde wire name, for every variant.
    #[test]
    fn names_are_the_wire_names() {
        use ExecutionStatus as E;
        for s in [E::Running, E::Paused, E::Completed, E::Failed, E::Cancelled] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
        use NodeStatus as N;
        for s in [
            N::Pending,
            N::Running,
            N::Delayed,
            N::Completed,
            N::Failed,
            N::Skipped,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
    }
}
