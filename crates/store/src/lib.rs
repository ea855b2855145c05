//! # spane-store
//!
//! The system of record of SPANE: workflow definitions (versioned) and execution history.
//!
//! - [`WorkflowStore`] — save a definition (an unchanged definition keeps its version, a changed
//!   one gets the next), read it by id and version, list.
//! - [`ExecutionStore`] — execution records and node results (idempotent upserts), reads and
//!   listing.
//! - [`MemoryStore`] — in-process, for the embedded engine and tests.
//!
//! The SQL store (sea-orm, PostgreSQL and SQLite) comes next and implements the same traits.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use spane_core::{NodeDefinition, WorkflowDefinition};
//! use spane_store::{MemoryStore, WorkflowStore};
//!
//! let store = MemoryStore::new();
//! let wf = WorkflowDefinition::new("wf", "One").node(NodeDefinition::new("a", "echo"));
//! assert_eq!(store.save_workflow(&wf).await.unwrap(), 1);
//! assert_eq!(store.save_workflow(&wf).await.unwrap(), 1, "unchanged keeps its version");
//! let changed = wf.clone().node(NodeDefinition::new("b", "echo"));
//! assert_eq!(store.save_workflow(&changed).await.unwrap(), 2);
//! # });
//! ```

mod memory;

use std::fmt;

use async_trait::async_trait;
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, WorkflowDefinition};

pub use memory::MemoryStore;

/// Errors of a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached; the operation may be retried.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
    /// A node result was written for an execution the store does not know.
    #[error("execution {0} not found")]
    ExecutionNotFound(ExecutionId),
}

/// One version of a workflow definition.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkflow {
    /// The definition.
    pub definition: WorkflowDefinition,
    /// Its version, from 1.
    pub version: u32,
    /// Creation time of this version, milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// Versioned workflow definitions.
#[async_trait]
pub trait WorkflowStore: Send + Sync + fmt::Debug + 'static {
    /// Saves `definition` and returns its version: the latest version when the definition is
    /// unchanged, the next one otherwise.
    async fn save_workflow(&self, definition: &WorkflowDefinition) -> Result<u32, StoreError>;

    /// A definition: the given version, or the latest.
    async fn get_workflow(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError>;

    /// The latest version of every workflow, ordered by id.
    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>, StoreError>;
}

/// Which executions [`ExecutionStore::list_executions`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionQuery {
    /// Only executions of this workflow.
    pub workflow_id: Option<String>,
    /// Only executions in this status.
    pub status: Option<ExecutionStatus>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
}

/// Execution history.
#[async_trait]
pub trait ExecutionStore: Send + Sync + fmt::Debug + 'static {
    /// Creates or replaces an execution record, node results included (idempotent).
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError>;

    /// Creates or replaces one node result (idempotent: one result per execution and node).
    async fn save_node_result(
        &self,
        execution: ExecutionId,
        result: &NodeResult,
    ) -> Result<(), StoreError>;

    /// An execution with its node results.
    async fn get_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, StoreError>;

    /// Executions matching `query`, newest first.
    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionRecord>, StoreError>;
}

/// A store for both definitions and history.
pub trait Store: WorkflowStore + ExecutionStore {}

impl<T: WorkflowStore + ExecutionStore> Store for T {}
