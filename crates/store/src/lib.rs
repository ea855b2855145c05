//! # spane-store
//!
//! The system of record of SPANE: workflow definitions (versioned) and execution history.
//!
//! - [`WorkflowStore`] — save a definition (an unchanged definition keeps its version, a changed
//!   one gets the next), read it by id and version, list.
//! - [`ExecutionStore`] — execution records and node results (idempotent upserts), reads and
//!   listing.
//! - Two capabilities, for the stores that can answer them (the pattern of the queue's
//!   dead-letter queue): [`WorkflowCatalog`] (paged list of workflows, activate and deactivate)
//!   and [`ExecutionHistory`] (executions filtered by workflow, status and time range with
//!   cursor pagination, child executions, counts by status). A `dyn` store hands them out
//!   through [`WorkflowStore::catalog`] and [`ExecutionStore::history`]; [`HistoryStore`] names
//!   a store that has both.
//! - [`MemoryStore`] — in-process, for the embedded engine and tests.
//! - [`SqlStore`] — sea-orm on PostgreSQL or SQLite, with the schema of `spane-migrations`
//!   applied when it connects.
//!
//! Every store passes the same conformance suite (`spane-testkit`'s `store_conformance_tests!`).
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
//!
//! The same with history on SQLite (a file, or `sqlite::memory:`); on PostgreSQL the URL is
//! `postgres://user@host/db`, and [`SqlStoreOptions::schema`] picks the schema:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use serde_json::json;
//! use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus};
//! use spane_store::{ExecutionHistory, ExecutionQuery, ExecutionStore, SqlStore, SqlStoreOptions};
//!
//! let store = SqlStore::connect("sqlite::memory:", SqlStoreOptions::default()).await.unwrap();
//! let record = ExecutionRecord::new(
//!     ExecutionId::new(),
//!     "wf",
//!     1,
//!     ExecutionStatus::Running,
//!     json!({ "n": 0, "ok": false, "s": "" }),
//!     1_700_000_000_000,
//! );
//! store.save_execution(&record).await.unwrap();
//! assert_eq!(store.get_execution(record.execution_id).await.unwrap(), Some(record));
//! let page = store.list_executions_page(&ExecutionQuery::default()).await.unwrap();
//! assert_eq!(page.items.len(), 1);
//! assert_eq!(page.next_cursor, None);
//! # });
//! ```

mod catalog;
mod hash;
mod history;
mod memory;
#[cfg(feature = "sql")]
mod sql;

use std::fmt;

use async_trait::async_trait;
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, WorkflowDefinition};

pub use catalog::{WorkflowCatalog, WorkflowPage, WorkflowSummary};
pub use hash::content_hash;
pub use history::{ExecutionHistory, ExecutionPage};
pub use memory::MemoryStore;
#[cfg(feature = "sql")]
pub use sql::{SqlStore, SqlStoreOptions};

/// Errors of a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached; the operation may be retried.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
        /// The underlying error (the Redis client's or the database driver's), when there is one.
        #[source]
        source: Option<spane_core::ErrorSource>,
    },
    /// A node result was written for an execution the store does not know.
    #[error("execution {0} not found")]
    ExecutionNotFound(ExecutionId),
    /// The request is invalid (a malformed cursor, a bad option); retrying it cannot help.
    #[error("invalid request: {reason}")]
    Invalid {
        /// What is wrong, naming the field or value.
        reason: String,
    },
    /// Stored data cannot be read back (for example a row whose JSON does not parse).
    #[error("corrupt stored data: {reason}")]
    Corrupt {
        /// What could not be read, and where.
        reason: String,
    },
    /// The database refused the operation for another reason.
    #[error("database error: {reason}")]
    Database {
        /// The database's message.
        reason: String,
        /// The underlying error (the Redis client's or the database driver's), when there is one.
        #[source]
        source: Option<spane_core::ErrorSource>,
    },
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

    /// The latest version number of a workflow, without its definition (what an enqueue
    /// needs). `None` when it is not registered.
    async fn latest_version(&self, id: &str) -> Result<Option<u32>, StoreError> {
        Ok(self.get_workflow(id, None).await?.map(|w| w.version))
    }

    /// Paged listing and activation of workflows, when this store keeps them.
    fn catalog(&self) -> Option<&dyn WorkflowCatalog> {
        None
    }
}

/// Which executions [`ExecutionStore::list_executions`] and
/// [`ExecutionHistory::list_executions_page`] return.
///
/// Executions come newest first: by creation time, then by id (both descending). The time
/// range is half-open, `created_after <= created_at < created_before`, so consecutive ranges
/// tile without overlap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionQuery {
    /// Only executions of this workflow.
    pub workflow_id: Option<String>,
    /// Only executions in this status.
    pub status: Option<ExecutionStatus>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
    /// Only executions created at or after this time (milliseconds since the Unix epoch).
    pub created_after: Option<i64>,
    /// Only executions created strictly before this time (milliseconds since the Unix epoch).
    pub created_before: Option<i64>,
    /// Only the children of this execution (sub-workflows it started).
    pub parent_execution_id: Option<ExecutionId>,
    /// Continue after the last item of a previous page: its [`ExecutionPage::next_cursor`].
    pub cursor: Option<String>,
}

impl ExecutionQuery {
    /// The page size when [`limit`](Self::limit) is not set.
    pub const DEFAULT_LIMIT: usize = 100;

    /// The page size to use.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }
}

/// Execution history.
#[async_trait]
pub trait ExecutionStore: Send + Sync + fmt::Debug + 'static {
    /// Whether this store keeps history (a store that keeps none lets the engine skip writing
    /// it). Default `true`.
    fn keeps_history(&self) -> bool {
        true
    }

    /// Creates or replaces an execution record, node results included (idempotent).
    ///
    /// Node results already stored that `record` does not carry are kept; `created_at` is the
    /// one of the first save (it orders listings, so it never moves).
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError>;

    /// [`save_execution`](Self::save_execution) for several records at once, with the same
    /// guarantees for each (idempotent; a record that appears twice is saved as its last
    /// occurrence). A store may write them in one round trip: [`SqlStore`] writes one row per
    /// execution (node results included), on PostgreSQL with one statement whatever their
    /// number (one array parameter per column), on SQLite with one multi-row upsert per 500
    /// executions in one transaction; either way all land or none. The default saves them one
    /// after the other.
    async fn save_executions(&self, records: &[ExecutionRecord]) -> Result<(), StoreError> {
        for record in records {
            self.save_execution(record).await?;
        }
        Ok(())
    }

    /// Creates or replaces one node result (idempotent: one result per execution and node).
    ///
    /// Returns [`StoreError::ExecutionNotFound`] when the execution was never saved.
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

    /// History queries (cursor pages, children, counts), when this store keeps history.
    fn history(&self) -> Option<&dyn ExecutionHistory> {
        None
    }
}

/// A store for both definitions and history.
pub trait Store: WorkflowStore + ExecutionStore {}

impl<T: WorkflowStore + ExecutionStore> Store for T {}

/// A [`Store`] with both query capabilities: [`WorkflowCatalog`] and [`ExecutionHistory`].
/// [`MemoryStore`] and [`SqlStore`] are such stores.
pub trait HistoryStore: Store + WorkflowCatalog + ExecutionHistory {}

impl<T: Store + WorkflowCatalog + ExecutionHistory> HistoryStore for T {}
