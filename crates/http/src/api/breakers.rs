//! Circuit breakers: inspect and reset.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use spane::queue::BreakerInfo;
use utoipa::ToSchema;

use super::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::PathParams;

/// Every circuit breaker that has state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BreakerList {
    /// The breakers (`key` = `{type}:{key}`, `status` = `CLOSED`/`OPEN`/`HALF_OPEN`, counters).
    #[schema(value_type = Vec<Object>)]
    items: Vec<BreakerInfo>,
}

/// Every circuit breaker that has state, as all workers share it.
#[utoipa::path(get, path = "/circuit-breakers", tag = "circuit-breakers",
    responses((status = 200, body = BreakerList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<BreakerList>, ApiError> {
    Ok(Json(BreakerList {
        items: state.engine.circuit_breakers().await?,
    }))
}

/// The outcome of a reset.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reset {
    /// The breaker.
    key: String,
    /// Whether it had state to forget.
    reset: bool,
}

/// Closes a circuit breaker by forgetting its state.
#[utoipa::path(post, path = "/circuit-breakers/{key}/reset", tag = "circuit-breakers",
    params(("key" = String, Path, description = "Breaker key, `{type}:{key}`")),
    responses((status = 200, body = Reset), (status = 404, body = Problem)))]
pub(crate) async fn reset(
    State(state): State<AppState>,
    PathParams(key): PathParams<String>,
) -> Result<Json<Reset>, ApiError> {
    if !state.engine.reset_circuit_breaker(&key).await? {
        return Err(ApiError::not_found(
            "breaker_not_found",
            format!("circuit breaker {key:?} has no state"),
        ));
    }
    Ok(Json(Reset { key, reset: true }))
}
