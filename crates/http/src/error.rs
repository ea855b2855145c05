//! Errors as RFC 9457 problem details (`application/problem+json`) with a stable `code`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use spane::core::rerun::RerunError;
use spane::events::EventError;
use spane::queue::QueueError;
use spane::store::StoreError;
use spane::triggers::{TriggerError, WebhookError};
use utoipa::ToSchema;

/// A problem detail: what every error response of the API carries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Problem {
    /// A URI naming the problem type (`urn:spane:problem:<code>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence, naming the id, field or value.
    pub detail: String,
    /// A stable, machine-readable code (`workflow_not_found`, `invalid_definition`, ...).
    pub code: String,
    /// For `invalid_definition`: every problem found, each naming the node and field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// An error of a handler, answered as a [`Problem`].
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the given status, stable code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header (seconds) to the answer.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 `bad_request`: the request is malformed (a parameter, a body field).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad request",
            detail,
        )
    }

    /// 404 with the given code.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    /// 501 `unsupported`: the backends in use do not offer this.
    pub fn unsupported(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported",
            "Not supported by this backend",
            detail,
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The body this error is answered with.
    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:spane:problem:{}", self.code),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, detail = %self.detail, "request failed");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<RerunError> for ApiError {
    fn from(e: RerunError) -> Self {
        let detail = e.to_string();
        let (status, code, title) = match e {
            RerunError::UnknownNode { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_node",
                "Unknown node",
            ),
            RerunError::InputNeedsRecordedParents { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "input_needs_recorded_parents",
                "Input needs recorded parents",
            ),
            RerunError::GraphChanged { .. } => {
                (StatusCode::CONFLICT, "graph_changed", "Graph changed")
            }
            RerunError::NothingFailed => (StatusCode::CONFLICT, "nothing_failed", "Nothing failed"),
            RerunError::ExecutionGone { .. } => {
                (StatusCode::GONE, "execution_gone", "Execution gone")
            }
            _ => (StatusCode::CONFLICT, "rerun_refused", "Re-run refused"),
        };
        Self::new(status, code, title, detail)
    }
}

impl From<spane::Error> for ApiError {
    fn from(e: spane::Error) -> Self {
        let detail = e.to_string();
        match e {
            spane::Error::Invalid(errors) => Self {
                errors: errors.iter().map(ToString::to_string).collect(),
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_definition",
                    "Invalid workflow definition",
                    detail,
                )
            },
            spane::Error::WorkflowNotFound { .. } => Self::not_found("workflow_not_found", detail),
            spane::Error::ExecutionNotFound(_) => Self::not_found("execution_not_found", detail),
            spane::Error::Timeout { .. } => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", "Timed out", detail)
            }
            spane::Error::Unsupported { .. } => Self::unsupported(detail),
            spane::Error::Queue(q) => q.into(),
            spane::Error::Store(s) => s.into(),
            spane::Error::Events(ev) => ev.into(),
            spane::Error::Trigger(t) => t.into(),
            spane::Error::Webhook(w) => w.into(),
            spane::Error::Rerun(r) => r.into(),
            spane::Error::InvalidIdempotencyKey { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Invalid idempotency key",
                detail,
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                detail,
            ),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let detail = e.to_string();
        match e {
            QueueError::ExecutionNotFound(_) => Self::not_found("execution_not_found", detail),
            QueueError::NotAllowed { .. } => Self::new(
                StatusCode::CONFLICT,
                "not_allowed",
                "Not allowed in the execution's state",
                detail,
            ),
            QueueError::DuplicateExecution(_) => Self::new(
                StatusCode::CONFLICT,
                "duplicate_execution",
                "Duplicate execution",
                detail,
            ),
            QueueError::Unavailable { .. } => unavailable(detail),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "queue_error",
                "Queue backend error",
                detail,
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let detail = e.to_string();
        match e {
            StoreError::Invalid { .. } => Self::bad_request(detail),
            StoreError::ExecutionNotFound(_) => Self::not_found("execution_not_found", detail),
            StoreError::Unavailable { .. } => unavailable(detail),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                "Store error",
                detail,
            ),
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        let detail = e.to_string();
        match e {
            TriggerError::InvalidCron { .. }
            | TriggerError::InvalidTimezone(_)
            | TriggerError::InvalidSchedule { .. }
            | TriggerError::InvalidWebhook { .. }
            | TriggerError::NeverFires { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_schedule",
                "Invalid schedule",
                detail,
            ),
            TriggerError::Unavailable { .. } => unavailable(detail),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "trigger_error",
                "Trigger backend error",
                detail,
            ),
        }
    }
}

/// Webhook refusals. A sender retries on 5xx and 409 and gives up on the other 4xx, so a
/// refusal that no retry can fix (bad signature, no route) is a 4xx other than 409.
impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let detail = e.to_string();
        let unauthorized = |code| {
            Self::new(
                StatusCode::UNAUTHORIZED,
                code,
                "Unauthorized",
                detail.clone(),
            )
        };
        match e {
            WebhookError::NoMatch { .. } => Self::not_found("webhook_not_found", detail),
            WebhookError::BodyTooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                detail,
            ),
            WebhookError::MissingSignature { .. } => unauthorized("missing_signature"),
            WebhookError::BadSignature { .. } => unauthorized("bad_signature"),
            WebhookError::BadTimestamp { .. } => unauthorized("bad_timestamp"),
            WebhookError::StaleTimestamp { .. } => unauthorized("stale_timestamp"),
            WebhookError::BodyNotText { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "body_not_text",
                "Body is neither JSON nor text",
                detail,
            ),
            WebhookError::BadIdempotencyKey { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "bad_idempotency_key",
                "Bad idempotency key",
                detail,
            ),
            WebhookError::DeliveryInProgress { .. } => Self::new(
                StatusCode::CONFLICT,
                "delivery_in_progress",
                "Delivery in progress",
                detail,
            )
            .retry_after(1),
            WebhookError::Store { source, .. }
                if matches!(*source, TriggerError::Unavailable { .. }) =>
            {
                unavailable(detail)
            }
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "webhook_failed",
                "Webhook could not be processed",
                detail,
            ),
        }
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        unavailable(e.to_string())
    }
}

fn unavailable(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Backend unavailable",
        detail,
    )
}

/// Turns axum's extractor rejections (bad JSON, bad query, too large) into problems.
pub(crate) fn rejection(status: StatusCode, detail: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", "Payload too large", detail)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "Unsupported media type",
            detail,
        ),
        StatusCode::UNPROCESSABLE_ENTITY => {
            ApiError::new(status, "invalid_body", "Invalid request body", detail)
        }
        _ => ApiError::bad_request(detail),
    }
}
