//! Execution history on SQL: idempotent upserts, keyset pages, counts.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Select, Statement, TransactionTrait,
};
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, NodeStatus};

use super::convert::{
    execution_model, execution_record, execution_status, node_entry_text, node_status_counts,
};
use super::entity::execution;
use super::{SqlStore, db_error};
use crate::history::{self, Cursor};
use crate::{ExecutionHistory, ExecutionPage, ExecutionQuery, ExecutionStore, StoreError};

/// Rows per multi-row statement on SQLite: far below its limit of 32,766 parameters at 12
/// columns a row.
const CHUNK: usize = 500;

/// The conflict clause of the multi-row upsert on SQLite (PostgreSQL takes its batches in
/// `unnest`): the columns are replaced, and `executions.nodes` of the existing row is merged
/// with the incoming one — the incoming entries replace those of the same nodes, the others
/// stay (so a partial record never drops a node's result). `json_patch` merges entries key by
/// key, which replaces an entry as a whole because every entry carries every key.
fn upsert_executions() -> OnConflict {
    // Not `created_at` (the listing order never moves) nor `metadata`.
    OnConflict::column(execution::Column::Id)
        .update_columns([
            execution::Column::WorkflowId,
            execution::Column::WorkflowVersion,
            execution::Column::Status,
            execution::Column::ParentExecutionId,
            execution::Column::ParentNodeId,
            execution::Column::Depth,
            execution::Column::InitialData,
            execution::Column::Error,
            execution::Column::FinishedAt,
        ])
        .value(
            execution::Column::Nodes,
            Expr::cust(
                "json_patch(COALESCE(\"executions\".\"nodes\", '{}'), COALESCE(excluded.\"nodes\", '{}'))",
            ),
        )
        .to_owned()
}

/// Merges one node's entry into `executions.nodes` of an execution, in one statement (atomic
/// beside concurrent writers of the same execution).
fn merge_node_statement(
    backend: DbBackend,
    execution: &str,
    node: &str,
    entry: String,
) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE executions SET nodes = (COALESCE(nodes, '{}')::jsonb || jsonb_build_object($1::text, $2::jsonb))::text WHERE id = $3"
        }
        _ => {
            "UPDATE executions SET nodes = json_patch(COALESCE(nodes, '{}'), json_object(?, json(?))) WHERE id = ?"
        }
    };
    Statement::from_sql_and_values(backend, sql, [node.into(), entry.into(), execution.into()])
}

fn filtered(query: &ExecutionQuery, cursor: Option<Cursor>) -> Select<execution::Entity> {
    let mut select = execution::Entity::find();
    if let Some(workflow) = &query.workflow_id {
        select = select.filter(execution::Column::WorkflowId.eq(workflow.clone()));
    }
    if let Some(status) = query.status {
        select = select.filter(execution::Column::Status.eq(status.as_str()));
    }
    if let Some(after) = query.created_after {
        select = select.filter(execution::Column::CreatedAt.gte(after));
    }
    if let Some(before) = query.created_before {
        select = select.filter(execution::Column::CreatedAt.lt(before));
    }
    if let Some(parent) = query.parent_execution_id {
        select = select.filter(execution::Column::ParentExecutionId.eq(parent.to_string()));
    }
    if let Some(cursor) = cursor {
        // Strictly after the cursor in the order (created_at DESC, id DESC).
        select = select.filter(
            Condition::any()
                .add(execution::Column::CreatedAt.lt(cursor.created_at))
                .add(
                    Condition::all()
                        .add(execution::Column::CreatedAt.eq(cursor.created_at))
                        .add(execution::Column::Id.lt(cursor.id.to_string())),
                ),
        );
    }
    select
}

impl SqlStore {
    /// The records of `rows` (node results included: they are in the row), in order.
    fn records(rows: Vec<execution::Model>) -> Result<Vec<ExecutionRecord>, StoreError> {
        rows.into_iter().map(execution_record).collect()
    }

    /// The executions matching `query` after `cursor`, newest first, at most `take`.
    async fn select(
        &self,
        query: &ExecutionQuery,
        cursor: Option<Cursor>,
        take: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let rows = filtered(query, cursor)
            .order_by_desc(execution::Column::CreatedAt)
            .order_by_desc(execution::Column::Id)
            .limit(super::clamp(u64::try_from(take).unwrap_or(u64::MAX)))
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Self::records(rows)
    }

    /// Writes `records` atomically, in the order of the keys, so that concurrent writers of
    /// overlapping batches take their row locks in the same order; each execution's node
    /// results go in its own row (`executions.nodes`). On PostgreSQL one statement of arrays
    /// whatever the batch's size (`unnest`); on SQLite one multi-row upsert per chunk (in one
    /// transaction when there are several). A record that appears twice is written as its
    /// last occurrence: one statement may not upsert a row twice.
    async fn write_executions(&self, records: &[ExecutionRecord]) -> Result<(), DbErr> {
        // By id: a ULID orders as its text does, which is the order of the rows' keys.
        let mut latest: BTreeMap<ExecutionId, &ExecutionRecord> = BTreeMap::new();
        for record in records {
            latest.insert(record.execution_id, record);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let executions: Vec<&ExecutionRecord> = latest.values().copied().collect();
        #[cfg(feature = "postgres")]
        if self.db.get_database_backend() == DbBackend::Postgres {
            return super::unnest::upsert_executions(
                self.db.get_postgres_connection_pool(),
                &executions,
            )
            .await;
        }
        let upsert = |chunk: &[&ExecutionRecord]| {
            execution::Entity::insert_many(
                chunk
                    .iter()
                    .map(|r| execution_model(r).into_active_model())
                    .collect::<Vec<_>>(),
            )
            .on_conflict(upsert_executions())
        };
        if executions.len() <= CHUNK {
            // One statement is atomic by itself.
            return upsert(&executions)
                .exec_without_returning(&self.db)
                .await
                .map(|_| ());
        }
        let txn = self.db.begin().await?;
        let result = async {
            for chunk in executions.chunks(CHUNK) {
                upsert(chunk).exec_without_returning(&txn).await?;
            }
            Ok::<_, DbErr>(())
        }
        .await;
        match result {
            Ok(()) => txn.commit().await,
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl ExecutionStore for SqlStore {
    async fn save_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError> {
        self.write_executions(std::slice::from_ref(record))
            .await
            .map_err(db_error)
    }

    async fn save_executions(&self, records: &[ExecutionRecord]) -> Result<(), StoreError> {
        self.write_executions(records).await.map_err(db_error)
    }

    async fn save_node_result(
        &self,
        execution: ExecutionId,
        result: &NodeResult,
    ) -> Result<(), StoreError> {
        let statement = merge_node_statement(
            self.db.get_database_backend(),
            &execution.to_string(),
            &result.node_id,
            node_entry_text(result),
        );
        let done = self.db.execute_raw(statement).await.map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::ExecutionNotFound(execution));
        }
        Ok(())
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        let Some(row) = execution::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        execution_record(row).map(Some)
    }

    async fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let cursor = history::query_cursor(query)?;
        self.select(query, cursor, query.effective_limit()).await
    }

    fn history(&self) -> Option<&dyn ExecutionHistory> {
        Some(self)
    }
}

#[async_trait]
impl ExecutionHistory for SqlStore {
    async fn list_executions_page(
        &self,
        query: &ExecutionQuery,
    ) -> Result<ExecutionPage, StoreError> {
        let limit = history::page_limit(query)?;
        let cursor = history::query_cursor(query)?;
        let rows = self.select(query, cursor, limit.saturating_add(1)).await?;
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
        let rows = filtered(&query, None)
            .order_by_asc(execution::Column::CreatedAt)
            .order_by_asc(execution::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Self::records(rows)
    }

    async fn count_by_status(
        &self,
        workflow_id: Option<&str>,
    ) -> Result<HashMap<ExecutionStatus, u64>, StoreError> {
        let mut select = execution::Entity::find()
            .select_only()
            .column(execution::Column::Status)
            .column_as(Expr::col(execution::Column::Id).count(), "n")
            .group_by(execution::Column::Status);
        if let Some(workflow) = workflow_id {
            select = select.filter(execution::Column::WorkflowId.eq(workflow));
        }
        let rows: Vec<(String, i64)> = select.into_tuple().all(&self.db).await.map_err(db_error)?;
        rows.into_iter()
            .map(|(status, n)| Ok((execution_status(&status)?, u64::try_from(n).unwrap_or(0))))
            .collect()
    }

    async fn count_nodes_by_status(
        &self,
        execution: ExecutionId,
    ) -> Result<HashMap<NodeStatus, u64>, StoreError> {
        let id = execution.to_string();
        let nodes: Option<Option<String>> = execution::Entity::find_by_id(id.clone())
            .select_only()
            .column(execution::Column::Nodes)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        node_status_counts(&id, nodes.flatten().as_deref())
    }
}
