//! Workflows: register, list, get (latest or a version), activate and deactivate.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spane::WorkflowDefinition;
use spane::store::{StoredWorkflow, WorkflowSummary};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{JsonBody, PathParams, QueryParams};

/// A workflow registered, with its version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Registered {
    /// The workflow id.
    id: String,
    /// The version the definition got (an unchanged definition keeps its version).
    version: u32,
}

/// One workflow in a listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowItem {
    /// The workflow id.
    id: String,
    /// Its name in the latest version.
    name: String,
    /// Its latest version.
    latest_version: u32,
    /// `false` once deactivated; `null` when the store does not track activation.
    active: Option<bool>,
    /// When its first version was saved (ms since the epoch).
    created_at: i64,
}

impl From<WorkflowSummary> for WorkflowItem {
    fn from(s: WorkflowSummary) -> Self {
        Self {
            id: s.id,
            name: s.name,
            latest_version: s.latest_version,
            active: Some(s.active),
            created_at: s.created_at,
        }
    }
}

/// A page of workflows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowList {
    /// The workflows, ordered by id.
    items: Vec<WorkflowItem>,
    /// How many workflows there are in all.
    total: u64,
}

/// Paging of the workflow list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Paging {
    /// Skip this many (default 0).
    #[serde(default)]
    offset: u64,
    /// At most this many (default 50, at most 500).
    limit: Option<u64>,
}

/// One version of a workflow definition.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowVersion {
    /// The version.
    version: u32,
    /// When it was saved (ms since the epoch).
    created_at: i64,
    /// `false` once the workflow was deactivated; `null` when the store does not track it.
    active: Option<bool>,
    /// The definition (see `/schemas/workflow-definition.json`).
    #[schema(value_type = Object)]
    definition: Value,
}

fn version_of(stored: StoredWorkflow, active: Option<bool>) -> Result<WorkflowVersion, ApiError> {
    Ok(WorkflowVersion {
        version: stored.version,
        created_at: stored.created_at,
        active,
        definition: serde_json::to_value(&stored.definition)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    })
}

/// Registers (validates and saves) a workflow definition.
#[utoipa::path(post, path = "/workflows", tag = "workflows",
    request_body(content = Object, description = "A workflow definition (see /schemas/workflow-definition.json)"),
    responses(
        (status = 201, body = Registered),
        (status = 422, body = Problem, description = "invalid_definition: every problem, naming node and field"),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    JsonBody(definition): JsonBody<WorkflowDefinition>,
) -> Result<impl IntoResponse, ApiError> {
    let id = definition.id.clone();
    let version = state.engine.register_workflow(definition).await?;
    Ok((StatusCode::CREATED, Json(Registered { id, version })))
}

/// Lists workflows (latest versions), a page at a time.
#[utoipa::path(get, path = "/workflows", tag = "workflows", params(Paging),
    responses((status = 200, body = WorkflowList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Json<WorkflowList>, ApiError> {
    let limit = paging.limit.unwrap_or(50).clamp(1, 500);
    let store = state.engine.store();
    if let Some(catalog) = store.catalog() {
        let page = catalog.list_workflows_page(paging.offset, limit).await?;
        return Ok(Json(WorkflowList {
            items: page.items.into_iter().map(Into::into).collect(),
            total: page.total,
        }));
    }
    // A store without a catalog: every latest version, paged here.
    let all = store.list_workflows().await?;
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(paging.offset as usize)
        .take(limit as usize)
        .map(|w| WorkflowItem {
            id: w.definition.id,
            name: w.definition.name,
            latest_version: w.version,
            active: None,
            created_at: w.created_at,
        })
        .collect();
    Ok(Json(WorkflowList { items, total }))
}

async fn active(state: &AppState, id: &str) -> Result<Option<bool>, ApiError> {
    match state.engine.store().catalog() {
        Some(catalog) => Ok(catalog.workflow_summary(id).await?.map(|s| s.active)),
        None => Ok(None),
    }
}

async fn get_version(
    state: &AppState,
    id: &str,
    version: Option<u32>,
) -> Result<WorkflowVersion, ApiError> {
    let stored = state.engine.store().get_workflow(id, version).await?;
    let stored = stored.ok_or_else(|| match version {
        Some(v) => ApiError::not_found(
            "workflow_version_not_found",
            format!("workflow {id:?} has no version {v}"),
        ),
        None => ApiError::not_found(
            "workflow_not_found",
            format!("workflow {id:?} is not registered"),
        ),
    })?;
    version_of(stored, active(state, id).await?)
}

/// The latest version of a workflow.
#[utoipa::path(get, path = "/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, body = WorkflowVersion), (status = 404, body = Problem)))]
pub(crate) async fn get_latest(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    Ok(Json(get_version(&state, &id, None).await?))
}

/// One version of a workflow.
#[utoipa::path(get, path = "/workflows/{id}/versions/{version}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id"), ("version" = u32, Path, description = "Version, from 1")),
    responses((status = 200, body = WorkflowVersion), (status = 404, body = Problem)))]
pub(crate) async fn get_by_version(
    State(state): State<AppState>,
    PathParams((id, version)): PathParams<(String, u32)>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    Ok(Json(get_version(&state, &id, Some(version)).await?))
}

/// The activation state of a workflow after a change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Activation {
    /// The workflow id.
    id: String,
    /// Whether it is active now.
    active: bool,
}

async fn set_active(state: &AppState, id: String, on: bool) -> Result<Json<Activation>, ApiError> {
    let catalog = state.engine.store().catalog().ok_or_else(|| {
        ApiError::unsupported("the store in use does not track workflow activation (no catalog)")
    })?;
    let found = if on {
        catalog.activate_workflow(&id).await?
    } else {
        catalog.deactivate_workflow(&id).await?
    };
    if !found {
        return Err(ApiError::not_found(
            "workflow_not_found",
            format!("workflow {id:?} is not registered"),
        ));
    }
    Ok(Json(Activation { id, active: on }))
}

/// Marks a workflow inactive (a flag in the store's catalog; its versions stay readable).
#[utoipa::path(post, path = "/workflows/{id}/deactivate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, body = Activation), (status = 404, body = Problem), (status = 501, body = Problem)))]
pub(crate) async fn deactivate(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Activation>, ApiError> {
    set_active(&state, id, false).await
}

/// Marks a workflow active again.
#[utoipa::path(post, path = "/workflows/{id}/activate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, body = Activation), (status = 404, body = Problem), (status = 501, body = Problem)))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Activation>, ApiError> {
    set_active(&state, id, true).await
}
