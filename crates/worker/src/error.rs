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
    /// The definition version an execution is pinned to is neither in the queue backend nor in
    /// the store.
    #[error(
        "definition of workflow {workflow_id:?} version {version} not found, neither in the queue backend nor in the store"
    )]
    DefinitionNotFound {
        /// The workflow.
        workflow_id: String,
        /// The version.
        version: u32,
    },
}

impl WorkerError {
    /// Whether the operation may succeed if retried: the queue backend or the store could not
    /// be reached ([`QueueError::Unavailable`], [`StoreError::Unavailable`]). A missing or
    /// invalid definition is not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Queue(QueueError::Unavailable { .. })
                | Self::Store(StoreError::Unavailable { .. })
        )
    }
}
