//! The dead-letter queue: list, get, retry, purge.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use spane::queue::DeadLetter;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{PathParams, QueryParams, execution_id};

/// Paging of the dead-letter list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Paging {
    /// Skip this many (default 0).
    #[serde(default)]
    offset: usize,
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
}

/// A page of dead-letter items, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadLetterList {
    /// The items (`executionId`, `workflowId`, `workflowVersion`, `nodeId`, `reason`
    /// (`failed` or `stalled`), `error`, `attempts`, `failedAt`).
    #[schema(value_type = Vec<Object>)]
    items: Vec<DeadLetter>,
    /// How many items there are in all.
    total: usize,
}

/// Dead-letter items (nodes that failed for good), oldest first.
#[utoipa::path(get, path = "/dlq", tag = "dlq", params(Paging),
    responses((status = 200, body = DeadLetterList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let limit = paging.limit.unwrap_or(50).clamp(1, 500);
    let items = state.engine.dead_letters(paging.offset, limit).await?;
    let total = state.engine.dead_letter_count().await?;
    Ok(Json(DeadLetterList { items, total }))
}

/// One dead-letter item.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct DeadLetterItem(DeadLetter);

/// One dead-letter item.
#[utoipa::path(get, path = "/dlq/{executionId}/{nodeId}", tag = "dlq",
    params(("executionId" = String, Path, description = "Execution id"), ("nodeId" = String, Path, description = "Node id")),
    responses((status = 200, body = DeadLetterItem), (status = 404, body = Problem)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    PathParams((execution, node)): PathParams<(String, String)>,
) -> Result<Json<DeadLetterItem>, ApiError> {
    let id = execution_id(&execution)?;
    let item = state.engine.dead_letter(id, &node).await?.ok_or_else(|| {
        ApiError::not_found(
            "dead_letter_not_found",
            format!("no dead-letter item for node {node:?} of execution {id}"),
        )
    })?;
    Ok(Json(DeadLetterItem(item)))
}

/// How many items an action applied to.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Count {
    /// The count.
    count: usize,
}

/// Retries one dead-letter item with fresh attempts; the execution runs again.
#[utoipa::path(post, path = "/dlq/{executionId}/{nodeId}/retry", tag = "dlq",
    params(("executionId" = String, Path, description = "Execution id"), ("nodeId" = String, Path, description = "Node id")),
    responses((status = 200, body = Count), (status = 404, body = Problem)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    PathParams((execution, node)): PathParams<(String, String)>,
) -> Result<Json<Count>, ApiError> {
    let id = execution_id(&execution)?;
    if !state.engine.retry_dead_letter(id, &node).await? {
        return Err(ApiError::not_found(
            "dead_letter_not_found",
            format!("no dead-letter item for node {node:?} of execution {id}"),
        ));
    }
    Ok(Json(Count { count: 1 }))
}

/// Retries every dead-letter item of one execution.
#[utoipa::path(post, path = "/dlq/{executionId}/retry", tag = "dlq",
    params(("executionId" = String, Path, description = "Execution id")),
    responses((status = 200, body = Count)))]
pub(crate) async fn retry_execution(
    State(state): State<AppState>,
    PathParams(execution): PathParams<String>,
) -> Result<Json<Count>, ApiError> {
    let id = execution_id(&execution)?;
    let count = state.engine.retry_execution_dead_letters(id).await?;
    Ok(Json(Count { count }))
}

/// Deletes every dead-letter item (their executions stay failed).
#[utoipa::path(delete, path = "/dlq", tag = "dlq", responses((status = 200, body = Count)))]
pub(crate) async fn purge(State(state): State<AppState>) -> Result<Json<Count>, ApiError> {
    let count = state.engine.purge_dead_letters().await?;
    Ok(Json(Count { count }))
}
