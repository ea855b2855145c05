//! Queue errors.

use spane_core::{ExecutionId, ExecutionStatus};

/// Errors of a queue backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// An execution with this id already exists.
    #[error("execution {0} already exists")]
    DuplicateExecution(ExecutionId),
    /// No execution with this id is known to the backend (never created, or expired).
    #[error("execution {0} not found")]
    ExecutionNotFound(ExecutionId),
    /// The execution's status does not allow the action (for example resuming a cancelled
    /// execution).
    #[error("cannot {action} execution {execution}: it is {status}")]
    NotAllowed {
        /// The execution.
        execution: ExecutionId,
        /// `pause`, `resume` or `cancel`.
        action: &'static str,
        /// Its status.
        status: ExecutionStatus,
    },
    /// The backend is set up in a way the queue refuses to run on (the reason says what to
    /// change).
    #[error("queue backend misconfigured: {reason}")]
    Misconfigured {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The backend answered with an error that retrying will not fix (a bug or corrupt data).
    #[error("queue backend error: {reason}")]
    Backend {
        /// What went wrong.
        reason: String,
        /// The underlying error (the Redis client's or the database driver's), when there is one.
        #[source]
        source: Option<spane_core::ErrorSource>,
    },
    #[cfg(feature = "redis")]
    /// Connecting to the backend failed (invalid URL, TLS, authentication, unreachable); the
    /// source says which.
    #[error("queue backend connection failed: {0}")]
    Connect(#[source] spane_redis::ConnectError),
    /// The backend cannot be reached; the operation may be retried.
    #[error("queue backend unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
        /// The underlying error (the Redis client's or the database driver's), when there is one.
        #[source]
        source: Option<spane_core::ErrorSource>,
    },
}
