//! Circuit breakers and rate limits shared by every worker of a backend.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use spane_core::{BreakerDecision, BreakerState, CircuitBreakerConfig};

use crate::error::QueueError;

/// One circuit breaker, for inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerInfo {
    /// `{type}:{key}`.
    pub key: String,
    /// Its state.
    #[serde(flatten)]
    pub state: BreakerState,
}

/// Capability of a queue whose workers share breaker states and rate-limit windows (see
/// [`ExecutionQueue::limits`](crate::ExecutionQueue::limits)).
#[async_trait]
pub trait SharedLimits: Send + Sync {
    /// May a call behind breaker `key` run now? `probe_lease` bounds how long a probe may hold
    /// a half-open breaker without reporting.
    async fn breaker_acquire(
        &self,
        key: &str,
        config: &CircuitBreakerConfig,
        probe_lease: Duration,
    ) -> Result<BreakerDecision, QueueError>;

    /// Records the outcome of a call that `breaker_acquire` allowed.
    async fn breaker_record(
        &self,
        key: &str,
        config: &CircuitBreakerConfig,
        success: bool,
    ) -> Result<(), QueueError>;

    /// Every breaker that has state, by key.
    async fn breakers(&self) -> Result<Vec<BreakerInfo>, QueueError>;

    /// Forgets a breaker's state (it is closed again). `false` when it had none.
    async fn reset_breaker(&self, key: &str) -> Result<bool, QueueError>;

    /// Reserves a slot for one run of `key`, limited to `max` per `per` with slots spaced
    /// evenly (one every `per / max`, so no window of length `per` holds more than `max`):
    /// `None` to run now, or how long to wait for the reserved slot (the caller then runs
    /// without asking again).
    async fn rate_acquire(
        &self,
        key: &str,
        max: u32,
        per: Duration,
    ) -> Result<Option<Duration>, QueueError>;
}
