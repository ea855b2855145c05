//! Operating one execution: why it is not progressing, and re-running part of it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;
use spane::core::explain::Explanation;
use spane::{Rerun, RerunOptions};
use utoipa::ToSchema;

use super::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{JsonBody, PathParams, execution_id};

/// The engine's `Explanation`: `executionId`, `workflowId`, `workflowVersion`, `status`,
/// `summary` (the one line to read first), `headline` (the node it is about), `rerunOf`, and
/// `nodes`: every node not finished with its `nodeId`, `nodeType`, `status` and `reason`, an
/// object whose `kind` is one of `waitingForParents`, `queued`, `running`, `leaseExpired`,
/// `paused`, `held`, `delay`, `rateLimited`, `circuitOpen`, `retryBackoff`, `waitingForChild`
/// (with the child's own explanation), `deadLettered`, `failed`, and its details.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct ExplanationBody(Explanation);

/// A re-run that was started (the engine's `Rerun`: `executionId` of the new execution,
/// `rerunOf`, `workflowVersion`, the `kept` nodes and the nodes that `rerun`).
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct RerunBody(Rerun);

/// What to re-run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RerunRequest {
    /// The node to re-run from: it and its descendants run again, every other node keeps its
    /// recorded outcome.
    from_node: String,
    /// The input the node receives instead of what its parents pass (every parent of it must
    /// keep its output).
    #[schema(value_type = Object)]
    input: Option<Value>,
    /// Run the workflow's newest definition version (refused with `graph_changed` when the
    /// graph above the node differs). Default `false`: the pinned version.
    #[serde(default)]
    latest_version: bool,
}

/// Why an execution is not progressing: for every node not finished, what it waits for and
/// the most specific reason, from the backend's live state. An execution the queue no longer
/// holds is explained from history (status only).
#[utoipa::path(get, path = "/executions/{id}/explain", tag = "executions",
    params(("id" = String, Path, description = "Execution id (ULID)")),
    responses((status = 200, body = ExplanationBody), (status = 404, body = Problem)))]
pub(crate) async fn explain(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ExplanationBody>, ApiError> {
    let id = execution_id(&id)?;
    Ok(Json(ExplanationBody(state.engine.explain(id).await?)))
}

/// Starts a new execution, linked to this one, that reuses every recorded output outside
/// `fromNode` and its descendants, and runs those again.
#[utoipa::path(post, path = "/executions/{id}/rerun", tag = "executions",
    params(("id" = String, Path, description = "Execution id (ULID)")),
    request_body = RerunRequest,
    responses(
        (status = 202, body = RerunBody),
        (status = 404, body = Problem, description = "execution_not_found"),
        (status = 409, body = Problem, description = "graph_changed"),
        (status = 410, body = Problem, description = "execution_gone: past the queue's retention"),
        (status = 422, body = Problem, description = "unknown_node, input_needs_recorded_parents"),
    ))]
pub(crate) async fn rerun(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<RerunRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = execution_id(&id)?;
    let mut options = RerunOptions::new().latest_version(request.latest_version);
    if let Some(input) = request.input {
        options = options.input(input);
    }
    let started = state
        .engine
        .rerun_from(id, &request.from_node, options)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(RerunBody(started))))
}

/// Starts a new execution, linked to this one, that re-runs only the nodes that failed and
/// what depended on them, on the pinned definition version.
#[utoipa::path(post, path = "/executions/{id}/retry-failed", tag = "executions",
    params(("id" = String, Path, description = "Execution id (ULID)")),
    responses(
        (status = 202, body = RerunBody),
        (status = 404, body = Problem, description = "execution_not_found"),
        (status = 409, body = Problem, description = "nothing_failed"),
        (status = 410, body = Problem, description = "execution_gone: past the queue's retention"),
    ))]
pub(crate) async fn retry_failed(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = execution_id(&id)?;
    let started = state.engine.retry_failed(id).await?;
    Ok((StatusCode::ACCEPTED, Json(RerunBody(started))))
}
