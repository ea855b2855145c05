//! Pause, resume and cancel: one execution, or several at once.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use spane::{ExecutionId, ExecutionStatus};
use utoipa::ToSchema;

use super::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{JsonBody, PathParams, execution_id};

/// The control actions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Pause,
    Resume,
    Cancel,
}

impl Action {
    async fn apply(
        self,
        state: &AppState,
        id: ExecutionId,
    ) -> Result<ExecutionStatus, spane::Error> {
        match self {
            Self::Pause => state.engine.pause_execution(id).await,
            Self::Resume => state.engine.resume_execution(id).await,
            Self::Cancel => state.engine.cancel_execution(id).await,
        }
    }
}

/// An execution's status after a control action.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControlResult {
    /// The execution.
    execution_id: String,
    /// Its status after the action.
    #[schema(value_type = String)]
    status: ExecutionStatus,
}

async fn one(state: AppState, id: String, action: Action) -> Result<Json<ControlResult>, ApiError> {
    let id = execution_id(&id)?;
    let status = action.apply(&state, id).await?;
    Ok(Json(ControlResult {
        execution_id: id.to_string(),
        status,
    }))
}

/// Pauses an execution: nodes not yet started are held.
#[utoipa::path(post, path = "/executions/{id}/pause", tag = "control",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ControlResult), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ControlResult>, ApiError> {
    one(state, id, Action::Pause).await
}

/// Resumes a paused execution.
#[utoipa::path(post, path = "/executions/{id}/resume", tag = "control",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ControlResult), (status = 404, body = Problem), (status = 409, body = Problem, description = "not_allowed: finished or cancelled")))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ControlResult>, ApiError> {
    one(state, id, Action::Resume).await
}

/// Cancels a running or paused execution.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "control",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ControlResult), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ControlResult>, ApiError> {
    one(state, id, Action::Cancel).await
}

/// The executions a bulk action applies to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BulkRequest {
    /// Execution ids (at most 1000).
    execution_ids: Vec<String>,
}

/// The outcome for one execution of a bulk action: its status, or the problem.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BulkItem {
    /// The execution.
    execution_id: String,
    /// Its status after the action, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    status: Option<ExecutionStatus>,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Problem>,
}

/// One outcome per id, in order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkResult {
    /// The outcomes.
    results: Vec<BulkItem>,
}

const BULK_MAX: usize = 1000;

async fn bulk(
    state: AppState,
    request: BulkRequest,
    action: Action,
) -> Result<Json<BulkResult>, ApiError> {
    if request.execution_ids.len() > BULK_MAX {
        return Err(ApiError::bad_request(format!(
            "executionIds holds {} ids; at most {BULK_MAX} per request",
            request.execution_ids.len()
        )));
    }
    let mut results = Vec::with_capacity(request.execution_ids.len());
    for text in request.execution_ids {
        let outcome = match execution_id(&text) {
            Ok(id) => action.apply(&state, id).await.map_err(ApiError::from),
            Err(e) => Err(e),
        };
        results.push(match outcome {
            Ok(status) => BulkItem {
                execution_id: text,
                status: Some(status),
                error: None,
            },
            Err(e) => BulkItem {
                execution_id: text,
                status: None,
                error: Some(e.problem()),
            },
        });
    }
    Ok(Json(BulkResult { results }))
}

/// Pauses several executions; one outcome per id.
#[utoipa::path(post, path = "/executions/pause", tag = "control", request_body = BulkRequest,
    responses((status = 200, body = BulkResult)))]
pub(crate) async fn pause_many(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<BulkRequest>,
) -> Result<Json<BulkResult>, ApiError> {
    bulk(state, request, Action::Pause).await
}

/// Resumes several executions; one outcome per id.
#[utoipa::path(post, path = "/executions/resume", tag = "control", request_body = BulkRequest,
    responses((status = 200, body = BulkResult)))]
pub(crate) async fn resume_many(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<BulkRequest>,
) -> Result<Json<BulkResult>, ApiError> {
    bulk(state, request, Action::Resume).await
}

/// Cancels several executions; one outcome per id.
#[utoipa::path(post, path = "/executions/cancel", tag = "control", request_body = BulkRequest,
    responses((status = 200, body = BulkResult)))]
pub(crate) async fn cancel_many(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<BulkRequest>,
) -> Result<Json<BulkResult>, ApiError> {
    bulk(state, request, Action::Cancel).await
}
