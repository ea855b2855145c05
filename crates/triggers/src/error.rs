//! The errors of this crate: one enum for schedules and the stores, one for webhook refusals.

use std::time::Duration;

/// Errors of schedules and of the stores that keep them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// The cron pattern does not parse.
    #[error("invalid cron pattern {pattern:?}: {reason}")]
    InvalidCron {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The timezone is not an IANA name.
    #[error("unknown timezone {0:?}")]
    InvalidTimezone(String),
    /// A schedule setting is out of range or of the wrong type.
    #[error("schedule {schedule:?}: {field} = {value}: {reason}")]
    InvalidSchedule {
        /// The schedule id (or the workflow id when the id is not known yet).
        schedule: String,
        /// The field, for example `data` or `catchUpLimit`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A webhook trigger's signature settings are invalid.
    #[error("webhook trigger of workflow {workflow:?} on {path:?}: {field} = {value}: {reason}")]
    InvalidWebhook {
        /// The workflow.
        workflow: String,
        /// The trigger's path.
        path: String,
        /// The field, for example `config.signature.secret`.
        field: &'static str,
        /// The value given (secrets are not repeated).
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The cron pattern has no occurrence after the given time (for example the 30th of
    /// February), so the schedule would never fire.
    #[error("schedule {schedule:?} never fires: {pattern:?} has no occurrence after now")]
    NeverFires {
        /// The schedule id.
        schedule: String,
        /// The pattern.
        pattern: String,
    },
    #[cfg(feature = "redis")]
    /// Connecting to the trigger backend (Redis) failed (invalid URL, TLS, authentication,
    /// unreachable); the source says which.
    #[error("trigger backend connection failed: {0}")]
    Connect(#[source] spane_redis::ConnectError),
    /// The trigger backend (Redis) could not be reached; the operation may be retried.
    #[error("trigger backend unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
        /// The underlying error (the Redis client's or the database driver's), when there is one.
        #[source]
        source: Option<spane_core::ErrorSource>,
    },
    /// The trigger backend answered with something this version cannot read.
    #[error("trigger backend error: {reason}")]
    Backend {
        /// What failed.
        reason: String,
        /// The underlying error (the Redis client's or the database driver's), when there is one.
        #[source]
        source: Option<spane_core::ErrorSource>,
    },
}

/// Why a webhook delivery was refused. Each variant names the path (and the workflow whose
/// trigger refused it, where one did).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No registered workflow has a webhook trigger on this path and method.
    #[error("no webhook trigger matches {method} /{path}")]
    NoMatch {
        /// The normalised path.
        path: String,
        /// The method, upper case.
        method: String,
    },
    /// The body is larger than the configured limit.
    #[error("webhook /{path}: body of {size} bytes is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The normalised path.
        path: String,
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A trigger requires a signature and the request has none.
    #[error("webhook /{path} of workflow {workflow:?}: signature header {header:?} is missing")]
    MissingSignature {
        /// The normalised path.
        path: String,
        /// The workflow whose trigger requires it.
        workflow: String,
        /// The header that should carry it.
        header: String,
    },
    /// The signature does not match the body (or is not hex).
    #[error(
        "webhook /{path} of workflow {workflow:?}: signature in {header:?} does not match the body"
    )]
    BadSignature {
        /// The normalised path.
        path: String,
        /// The workflow whose trigger refused it.
        workflow: String,
        /// The header that carried it.
        header: String,
    },
    /// The trigger signs a timestamp and the request has none, or not a number of seconds.
    #[error(
        "webhook /{path} of workflow {workflow:?}: timestamp header {header:?} is missing or not a Unix time in seconds ({value:?})"
    )]
    BadTimestamp {
        /// The normalised path.
        path: String,
        /// The workflow.
        workflow: String,
        /// The timestamp header.
        header: String,
        /// What the header held (empty when absent).
        value: String,
    },
    /// The signed timestamp is further from now than the trigger's tolerance (a replay).
    #[error(
        "webhook /{path} of workflow {workflow:?}: timestamp is {skew:?} away from now, over the tolerance of {tolerance:?}"
    )]
    StaleTimestamp {
        /// The normalised path.
        path: String,
        /// The workflow.
        workflow: String,
        /// How far the timestamp is from now.
        skew: Duration,
        /// The trigger's tolerance.
        tolerance: Duration,
    },
    /// The body is neither JSON nor UTF-8 text.
    #[error("webhook /{path}: body is neither JSON nor UTF-8 text")]
    BodyNotText {
        /// The normalised path.
        path: String,
    },
    /// A delivery with the same idempotency key is being processed right now; retry later.
    #[error("webhook /{path}: a delivery with idempotency key {key:?} is still being processed")]
    DeliveryInProgress {
        /// The normalised path.
        path: String,
        /// The idempotency key.
        key: String,
    },
    /// The idempotency key is empty or longer than 256 bytes.
    #[error("webhook /{path}: idempotency key {key:?} must be 1 to 256 bytes")]
    BadIdempotencyKey {
        /// The normalised path.
        path: String,
        /// The key (cut to 64 characters).
        key: String,
    },
    /// A matching workflow's execution could not start (for example it is no longer
    /// registered). Executions started before it for the same delivery keep running, and a
    /// redelivery with the same idempotency key returns them.
    #[error("webhook /{path}: workflow {workflow:?} could not start: {reason}")]
    Launch {
        /// The normalised path.
        path: String,
        /// The workflow.
        workflow: String,
        /// Why.
        reason: String,
    },
    /// The idempotency store failed.
    #[error("webhook /{path}: idempotency store: {source}")]
    Store {
        /// The normalised path.
        path: String,
        /// What failed.
        #[source]
        source: Box<TriggerError>,
    },
}

impl WebhookError {
    /// A short name of the refusal, for metrics: `no_match`, `too_large`, `signature`,
    /// `timestamp`, `body`, `in_progress`, `key`, `launch` or `store`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoMatch { .. } => "no_match",
            Self::BodyTooLarge { .. } => "too_large",
            Self::MissingSignature { .. } | Self::BadSignature { .. } => "signature",
            Self::BadTimestamp { .. } | Self::StaleTimestamp { .. } => "timestamp",
            Self::BodyNotText { .. } => "body",
            Self::DeliveryInProgress { .. } => "in_progress",
            Self::BadIdempotencyKey { .. } => "key",
            Self::Launch { .. } => "launch",
            Self::Store { .. } => "store",
        }
    }
}
