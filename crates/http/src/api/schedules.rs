//! Schedules: cron schedules (list, get, upsert, remove one, remove a workflow's) and one-shot
//! scheduled executions (create, cancel), over the engine's schedule API.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spane::triggers::chrono::{DateTime, TimeZone, Utc};
use spane::triggers::{CatchUp, ScheduleKind, ScheduleRecord, ScheduleSource, ScheduleSpec};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{JsonBody, PathParams, QueryParams};

/// A schedule and where it stands. Times are milliseconds since the Unix epoch, like the
/// execution records'.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Schedule {
    /// `schedule:{workflowId}:{cron}` or `once:{workflowId}:{ulid}`.
    id: String,
    /// The workflow each fire starts.
    workflow_id: String,
    /// `cron` or `once`.
    kind: &'static str,
    /// The cron pattern (cron schedules).
    #[serde(skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    /// The IANA time zone (cron schedules; UTC when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    /// When a one-shot fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    /// `skip`, `latest` or `all`.
    catch_up: &'static str,
    /// For `catchUp: all`: at most this many fires for one catch-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    catch_up_limit: Option<u32>,
    /// The initial data of each execution (the engine adds `_trigger`).
    #[schema(value_type = Object)]
    data: Value,
    /// `definition` (a trigger of the workflow's definition) or `api`.
    source: &'static str,
    /// The next tick to fire; absent once a one-shot fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_fire: Option<i64>,
    /// The latest tick fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_fire: Option<i64>,
    /// The execution the latest tick started.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_execution_id: Option<String>,
    /// Ticks fired since the schedule was created.
    fires: u64,
    /// Ticks left unfired by the catch-up policy.
    misses: u64,
    /// When it was created.
    created_at: i64,
    /// When its spec last changed.
    updated_at: i64,
}

impl From<ScheduleRecord> for Schedule {
    fn from(r: ScheduleRecord) -> Self {
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        let (kind, cron, timezone, at) = match &r.spec.kind {
            ScheduleKind::Cron { cron, timezone } => {
                ("cron", Some(cron.clone()), timezone.clone(), None)
            }
            ScheduleKind::Once { at_ms } => ("once", None, None, Some(*at_ms)),
            _ => ("other", None, None, None),
        };
        let (catch_up, catch_up_limit) = match r.spec.catch_up {
            CatchUp::Skip => ("skip", None),
            CatchUp::All { limit } => ("all", Some(limit)),
            _ => ("latest", None),
        };
        Self {
            id: r.spec.id,
            workflow_id: r.spec.workflow_id,
            kind,
            cron,
            timezone,
            at,
            catch_up,
            catch_up_limit,
            data: r.spec.data,
            source: match r.spec.source {
                ScheduleSource::Definition => "definition",
                _ => "api",
            },
            next_fire: r.next_fire.map(ms),
            last_fire: r.last_fire.map(ms),
            last_execution_id: r.last_execution_id.map(|id| id.to_string()),
            fires: r.fires,
            misses: r.misses,
            created_at: ms(r.created_at),
            updated_at: ms(r.updated_at),
        }
    }
}

/// Filter of the schedule list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this workflow's schedules.
    workflow_id: Option<String>,
}

/// Schedules, by id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    /// The schedules.
    items: Vec<Schedule>,
}

/// Every schedule (or one workflow's): cron schedules and one-shots that have not fired.
#[utoipa::path(get, path = "/schedules", tag = "schedules", params(ListQuery),
    responses((status = 200, body = ScheduleList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<ScheduleList>, ApiError> {
    let records = state
        .engine
        .list_schedules(q.workflow_id.as_deref())
        .await?;
    Ok(Json(ScheduleList {
        items: records.into_iter().map(Schedule::from).collect(),
    }))
}

fn schedule_not_found(id: &str) -> ApiError {
    ApiError::not_found("schedule_not_found", format!("no schedule {id:?}"))
}

/// One schedule, with its next and last fire and the last execution it started.
#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id, percent-encoded (it holds spaces and `/`)")),
    responses((status = 200, body = Schedule), (status = 404, body = Problem)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Schedule>, ApiError> {
    let record = state
        .engine
        .get_schedule(&id)
        .await?
        .ok_or_else(|| schedule_not_found(&id))?;
    Ok(Json(record.into()))
}

/// A cron schedule to insert or update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpsertSchedule {
    /// The workflow to start (must be registered).
    workflow_id: String,
    /// The cron pattern: 5 fields, or 6 with seconds first.
    cron: String,
    /// IANA time zone (default UTC).
    timezone: Option<String>,
    /// What happens to ticks missed while no runner ran: `skip`, `latest` (default) or `all`.
    catch_up: Option<String>,
    /// For `all`: at most this many fires for one catch-up (default 10).
    catch_up_limit: Option<u32>,
    /// The initial data of each execution: an object (default `{}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    data: Value,
}

/// Inserts or updates a cron schedule; its id is `schedule:{workflowId}:{cron}`. Idempotent:
/// the same body again keeps one schedule and its next fire time.
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = UpsertSchedule,
    responses(
        (status = 200, body = Schedule, description = "The schedule as stored"),
        (status = 404, body = Problem, description = "workflow_not_found"),
        (status = 422, body = Problem, description = "invalid_schedule: a bad pattern, time zone, catch-up or data"),
    ))]
pub(crate) async fn upsert(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<UpsertSchedule>,
) -> Result<Json<Schedule>, ApiError> {
    let invalid = |detail: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_schedule",
            "Invalid schedule",
            detail,
        )
    };
    if let Some(limit) = body.catch_up_limit
        && body.catch_up.as_deref() != Some("all")
    {
        return Err(invalid(format!(
            "catchUpLimit = {limit}: applies only with catchUp \"all\""
        )));
    }
    let catch_up = match body.catch_up.as_deref() {
        None | Some("latest") => CatchUp::Latest,
        Some("skip") => CatchUp::Skip,
        Some("all") => CatchUp::All {
            limit: body.catch_up_limit.unwrap_or(10),
        },
        Some(other) => {
            return Err(invalid(format!(
                "catchUp = {other:?}: expected \"skip\", \"latest\" or \"all\""
            )));
        }
    };
    let mut spec = ScheduleSpec::cron(body.workflow_id, body.cron)
        .catch_up(catch_up)
        .data(body.data);
    if let Some(tz) = body.timezone {
        spec = spec.timezone(tz);
    }
    Ok(Json(state.engine.upsert_schedule(spec).await?.into()))
}

/// Removes a schedule (a cron schedule, or a one-shot that has not fired: then it is
/// cancelled). No tick fires after the answer.
#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id, percent-encoded")),
    responses((status = 204, description = "Removed"),
        (status = 404, body = Problem, description = "schedule_not_found: none, or a one-shot that fired already")))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let removed = if id.starts_with("once:") {
        state.engine.cancel_scheduled_workflow(&id).await?
    } else {
        state.engine.remove_schedule(&id).await?
    };
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(schedule_not_found(&id))
    }
}

/// How many schedules were removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Removed {
    /// The count.
    count: usize,
}

/// Removes every schedule of a workflow: those made through the API and those of its
/// definition's triggers (until the definition is registered again).
#[utoipa::path(delete, path = "/workflows/{id}/schedules", tag = "schedules",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, body = Removed)))]
pub(crate) async fn remove_workflow(
    State(state): State<AppState>,
    PathParams(workflow): PathParams<String>,
) -> Result<Json<Removed>, ApiError> {
    let count = state.engine.remove_workflow_schedules(&workflow).await?;
    Ok(Json(Removed { count }))
}

/// A time: milliseconds since the Unix epoch, or an RFC 3339 string.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Instant {
    /// Milliseconds since the Unix epoch.
    Millis(i64),
    /// RFC 3339, for example `2026-01-15T14:00:00Z`.
    Text(String),
}

impl Instant {
    fn resolve(&self) -> Result<DateTime<Utc>, ApiError> {
        let bad = |v: String| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_schedule",
                "Invalid schedule",
                format!("at = {v}: expected milliseconds since the epoch or an RFC 3339 time"),
            )
        };
        match self {
            Self::Millis(ms) => Utc
                .timestamp_millis_opt(*ms)
                .single()
                .ok_or_else(|| bad(ms.to_string())),
            Self::Text(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad(format!("{text:?}"))),
        }
    }
}

/// An execution to start once, later.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ScheduleOnce {
    /// When to start it (a past time starts it at the runner's next pass).
    at: Instant,
    /// Its initial data: an object, or null (the engine adds `_trigger`).
    #[serde(default)]
    #[schema(value_type = Object)]
    data: Value,
}

/// A one-shot that was scheduled.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduledOnce {
    /// Its id (`once:{workflowId}:{ulid}`): `DELETE /schedules/{id}` cancels it.
    schedule_id: String,
    /// The workflow.
    workflow_id: String,
    /// When it fires, in milliseconds since the Unix epoch.
    at: i64,
}

/// Starts the latest version of a workflow once, at a given time.
#[utoipa::path(post, path = "/workflows/{id}/scheduled-executions", tag = "schedules",
    params(("id" = String, Path, description = "Workflow id")),
    request_body = ScheduleOnce,
    responses((status = 201, body = ScheduledOnce),
        (status = 404, body = Problem, description = "workflow_not_found"),
        (status = 422, body = Problem, description = "invalid_schedule")))]
pub(crate) async fn schedule_once(
    State(state): State<AppState>,
    PathParams(workflow): PathParams<String>,
    JsonBody(body): JsonBody<ScheduleOnce>,
) -> Result<impl IntoResponse, ApiError> {
    let at = body.at.resolve()?;
    let id = state
        .engine
        .schedule_workflow(&workflow, body.data, at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ScheduledOnce {
            schedule_id: id,
            workflow_id: workflow,
            at: at.timestamp_millis(),
        }),
    ))
}
