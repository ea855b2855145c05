//! Execution control: pause, resume and cancel.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use spane_core::{ExecutionId, ExecutionStatus};

use crate::error::QueueError;

/// Ids of cancelled executions, as they are cancelled (by any process).
pub type CancelStream = Pin<Box<dyn Stream<Item = ExecutionId> + Send>>;

/// Capability of a queue whose executions can be paused, resumed and cancelled (see
/// [`ExecutionQueue::control`](crate::ExecutionQueue::control)). No call scans the queue: an
/// execution's held jobs are found among its own nodes.
#[async_trait]
pub trait ExecutionControl: Send + Sync {
    /// Holds every node of a running execution that has not started; nodes already running
    /// finish and are recorded, and their children are held. Returns the new status (pausing a
    /// paused execution is harmless). A finished, failed or cancelled execution cannot pause.
    async fn pause(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError>;

    /// Makes the held nodes of a paused execution ready again (a `resumed` event). Resuming a
    /// running execution is harmless; a finished, failed or cancelled one cannot resume.
    async fn resume(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError>;

    /// Ends a running or paused execution: nothing that has not started will run, and running
    /// executors are told through their cancellation token. Cancelling a cancelled execution
    /// is harmless; a finished or failed one cannot be cancelled.
    async fn cancel(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError>;

    /// Executions cancelled from now on, by any process sharing the backend.
    async fn cancellations(&self) -> Result<CancelStream, QueueError>;
}

/// A [`CancelStream`] over a broadcast of cancelled ids (a slow reader skips what it missed:
/// the executors of those executions then run to their end).
pub(crate) fn cancel_stream(rx: tokio::sync::broadcast::Receiver<ExecutionId>) -> CancelStream {
    use tokio::sync::broadcast::error::RecvError;
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(id) => return Some((id, rx)),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    }))
}
