//! Bearer-token authentication and request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::error::ApiError;

/// Paths open without a token: probes and the dashboard's static files (which hold no data;
/// the dashboard sends the token on its API calls).
fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/" | "/favicon.ico")
        || path.starts_with("/ui/")
        || path.starts_with("/assets/")
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of a request: `Authorization: Bearer`, or `access_token` in the query of an
/// event stream (an `EventSource` cannot set headers).
fn presented(req: &Request) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION)
        && let Ok(text) = value.to_str()
        && let Some(token) = text.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    let path = req.uri().path();
    if path == "/events" || path.ends_with("/events") {
        let axum::extract::Query(query) = axum::extract::Query::<
            std::collections::HashMap<String, String>,
        >::try_from_uri(req.uri())
        .ok()?;
        return query.get("access_token").cloned();
    }
    None
}

pub(crate) async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.config.token.as_deref() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let webhook = path.starts_with("/webhooks/") && !state.config.webhooks_need_token;
    if webhook || is_public(path) {
        return next.run(req).await;
    }
    match presented(&req) {
        Some(token) if same(token.as_bytes(), expected.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Unauthorized",
            "the bearer token is not valid",
        )
        .into_response(),
        None => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "Unauthorized",
                "this endpoint needs an `Authorization: Bearer <token>` header",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static value"),
            );
            response
        }
    }
}

/// Records `spane_http_requests_total` and the histogram `spane_http_request_duration_seconds`
/// by method, route template and status.
pub(crate) async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("spane_http_requests_total", &labels).increment(1);
    metrics::histogram!("spane_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
