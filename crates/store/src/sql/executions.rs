//! Execution history on SQL: idempotent upserts, keyset pages, counts.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Select, TransactionTrait,
};
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, NodeStatus};

use super::convert::{execution_model, execution_record, execution_status, node_result_model};
use super::entity::{execution, node_result};
use super::{SqlStore, db_error, is_foreign_key_violation};
use crate::history::{self, Cursor};
use crate::{ExecutionHistory, ExecutionPage, ExecutionQuery, ExecutionStore, StoreError};

/// Rows per multi-row statement: far below the parameter limits of both databases (PostgreSQL
/// 65,535; SQLite 32,766) at 11 columns a row at most.
const CHUNK: usize = 500;

fn node_active_model(execution: &str, result: &NodeResult) -> node_result::ActiveModel {
    let mut model = node_result_model(execution, result).into_active_model();
    model.id = NotSet;
    model
}

fn upsert_node_results() -> OnConflict {
    OnConflict::columns([
        node_result::Column::ExecutionId,
        node_result::Column::NodeId,
    ])
    .update_columns([
        node_result::Column::Status,
        node_result::Column::Data,
        node_result::Column::Error,
        node_result::Column::Attempts,
        node_result::Column::Claims,
        node_result::Column::Continued,
        node_result::Column::StartedAt,
        node_result::Column::FinishedAt,
    ])
    .to_owned()
}

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
        .to_owned()
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
    /// Records with their node results, in the order of `rows`.
    async fn with_results(
        &self,
        db: &impl ConnectionTrait,
        rows: Vec<execution::Model>,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut records = rows
            .into_iter()
            .map(execution_record)
            .collect::<Result<Vec<_>, _>>()?;
        let index: HashMap<String, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.execution_id.to_string(), i))
            .collect();
        let ids: Vec<String> = index.keys().cloned().collect();
        for chunk in ids.chunks(CHUNK) {
            let results = node_result::Entity::find()
                .filter(node_result::Column::ExecutionId.is_in(chunk.iter().cloned()))
                .all(db)
                .await
                .map_err(db_error)?;
            for row in results {
                let Some(&i) = index.get(&row.execution_id) else {
                    continue;
                };
                let result = super::convert::node_result(row)?;
                records[i]
                    .node_results
                    .insert(result.node_id.clone(), result);
            }
        }
        Ok(records)
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
        self.with_results(&self.db, rows).await
    }

    /// Writes `records` in one transaction: one multi-row upsert per table and chunk, in the
    /// order of the keys (so that concurrent writers of overlapping batches take their row
    /// locks in the same order). A record that appears twice is written as its last occurrence:
    /// one statement may not upsert a row twice.
    async fn write_executions(&self, records: &[ExecutionRecord]) -> Result<(), DbErr> {
        let mut latest: BTreeMap<String, &ExecutionRecord> = BTreeMap::new();
        for record in records {
            latest.insert(record.execution_id.to_string(), record);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await?;
        let result = async {
            let executions: Vec<&ExecutionRecord> = latest.values().copied().collect();
            for chunk in executions.chunks(CHUNK) {
                execution::Entity::insert_many(
                    chunk.iter().map(|r| execution_model(r).into_active_model()),
                )
                .on_conflict(upsert_executions())
                .exec_without_returning(&txn)
                .await?;
            }
            // `node_results` is a `BTreeMap`: sorted by node within an execution.
            let results: Vec<(&str, &NodeResult)> = latest
                .iter()
                .flat_map(|(id, r)| r.node_results.values().map(move |n| (id.as_str(), n)))
                .collect();
            for chunk in results.chunks(CHUNK) {
                node_result::Entity::insert_many(
                    chunk.iter().map(|(id, r)| node_active_model(id, r)),
                )
                .on_conflict(upsert_node_results())
                .exec_without_returning(&txn)
                .await?;
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
        node_result::Entity::insert(node_active_model(&execution.to_string(), result))
            .on_conflict(upsert_node_results())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::ExecutionNotFound(execution)
                } else {
                    db_error(e)
                }
            })
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, StoreError> {
        let Some(row) = execution::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        Ok(self.with_results(&self.db, vec![row]).await?.pop())
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
        self.with_results(&self.db, rows).await
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
        let rows: Vec<(String, i64)> = node_result::Entity::find()
            .select_only()
            .column(node_result::Column::Status)
            .column_as(Expr::col(node_result::Column::Id).count(), "n")
            .filter(node_result::Column::ExecutionId.eq(execution.to_string()))
            .group_by(node_result::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|(status, n)| {
                let status = serde_json::from_value(serde_json::Value::String(status.clone()))
                    .map_err(|_| StoreError::Corrupt {
                        reason: format!("unknown node status {status:?}"),
                    })?;
                Ok((status, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }
}
