//! Executions: start one, read one with its node results, list them with filters and cursor
//! pages.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spane::store::ExecutionQuery;
use spane::{EnqueueOptions, ExecutionRecord, ExecutionStatus};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{PathParams, QueryParams, execution_id};

/// What to start an execution with.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ExecuteRequest {
    /// The data every root node receives (default `null`).
    #[serde(default)]
    #[schema(value_type = Object)]
    data: Value,
    /// The whole execution must end within this many milliseconds.
    deadline_ms: Option<u64>,
}

/// An execution that was started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Started {
    /// The new execution's id.
    execution_id: String,
    /// The workflow it runs.
    workflow_id: String,
}

/// Starts an execution of the latest version of a workflow. The body is optional.
#[utoipa::path(post, path = "/workflows/{id}/executions", tag = "executions",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = ExecuteRequest, description = "Optional"),
    responses(
        (status = 202, body = Started),
        (status = 404, body = Problem, description = "workflow_not_found"),
        (status = 409, body = Problem, description = "workflow_inactive"),
    ))]
pub(crate) async fn execute(
    State(state): State<AppState>,
    PathParams(workflow): PathParams<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: ExecuteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ExecuteRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            crate::error::rejection(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid body: {e}"),
            )
        })?
    };
    if let Some(catalog) = state.engine.store().catalog()
        && let Some(summary) = catalog.workflow_summary(&workflow).await?
        && !summary.active
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "workflow_inactive",
            "Workflow inactive",
            format!("workflow {workflow:?} is deactivated; activate it to run it"),
        ));
    }
    let mut options = EnqueueOptions::default();
    if let Some(ms) = request.deadline_ms {
        options = options.deadline(Duration::from_millis(ms));
    }
    let id = state
        .engine
        .enqueue_workflow_with(&workflow, request.data, options)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Started {
            execution_id: id.to_string(),
            workflow_id: workflow,
        }),
    ))
}

/// An execution with its node results (the engine's `ExecutionRecord`: `executionId`,
/// `workflowId`, `workflowVersion`, `status`, `initialData`, `error`, `createdAt`, `finishedAt`,
/// `nodeResults` by node id with `status`, `data`, `error`, `attempts` (counted against
/// `maxAttempts`), `claims` (every time a worker was handed the node), `startedAt`,
/// `finishedAt`; a sub-workflow's execution also has `parentExecutionId` and `parentNodeId`,
/// and `depth` is 0 for a top-level execution).
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct Execution(pub(crate) ExecutionRecord);

/// An execution with its node results: live state while the backend holds it, history
/// otherwise.
#[utoipa::path(get, path = "/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "Execution id (ULID)")),
    responses((status = 200, body = Execution), (status = 404, body = Problem)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Execution>, ApiError> {
    let id = execution_id(&id)?;
    let record = state.engine.get_execution(id).await?.ok_or_else(|| {
        ApiError::not_found("execution_not_found", format!("execution {id} not found"))
    })?;
    Ok(Json(Execution(record)))
}

/// Filters and paging of the execution list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only executions in this status (`running`, `paused`, `completed`, `failed`, `cancelled`).
    status: Option<String>,
    /// Only executions of this workflow.
    workflow_id: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// One page of executions, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecutionList {
    /// The executions, newest first, with their node results.
    #[schema(value_type = Vec<Object>)]
    items: Vec<ExecutionRecord>,
    /// Give it as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn parse_status(text: &str) -> Result<ExecutionStatus, ApiError> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| {
        ApiError::bad_request(format!(
            "status {text:?} is not one of running, paused, completed, failed, cancelled"
        ))
    })
}

/// Lists executions from the store's history, newest first, a cursor page at a time. The
/// status of an execution that is still running is read live from the queue.
#[utoipa::path(get, path = "/executions", tag = "executions", params(ListQuery),
    responses((status = 200, body = ExecutionList), (status = 400, body = Problem),
        (status = 501, body = Problem, description = "the store keeps no history")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<ExecutionList>, ApiError> {
    let history = state.engine.store().history().ok_or_else(|| {
        ApiError::unsupported(
            "the store in use keeps no execution history to list (give the engine a SqlStore)",
        )
    })?;
    let query = ExecutionQuery {
        status: q.status.as_deref().map(parse_status).transpose()?,
        workflow_id: q.workflow_id,
        limit: Some(q.limit.unwrap_or(50).clamp(1, 500)),
        cursor: q.cursor,
        ..ExecutionQuery::default()
    };
    let page = history.list_executions_page(&query).await?;
    let mut items = page.items;
    for item in &mut items {
        if !item.status.is_terminal()
            && let Some(live) = state
                .engine
                .queue()
                .execution_status(item.execution_id)
                .await?
        {
            item.status = live;
        }
    }
    Ok(Json(ExecutionList {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// A sub-workflow execution, as its parent lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Child {
    /// The child execution.
    execution_id: String,
    /// The workflow it runs.
    workflow_id: String,
    /// The version it is pinned to.
    workflow_version: u32,
    /// The node of the parent that started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_node_id: Option<String>,
    /// Its status.
    #[schema(value_type = String)]
    status: ExecutionStatus,
    /// Creation time, milliseconds since the Unix epoch.
    created_at: i64,
    /// End time, milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<i64>,
}

/// The sub-workflow executions of one execution.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChildList {
    /// Oldest first; a node retried after its child failed started a fresh child, so both
    /// are listed.
    items: Vec<Child>,
}

/// The sub-workflow executions an execution started, each with the node that started it. A
/// child's own record names its parent (`parentExecutionId`, `parentNodeId`, `depth`).
#[utoipa::path(get, path = "/executions/{id}/children", tag = "executions",
    params(("id" = String, Path, description = "Execution id (ULID)")),
    responses((status = 200, body = ChildList), (status = 404, body = Problem)))]
pub(crate) async fn children(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ChildList>, ApiError> {
    let id = execution_id(&id)?;
    if state.engine.get_execution(id).await?.is_none() {
        return Err(ApiError::not_found(
            "execution_not_found",
            format!("execution {id} not found"),
        ));
    }
    let mut items = Vec::new();
    for child in state.engine.child_executions(id).await? {
        // A child whose record is gone (past retention, no history) is left out.
        if let Some(r) = state.engine.get_execution(child).await? {
            items.push(Child {
                execution_id: r.execution_id.to_string(),
                workflow_id: r.workflow_id,
                workflow_version: r.workflow_version,
                parent_node_id: r.parent_node_id,
                status: r.status,
                created_at: r.created_at,
                finished_at: r.finished_at,
            });
        }
    }
    Ok(Json(ChildList { items }))
}
