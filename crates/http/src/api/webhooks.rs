//! Webhook deliveries: `ANY /webhooks/{*path}` through the engine's `trigger_webhook`, with
//! the request's headers and raw body (so that HMAC signatures and idempotency keys work).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::error::{ApiError, Problem, rejection};
use crate::extract::PathParams;

/// What a delivery started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Delivered {
    /// The executions started, one per workflow whose trigger matched (for a replay: those
    /// the first delivery started).
    execution_ids: Vec<String>,
    /// `true` when the `Idempotency-Key` was seen before within the window: nothing started.
    replayed: bool,
}

/// Delivers a webhook: starts every registered workflow whose webhook trigger matches the
/// path and the method (any method when the trigger names none), with the body as initial
/// data (JSON, else a string; null when empty). A first delivery answers 202; a repeat with
/// the same `Idempotency-Key` within the window answers 200 with the first delivery's
/// executions and `replayed: true` (a 2xx, so that the sender stops redelivering).
#[utoipa::path(post, path = "/webhooks/{path}", tag = "webhooks",
    params(("path" = String, Path, description = "The trigger's path (any depth); any method the trigger names")),
    request_body(content = Object, description = "Any body: JSON, text, or empty"),
    responses(
        (status = 202, body = Delivered, description = "Executions started"),
        (status = 200, body = Delivered, description = "A repeat of an idempotency key: nothing started"),
        (status = 400, body = Problem, description = "bad_idempotency_key, body_not_text"),
        (status = 401, body = Problem, description = "missing_signature, bad_signature, bad_timestamp, stale_timestamp"),
        (status = 404, body = Problem, description = "webhook_not_found: no trigger on this path and method"),
        (status = 409, body = Problem, description = "delivery_in_progress: the same key is being processed; retry after `Retry-After`"),
        (status = 413, body = Problem, description = "payload_too_large"),
    ))]
pub(crate) async fn deliver(
    State(state): State<AppState>,
    PathParams(path): PathParams<String>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let method = request.method().as_str().to_owned();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let body = Bytes::from_request(request, &state)
        .await
        .map_err(|e| rejection(e.status(), e.body_text()))?;
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let delivery = state
        .engine
        .trigger_webhook_delivery(&path, &method, &body, &headers)
        .await?;
    let status = if delivery.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(Delivered {
            execution_ids: delivery
                .execution_ids
                .iter()
                .map(ToString::to_string)
                .collect(),
            replayed: delivery.replayed,
        }),
    ))
}
