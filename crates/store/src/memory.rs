//! In-memory store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use spane_core::{ExecutionId, ExecutionRecord, NodeResult, WorkflowDefinition, now_millis};

use crate::{ExecutionQuery, ExecutionStore, StoreError, StoredWorkflow, WorkflowStore};

/// Definitions and history in process memory: lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Versions of each workflow, oldest first.
    workflows: BTreeMap<String, Vec<StoredWorkflow>>,
    executions: HashMap<ExecutionId, ExecutionRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl WorkflowStore for MemoryStore {
    async fn save_workflow(&self, definition: &WorkflowDefinition) -> Result<u32, StoreError> {
        let mut inner = self.lock();
        let versions = inner.workflows.entry(definition.id.clone()).or_default();
        if let Some(last) = versions.last()
            && last.definition == *definition
        {
            return Ok(last.version);
        }
        let version = versions.last().map_or(1, |l| l.version + 1);
        versions.push(StoredWorkflow {
            definition: definition.clone(),
            version,
            created_at: now_millis(),
        });
        Ok(version)
    }

    async fn get_workflow(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        let inner = self.lock();
        let Some(versions) = inner.workflows.get(id) else {
            return Ok(None);
        };
        Ok(match version {
            None => versions.last().cloned(),
            Some(v) => versions.iter().find(|w| w.version == v).cloned(),
        })
    }

    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .workflows
            .values()
            .filter_map(|v| v.last().cloned())
            .collect())
    }
}

#[async_trait]
impl ExecutionStore for MemoryStore {
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.executions.get_mut(&record.execution_id) {
            // Keep node results written separately that the record does not carry yet.
            Some(existing) => {
                let mut results = std::mem::take(&mut existing.node_results);
                results.extend(record.node_results.clone());
                *existing = record.clone();
                existing.node_results = results;
            }
            None => {
                inner.executions.insert(record.execution_id, record.clone());
            }
        }
        Ok(())
    }

    async fn save_node_result(
        &self,
        execution: ExecutionId,
        result: &NodeResult,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let record = inner
            .executions
            .get_mut(&execution)
            .ok_or(StoreError::ExecutionNotFound(execution))?;
        record
            .node_results
            .insert(result.node_id.clone(), result.clone());
        Ok(())
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.lock().executions.get(&id).cloned())
    }

    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<ExecutionRecord> = inner
            .executions
            .values()
            .filter(|r| {
                query
                    .workflow_id
                    .as_ref()
                    .is_none_or(|w| &r.workflow_id == w)
            })
            .filter(|r| query.status.is_none_or(|s| r.status == s))
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.execution_id));
        out.truncate(query.limit.unwrap_or(100));
        Ok(out)
    }
}
