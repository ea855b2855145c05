//! The store an engine on Redis uses when you give it none: definitions in Redis (versions
//! agreed by every process), and no separate history (the live state in Redis is the record
//! until it expires; a SQL history store is coming).

use async_trait::async_trait;
use spane_core::{ExecutionId, ExecutionRecord, NodeResult, WorkflowDefinition};
use spane_queue::{QueueError, RedisQueue, StoredDefinition};
use spane_store::{ExecutionQuery, ExecutionStore, StoreError, StoredWorkflow, WorkflowStore};

/// Definitions in Redis; history is the live execution state in Redis (kept for the queue's
/// `retention`), so the history methods store nothing.
#[derive(Debug, Clone)]
pub struct RedisDefinitionStore {
    queue: RedisQueue,
}

impl RedisDefinitionStore {
    /// A store over `queue`'s Redis and prefix.
    pub fn new(queue: RedisQueue) -> Self {
        Self { queue }
    }
}

fn store_error(e: QueueError) -> StoreError {
    StoreError::Unavailable {
        reason: e.to_string(),
        source: None,
    }
}

fn stored(d: StoredDefinition) -> StoredWorkflow {
    StoredWorkflow {
        definition: d.definition,
        version: d.version,
        created_at: d.created_at,
    }
}

#[async_trait]
impl WorkflowStore for RedisDefinitionStore {
    async fn save_workflow(&self, definition: &WorkflowDefinition) -> Result<u32, StoreError> {
        self.queue
            .save_definition(definition)
            .await
            .map_err(store_error)
    }

    async fn get_workflow(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        Ok(self
            .queue
            .load_definition(id, version)
            .await
            .map_err(store_error)?
            .map(stored))
    }

    async fn latest_version(&self, id: &str) -> Result<Option<u32>, StoreError> {
        self.queue
            .latest_definition_version(id)
            .await
            .map_err(store_error)
    }

    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>, StoreError> {
        Ok(self
            .queue
            .list_definitions()
            .await
            .map_err(store_error)?
            .into_iter()
            .map(stored)
            .collect())
    }
}

#[async_trait]
impl ExecutionStore for RedisDefinitionStore {
    fn keeps_history(&self) -> bool {
        false
    }

    async fn save_execution(&self, _record: &ExecutionRecord) -> Result<(), StoreError> {
        Ok(())
    }

    async fn save_node_result(
        &self,
        _execution: ExecutionId,
        _result: &NodeResult,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn get_execution(&self, _id: ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(None)
    }

    async fn list_executions(
        &self,
        _query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        Ok(Vec::new())
    }
}
