//! The execution history capability: cursor pages, children, counts.

use std::collections::HashMap;

use async_trait::async_trait;
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeStatus};

use crate::{ExecutionQuery, ExecutionStore, StoreError};

/// One page of [`ExecutionHistory::list_executions_page`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionPage {
    /// The executions of the page, newest first, with their node results.
    pub items: Vec<ExecutionRecord>,
    /// Where the next page starts (set [`ExecutionQuery::cursor`] to it); `None` on the last
    /// page.
    pub next_cursor: Option<String>,
}

/// Capability of a store that answers history queries (see [`ExecutionStore::history`]).
#[async_trait]
pub trait ExecutionHistory: ExecutionStore {
    /// One page of the executions matching `query`, newest first.
    ///
    /// The cursor is a position in the order (creation time, then id), not an offset: paging
    /// through returns every execution that existed when the first page was read exactly
    /// once, even while new executions are written or existing ones change status (their
    /// creation time never changes). Executions created after the first page was read may
    /// or may not appear.
    async fn list_executions_page(
        &self,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError>;

    /// The executions that `parent` started (its sub-workflows), oldest first.
    async fn child_executions(
        &self,
        parent: ExecutionId,
    ) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// How many executions are in each status, of one workflow or of all; statuses without
    /// executions are absent.
    async fn count_by_status(
        &self,
        workflow_id: Option<&str>,
    ) -> Result<HashMap<ExecutionStatus, u64>, StoreError>;

    /// How many node results of one execution are in each status (one result per node, so
    /// the counts add up to the nodes that have a result).
    async fn count_nodes_by_status(
        &self,
        execution: ExecutionId,
    ) -> Result<HashMap<NodeStatus, u64>, StoreError>;
}

/// A position in the listing order: the last item of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cursor {
    pub(crate) created_at: i64,
    pub(crate) id: ExecutionId,
}

impl Cursor {
    pub(crate) fn of(record: &ExecutionRecord) -> Self {
        Self {
            created_at: record.created_at,
            id: record.execution_id,
        }
    }

    /// `<created_at>.<execution id>`: opaque to callers, readable in logs.
    pub(crate) fn encode(self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    pub(crate) fn decode(text: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Invalid {
            reason: format!("cursor {text:?} is not one this store returned"),
        };
        let (at, id) = text.split_once('.').ok_or_else(invalid)?;
        Ok(Self {
            created_at: at.parse().map_err(|_| invalid())?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }

    /// Whether `record` comes after this position in the newest-first order.
    pub(crate) fn precedes(self, record: &ExecutionRecord) -> bool {
        Self::of(record) < self
    }
}

/// The cursor of `query`, decoded.
pub(crate) fn query_cursor(query: &ExecutionQuery) -> Result<Option<Cursor>, StoreError> {
    query.cursor.as_deref().map(Cursor::decode).transpose()
}

/// Whether `record` matches the filters of `query` (not the cursor).
pub(crate) fn matches(query: &ExecutionQuery, record: &ExecutionRecord) -> bool {
    query
        .workflow_id
        .as_ref()
        .is_none_or(|w| &record.workflow_id == w)
        && query.status.is_none_or(|s| record.status == s)
        && query.created_after.is_none_or(|t| record.created_at >= t)
        && query.created_before.is_none_or(|t| record.created_at < t)
        && query
            .parent_execution_id
            .is_none_or(|p| record.parent_execution_id == Some(p))
}

/// The page size of `query` for [`ExecutionHistory::list_executions_page`]: a page of nothing
/// could not carry a cursor, so a limit of 0 is refused.
pub(crate) fn page_limit(query: &ExecutionQuery) -> Result<usize, StoreError> {
    match query.effective_limit() {
        0 => Err(StoreError::Invalid {
            reason: "limit = 0: a page holds at least one execution".to_owned(),
        }),
        n => Ok(n),
    }
}

/// Cuts `rows` (newest first, at most `limit + 1` of them) into a page.
pub(crate) fn into_page(mut rows: Vec<ExecutionRecord>, limit: usize) -> ExecutionPage {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|r| Cursor::of(r).encode())
    } else {
        None
    };
    ExecutionPage {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;
    use spane_core::ExecutionId;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            created_at: -5,
            id: ExecutionId::new(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "12",
            "x.y",
            "12.not-a-ulid",
            ".01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            let err = Cursor::decode(bad).unwrap_err();
            assert!(err.to_string().contains("cursor"), "{err}");
        }
    }
}
