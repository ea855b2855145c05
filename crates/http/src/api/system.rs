//! Health, readiness, queue statistics and Prometheus metrics.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
#[cfg(feature = "prometheus")]
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use spane::ExecutionId;
use utoipa::ToSchema;

use super::AppState;
use crate::error::{ApiError, Problem};

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the process answers.
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: whether each backend answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// The queue backend's answer (`ok` or the error).
    queue: String,
    /// The store's answer (`ok` or the error).
    store: String,
}

/// Readiness: the queue backend and the store answer a read (503 otherwise).
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let queue = match state
        .engine
        .queue()
        .execution_status(ExecutionId::new())
        .await
    {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let store = match state
        .engine
        .store()
        .get_workflow("__spane_ready__", None)
        .await
    {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let ok = queue == "ok" && store == "ok";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        status: if ok { "ready" } else { "unavailable" },
        queue,
        store,
    };
    (status, Json(body)).into_response()
}

/// Counters of the queue backend and the history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueueStatsView {
    /// Requests this process's queue client sent to a remote backend (0 in process).
    round_trips: u64,
    /// Commands the backend server ran since it started (Redis only).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_commands: Option<u64>,
    /// CPU time of the backend server since it started, µs (Redis only).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_micros: Option<u64>,
    /// Dead-letter items.
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letters: Option<usize>,
    /// Executions by status in the history, when the store keeps history.
    #[serde(skip_serializing_if = "Option::is_none")]
    executions_by_status: Option<BTreeMap<String, u64>>,
}

/// Counters of the queue backend, the dead-letter queue and the history.
#[utoipa::path(get, path = "/queue/stats", tag = "system",
    responses((status = 200, body = QueueStatsView), (status = 503, body = Problem)))]
pub(crate) async fn queue_stats(
    State(state): State<AppState>,
) -> Result<Json<QueueStatsView>, ApiError> {
    let counters = state.engine.queue().counters();
    let server = match counters {
        Some(c) => Some(c.server_stats().await?),
        None => None,
    };
    let dead_letters = match state.engine.dead_letter_count().await {
        Ok(n) => Some(n),
        Err(spane::Error::Unsupported { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let executions_by_status = match state.engine.store().history() {
        Some(history) => Some(
            history
                .count_by_status(None)
                .await?
                .into_iter()
                .map(|(status, n)| (status.to_string(), n))
                .collect(),
        ),
        None => None,
    };
    Ok(Json(QueueStatsView {
        round_trips: counters.map_or(0, |c| c.stats().round_trips),
        server_commands: server.map(|s| s.commands),
        server_cpu_micros: server.map(|s| s.cpu_micros),
        dead_letters,
        executions_by_status,
    }))
}

/// Prometheus metrics (text exposition format); latencies are histograms with buckets.
#[cfg(not(feature = "prometheus"))]
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String), (status = 501, body = Problem)))]
pub(crate) async fn metrics(State(_state): State<AppState>) -> Result<Response, ApiError> {
    Err(ApiError::unsupported(
        "this server was built without spane-http's `prometheus` feature",
    ))
}

/// Prometheus metrics (text exposition format); latencies are histograms with buckets.
#[cfg(feature = "prometheus")]
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String), (status = 501, body = Problem)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let handle = state.config.prometheus.as_ref().ok_or_else(|| {
        ApiError::unsupported("no Prometheus recorder was given (HttpConfig::prometheus)")
    })?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}
