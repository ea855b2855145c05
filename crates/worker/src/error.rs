//! Worker errors.

use spane_core::ValidationErrors;
use spane_queue::QueueError;
use spane_store::StoreError;

/// Errors of the worker runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The queue backend failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored definition no longer validates (for example its node type is not registered
    /// in this process).
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The definition version an execution is pinned to is not in the store.
    #[error("workflow {workflow_id:?} version {version} not found")]
    DefinitionNotFound {
        /// The workflow.
        workflow_id: String,
        /// The version.
        version: u32,
    },
}
