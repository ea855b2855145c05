//! How triggers start executions: the engine implements [`Launcher`] with its normal enqueue
//! path, so a triggered execution has the same history and events as any other.

use async_trait::async_trait;
use serde_json::Value;
use spane_core::ExecutionId;

/// Why an execution could not start.
pub type LaunchError = Box<dyn std::error::Error + Send + Sync>;

/// Starts an execution of the latest version of a workflow.
#[async_trait]
pub trait Launcher: Send + Sync + 'static {
    /// Starts `workflow_id` with `data` as every root's input.
    async fn launch(&self, workflow_id: &str, data: Value) -> Result<ExecutionId, LaunchError>;
}
