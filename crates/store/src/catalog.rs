//! The workflow catalog capability: paged listing, activation.

use async_trait::async_trait;

use crate::{StoreError, WorkflowStore};

/// One workflow as the catalog lists it: its latest version and whether it is active, without
/// the definition (read it with [`WorkflowStore::get_workflow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowSummary {
    /// The workflow id.
    pub id: String,
    /// The name in its latest version.
    pub name: String,
    /// `false` once [deactivated](WorkflowCatalog::deactivate_workflow).
    pub active: bool,
    /// Its latest definition version.
    pub latest_version: u32,
    /// When its first version was saved, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it last changed (a new version, or its activation), milliseconds since the Unix
    /// epoch.
    pub updated_at: i64,
}

/// One page of [`WorkflowCatalog::list_workflows_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowPage {
    /// The workflows of the page, ordered by id.
    pub items: Vec<WorkflowSummary>,
    /// How many workflows there are in all (active or not).
    pub total: u64,
}

/// Capability of a store that lists workflows by page and can deactivate them (see
/// [`WorkflowStore::catalog`]).
///
/// Deactivation is a flag on the workflow: its versions stay readable, so executions pinned
/// to them still run, and saving a definition does not change the flag (a deploy that
/// registers its workflows again does not revive one an operator deactivated).
#[async_trait]
pub trait WorkflowCatalog: WorkflowStore {
    /// Workflows ordered by id, skipping `offset` and returning at most `limit`.
    async fn list_workflows_page(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<WorkflowPage, StoreError>;

    /// One workflow's summary, `None` when it was never saved.
    async fn workflow_summary(&self, id: &str) -> Result<Option<WorkflowSummary>, StoreError>;

    /// Marks a workflow inactive. `false` when there is no such workflow.
    async fn deactivate_workflow(&self, id: &str) -> Result<bool, StoreError>;

    /// Marks a workflow active again. `false` when there is no such workflow.
    async fn activate_workflow(&self, id: &str) -> Result<bool, StoreError>;
}
