//! Starting executions: the one path by which the engine (top-level executions) and the worker
//! (a sub-workflow node's child) create an execution, so that history and events are the same
//! for both.

use std::fmt;
use std::sync::Arc;

use spane_core::{ExecutionRecord, ExecutionStatus, now_millis};
use spane_queue::backend::StartExecution;
use spane_queue::{ExecutionQueue, QueueError};
use spane_store::ExecutionStore;

use crate::error::WorkerError;

/// Creates executions: their history record first (so that write-through node results have a
/// row to go to), then their hot state in the queue, which makes the roots ready. Under
/// write-behind history the record is not written here: the history writer copies it from the
/// queue with the execution's first event, off the enqueue path.
#[derive(Clone)]
pub struct ExecutionStarter {
    queue: Arc<dyn ExecutionQueue>,
    store: Arc<dyn ExecutionStore>,
    record_at_start: bool,
}

impl fmt::Debug for ExecutionStarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionStarter").finish_non_exhaustive()
    }
}

impl ExecutionStarter {
    /// A starter over `queue`, recording history in `store`.
    pub fn new(queue: Arc<dyn ExecutionQueue>, store: Arc<dyn ExecutionStore>) -> Self {
        Self {
            queue,
            store,
            record_at_start: true,
        }
    }

    /// Whether the history record is written when the execution starts (default `true`);
    /// `false` under write-behind history, whose writer copies it from the queue.
    pub fn record_at_start(mut self, record: bool) -> Self {
        self.record_at_start = record;
        self
    }

    /// Starts `start`. Fails with [`QueueError::DuplicateExecution`] when its id exists.
    pub async fn start(&self, start: StartExecution) -> Result<(), WorkerError> {
        if !self.record_at_start {
            self.queue.start_execution(start).await?;
            crate::metrics::execution_started();
            return Ok(());
        }
        self.store
            .save_execution(&{
                let mut built = ExecutionRecord::new(
                    start.execution_id,
                    start.workflow.id().to_owned(),
                    start.workflow_version,
                    ExecutionStatus::Running,
                    start.initial_data.clone(),
                    now_millis(),
                );
                built.parent_execution_id = start.parent_execution_id;
                built.parent_node_id = start.parent_node_id.clone();
                built.depth = start.depth;
                built
            })
            .await?;
        self.queue.start_execution(start).await?;
        crate::metrics::execution_started();
        Ok(())
    }

    /// Starts `start` unless an execution with its id exists already (a replayed start of a
    /// sub-workflow's child): then nothing changes, its record included.
    pub async fn start_once(&self, start: StartExecution) -> Result<(), WorkerError> {
        if self
            .queue
            .execution_status(start.execution_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        match self.start(start).await {
            Err(WorkerError::Queue(QueueError::DuplicateExecution(_))) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
