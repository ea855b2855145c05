//! In-memory store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use spane_core::{
    ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, NodeStatus, WorkflowDefinition,
    now_millis,
};

use crate::history::{self, Cursor};
use crate::{
    ExecutionHistory, ExecutionPage, ExecutionQuery, ExecutionStore, StoreError, StoredWorkflow,
    WorkflowCatalog, WorkflowPage, WorkflowStore, WorkflowSummary,
};

/// Definitions and history in process memory: lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    workflows: BTreeMap<String, Workflow>,
    executions: HashMap<ExecutionId, ExecutionRecord>,
}

#[derive(Debug)]
struct Workflow {
    /// Oldest first; never empty.
    versions: Vec<StoredWorkflow>,
    active: bool,
    updated_at: i64,
}

impl Workflow {
    fn latest(&self) -> &StoredWorkflow {
        // `versions` is never empty: a workflow is created with its first version.
        &self.versions[self.versions.len() - 1]
    }

    fn summary(&self, id: &str) -> WorkflowSummary {
        let latest = self.latest();
        WorkflowSummary {
            id: id.to_owned(),
            name: latest.definition.name.clone(),
            active: self.active,
            latest_version: latest.version,
            created_at: self.versions[0].created_at,
            updated_at: self.updated_at,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest version of workflow `id`: what [`WorkflowStore::get_workflow`] with no version
    /// reports, without copying the definition.
    pub fn latest_version(&self, id: &str) -> Option<u32> {
        self.lock().workflows.get(id).map(|w| w.latest().version)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_active(&self, id: &str, active: bool) -> bool {
        let mut inner = self.lock();
        let Some(workflow) = inner.workflows.get_mut(id) else {
            return false;
        };
        if workflow.active != active {
            workflow.active = active;
            workflow.updated_at = now_millis();
        }
        true
    }

    /// The executions matching `query` from `cursor` on, newest first, at most `take`.
    fn select(
        &self,
        query: &ExecutionQuery,
        cursor: Option<Cursor>,
        take: usize,
    ) -> Vec<ExecutionRecord> {
        let inner = self.lock();
        let mut out: Vec<&ExecutionRecord> = inner
            .executions
            .values()
            .filter(|r| history::matches(query, r))
            .filter(|r| cursor.is_none_or(|c| c.precedes(r)))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(Cursor::of(r)));
        out.into_iter().take(take).cloned().collect()
    }
}

#[async_trait]
impl WorkflowStore for MemoryStore {
    async fn save_workflow(&self, definition: &WorkflowDefinition) -> Result<u32, StoreError> {
        let mut inner = self.lock();
        let now = now_millis();
        let Some(workflow) = inner.workflows.get_mut(&definition.id) else {
            inner.workflows.insert(
                definition.id.clone(),
                Workflow {
                    versions: vec![StoredWorkflow {
                        definition: definition.clone(),
                        version: 1,
                        created_at: now,
                    }],
                    active: true,
                    updated_at: now,
                },
            );
            return Ok(1);
        };
        let last = workflow.latest();
        if last.definition == *definition {
            return Ok(last.version);
        }
        let version = last.version + 1;
        workflow.versions.push(StoredWorkflow {
            definition: definition.clone(),
            version,
            created_at: now,
        });
        workflow.updated_at = now;
        Ok(version)
    }

    async fn get_workflow(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        let inner = self.lock();
        let Some(workflow) = inner.workflows.get(id) else {
            return Ok(None);
        };
        Ok(match version {
            None => Some(workflow.latest().clone()),
            Some(v) => workflow.versions.iter().find(|w| w.version == v).cloned(),
        })
    }

    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .workflows
            .values()
            .map(|w| w.latest().clone())
            .collect())
    }

    fn catalog(&self) -> Option<&dyn WorkflowCatalog> {
        Some(self)
    }
}

#[async_trait]
impl WorkflowCatalog for MemoryStore {
    async fn list_workflows_page(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<WorkflowPage, StoreError> {
        let inner = self.lock();
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(WorkflowPage {
            items: inner
                .workflows
                .iter()
                .skip(skip)
                .take(take)
                .map(|(id, w)| w.summary(id))
                .collect(),
            total: inner.workflows.len() as u64,
        })
    }

    async fn workflow_summary(&self, id: &str) -> Result<Option<WorkflowSummary>, StoreError> {
        Ok(self.lock().workflows.get(id).map(|w| w.summary(id)))
    }

    async fn deactivate_workflow(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.set_active(id, false))
    }

    async fn activate_workflow(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.set_active(id, true))
    }
}

/// Makes `kept` equal to `result`, copying only what differs.
fn update_result(kept: &mut NodeResult, result: &NodeResult) {
    let NodeResult {
        node_id,
        status,
        data,
        error,
        attempts,
        claims,
        continued,
        started_at,
        finished_at,
        ..
    } = result;
    kept.node_id.clone_from(node_id);
    kept.status = *status;
    if kept.data != *data {
        kept.data.clone_from(data);
    }
    kept.error.clone_from(error);
    kept.attempts = *attempts;
    kept.claims = *claims;
    kept.continued = *continued;
    kept.started_at = *started_at;
    kept.finished_at = *finished_at;
}

#[async_trait]
impl ExecutionStore for MemoryStore {
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.executions.get_mut(&record.execution_id) {
            // Keep node results written separately that the record does not carry yet, and
            // the creation time of the first save.
            // Updated in place: the record is not copied whole, only what it carries.
            Some(existing) => {
                let ExecutionRecord {
                    execution_id: _,
                    workflow_id,
                    workflow_version,
                    status,
                    initial_data,
                    parent_execution_id,
                    parent_node_id,
                    depth,
                    error,
                    created_at: _,
                    finished_at,
                    node_results,
                    ..
                } = record;
                existing.workflow_id.clone_from(workflow_id);
                existing.workflow_version = *workflow_version;
                existing.status = *status;
                if existing.initial_data != *initial_data {
                    existing.initial_data.clone_from(initial_data);
                }
                existing.parent_execution_id = *parent_execution_id;
                existing.parent_node_id.clone_from(parent_node_id);
                existing.depth = *depth;
                existing.error.clone_from(error);
                existing.finished_at = *finished_at;
                for (id, result) in node_results {
                    match existing.node_results.get_mut(id) {
                        // Usually the node's own write-through result: its data is already
                        // there, so the (possibly large) output is compared, not copied.
                        Some(kept) => update_result(kept, result),
                        None => {
                            existing.node_results.insert(id.clone(), result.clone());
                        }
                    }
                }
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
        let cursor = history::query_cursor(query)?;
        Ok(self.select(query, cursor, query.effective_limit()))
    }

    fn history(&self) -> Option<&dyn ExecutionHistory> {
        Some(self)
    }
}

#[async_trait]
impl ExecutionHistory for MemoryStore {
    async fn list_executions_page(
        &self,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError> {
        let limit = history::page_limit(query)?;
        let cursor = history::query_cursor(query)?;
        let rows = self.select(query, cursor, limit.saturating_add(1));
        Ok(history::into_page(rows, limit))
    }

    async fn child_executions(
        &self,
        parent: ExecutionId,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let query = ExecutionQuery {
            parent_execution_id: Some(parent),
            ..ExecutionQuery::default()
        };
        let mut children = self.select(&query, None, usize::MAX);
        children.reverse();
        Ok(children)
    }

    async fn count_by_status(
        &self,
        workflow_id: Option<&str>,
    ) -> Result<HashMap<ExecutionStatus, u64>, StoreError> {
        let inner = self.lock();
        let mut counts = HashMap::new();
        for record in inner.executions.values() {
            if workflow_id.is_none_or(|w| record.workflow_id == w) {
                *counts.entry(record.status).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    async fn count_nodes_by_status(
        &self,
        execution: ExecutionId,
    ) -> Result<HashMap<NodeStatus, u64>, StoreError> {
        let inner = self.lock();
        let mut counts = HashMap::new();
        if let Some(record) = inner.executions.get(&execution) {
            for result in record.node_results.values() {
                *counts.entry(result.status).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}
