//! The facade's error type.

use std::time::Duration;

use spane_core::{ExecutionId, ExecutionStatus, ValidationErrors};
use spane_events::EventError;
use spane_queue::QueueError;
use spane_store::StoreError;
use spane_worker::WorkerError;

/// Everything the engine API can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The definition is invalid; every problem is listed, each naming the node and field.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// No workflow with this id is registered.
    #[error("workflow {id:?} is not registered")]
    WorkflowNotFound {
        /// The workflow id.
        id: String,
    },
    /// No execution with this id exists (or its history expired).
    #[error("execution {0} not found")]
    ExecutionNotFound(ExecutionId),
    /// The execution did not end within the time given to
    /// [`WorkflowEngine::wait_for_execution`](crate::WorkflowEngine::wait_for_execution).
    #[error("execution {execution} still {status} after {waited:?}")]
    Timeout {
        /// The execution.
        execution: ExecutionId,
        /// Its status when the wait ended.
        status: ExecutionStatus,
        /// How long the caller waited.
        waited: Duration,
    },
    /// An idempotency key given to
    /// [`WorkflowEngine::enqueue_workflow_with`](crate::WorkflowEngine::enqueue_workflow_with)
    /// cannot be used.
    #[error("invalid idempotency key {key:?}: {reason}")]
    InvalidIdempotencyKey {
        /// The key (its first 64 characters).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The backend in use does not offer this feature.
    #[error("the queue backend in use does not provide {what}")]
    Unsupported {
        /// The missing capability.
        what: &'static str,
    },
    /// The queue backend failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event bus failed.
    #[error(transparent)]
    Events(#[from] EventError),
    /// A schedule is invalid, or the trigger backend failed.
    #[error(transparent)]
    Trigger(#[from] spane_triggers::TriggerError),
    /// A webhook delivery was refused; the variant says why.
    #[error(transparent)]
    Webhook(#[from] spane_triggers::WebhookError),
    /// A re-run was refused; the variant names why (for example
    /// [`RerunError::GraphChanged`](spane_core::rerun::RerunError::GraphChanged)).
    #[error(transparent)]
    Rerun(#[from] spane_core::rerun::RerunError),
    /// The worker runtime failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
}
