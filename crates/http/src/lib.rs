//! # spane-http
//!
//! SPANE over HTTP, as an [axum](https://docs.rs/axum) router you mount in your own app: a REST
//! API over [`WorkflowEngine`], resumable server-sent events, Prometheus metrics, an OpenAPI
//! document, the JSON Schema of the workflow definition format, and a web dashboard.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use spane::prelude::*;
//! use spane_http::HttpConfig;
//!
//! let engine = WorkflowEngine::embedded(NodeRegistry::new());
//! engine.start_workers(4)?;
//! let config = HttpConfig::new()
//!     .bearer_token("s3cret")
//!     .prometheus(spane_http::install_prometheus()?);
//! // Mount it at the root, or under a prefix with `Router::nest("/spane", ...)`.
//! let app = axum::Router::new().merge(spane_http::router(engine, config));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The endpoints (all JSON; errors are RFC 9457 problem details with a stable `code`):
//!
//! | Method and path | What |
//! |---|---|
//! | `POST /workflows`, `GET /workflows` | register a definition; list workflows |
//! | `GET /workflows/{id}`, `GET /workflows/{id}/versions/{v}` | latest or one version |
//! | `POST /workflows/{id}/deactivate`, `.../activate` | flag in the store's catalog |
//! | `POST /workflows/{id}/executions` | start an execution (`{"data": ..., "deadlineMs": ...}`) |
//! | `GET /executions?status=&workflowId=&limit=&cursor=` | history, newest first, cursor pages |
//! | `GET /executions/{id}` | one execution with its node results |
//! | `POST /executions/{id}/pause`, `resume`, `cancel` | control one execution |
//! | `POST /executions/pause`, `resume`, `cancel` | control several (`{"executionIds": [...]}`) |
//! | `GET /dlq`, `GET /dlq/{exec}/{node}`, `POST /dlq/{exec}/{node}/retry`, `POST /dlq/{exec}/retry`, `DELETE /dlq` | dead-letter queue |
//! | `GET /executions/{id}/children` | the sub-workflow executions it started |
//! | `GET /schedules`, `POST /schedules`, `GET /schedules/{id}`, `DELETE /schedules/{id}` | cron schedules (list, upsert, get, remove or cancel) |
//! | `DELETE /workflows/{id}/schedules`, `POST /workflows/{id}/scheduled-executions` | remove a workflow's schedules; start it once, later |
//! | `ANY /webhooks/{*path}` | a webhook delivery, through the engine's `trigger_webhook` |
//! | `GET /circuit-breakers`, `POST /circuit-breakers/{key}/reset` | circuit breakers |
//! | `GET /queue/stats` | backend counters, dead letters, executions by status |
//! | `GET /executions/{id}/events`, `GET /events?executionId=` | server-sent events (see below) |
//! | `GET /metrics`, `GET /health`, `GET /ready` | Prometheus, liveness, readiness |
//! | `GET /openapi.json`, `GET /schemas/workflow-definition.json` | OpenAPI 3.1, JSON Schema |
//! | `GET /` | the dashboard |
//!
//! Event streams send the execution's snapshot first, then one message per event with the
//! event's id, heartbeat comments, and resume after `Last-Event-ID` with nothing missed or
//! repeated; see the `sse` module's table of messages. They need an event bus with ids
//! ([`ResumableBus`](spane::events::ResumableBus)): both built-in buses are; give the embedded
//! engine a [`LocalBus::with_journal`](spane::events::LocalBus::with_journal) so that a client
//! can resume after a reconnect (Redis resumes from its stream, across server restarts).

mod api;
mod config;
mod dashboard;
mod error;
mod extract;
mod middleware;
mod openapi;
mod sse;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, post};
#[cfg(feature = "prometheus")]
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use spane::WorkflowEngine;
use tower_http::cors::CorsLayer;

pub use config::HttpConfig;
pub use error::{ApiError, Problem};
pub use openapi::{openapi_json, workflow_definition_schema};

use api::AppState;

/// Errors of setting up the HTTP layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The Prometheus recorder could not be built or installed (for example another global
    /// recorder is installed already).
    #[error("cannot install the Prometheus recorder: {reason}")]
    Metrics {
        /// The exporter's message.
        reason: String,
    },
}

/// The histogram buckets of latencies, in seconds: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs a global Prometheus recorder whose histograms (the HTTP layer's and the worker
/// runtime's) have [`LATENCY_BUCKETS`], so that they aggregate across instances, and returns
/// the handle to give to [`HttpConfig::prometheus`]. Call it once per process.
#[cfg(feature = "prometheus")]
pub fn install_prometheus() -> Result<PrometheusHandle, HttpError> {
    let metrics = |e: metrics_exporter_prometheus::BuildError| HttpError::Metrics {
        reason: e.to_string(),
    };
    PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .map_err(metrics)?
        .install_recorder()
        .map_err(metrics)
}

/// The router: every endpoint of the table above, over `engine`.
pub fn router(engine: WorkflowEngine, config: HttpConfig) -> Router {
    let body_limit = config.body_limit;
    let cors = (!config.cors_origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(config.cors_origins.clone())
            .allow_methods(tower_http::cors::Any)
            .allow_headers(tower_http::cors::Any)
    });
    let dashboard = config.dashboard;
    let state = AppState {
        engine,
        config: Arc::new(config),
    };
    let mut app = Router::new()
        .route(
            "/workflows",
            get(api::workflows::list).post(api::workflows::register),
        )
        .route("/workflows/{id}", get(api::workflows::get_latest))
        .route(
            "/workflows/{id}/versions/{version}",
            get(api::workflows::get_by_version),
        )
        .route(
            "/workflows/{id}/deactivate",
            post(api::workflows::deactivate),
        )
        .route("/workflows/{id}/activate", post(api::workflows::activate))
        .route("/workflows/{id}/executions", post(api::executions::execute))
        .route("/executions", get(api::executions::list))
        .route("/executions/pause", post(api::control::pause_many))
        .route("/executions/resume", post(api::control::resume_many))
        .route("/executions/cancel", post(api::control::cancel_many))
        .route("/executions/{id}", get(api::executions::get))
        .route("/executions/{id}/pause", post(api::control::pause))
        .route("/executions/{id}/resume", post(api::control::resume))
        .route("/executions/{id}/cancel", post(api::control::cancel))
        .route("/executions/{id}/children", get(api::executions::children))
        .route("/executions/{id}/explain", get(api::operate::explain))
        .route("/executions/{id}/rerun", post(api::operate::rerun))
        .route(
            "/executions/{id}/retry-failed",
            post(api::operate::retry_failed),
        )
        .route("/executions/{id}/events", get(sse::execution_events))
        .route("/events", get(sse::events))
        .route("/dlq", get(api::dlq::list).delete(api::dlq::purge))
        .route("/dlq/{execution}/retry", post(api::dlq::retry_execution))
        .route("/dlq/{execution}/{node}", get(api::dlq::get))
        .route("/dlq/{execution}/{node}/retry", post(api::dlq::retry))
        .route(
            "/schedules",
            get(api::schedules::list).post(api::schedules::upsert),
        )
        .route(
            "/schedules/{id}",
            get(api::schedules::get).delete(api::schedules::remove),
        )
        .route(
            "/workflows/{id}/schedules",
            delete(api::schedules::remove_workflow),
        )
        .route(
            "/workflows/{id}/scheduled-executions",
            post(api::schedules::schedule_once),
        )
        .route("/webhooks/{*path}", any(api::webhooks::deliver))
        .route("/circuit-breakers", get(api::breakers::list))
        .route("/circuit-breakers/{key}/reset", post(api::breakers::reset))
        .route("/queue/stats", get(api::system::queue_stats))
        .route("/metrics", get(api::system::metrics))
        .route("/health", get(api::system::health))
        .route("/ready", get(api::system::ready))
        .route("/openapi.json", get(openapi::openapi))
        .route(
            "/schemas/workflow-definition.json",
            get(openapi::workflow_schema),
        );
    if dashboard {
        app = app.merge(dashboard::routes());
    }
    let mut app = app
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::auth,
        ))
        .route_layer(axum::middleware::from_fn(middleware::record))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("route_not_found", format!("no endpoint at {}", uri.path()))
}
