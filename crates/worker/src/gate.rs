//! What a node passes before its executor runs: rate limits (global and per node type) and
//! the circuit breaker of external node types. Both are shared by every worker of the backend.

use std::sync::Arc;
use std::time::Duration;

use spane_core::{
    BreakerDecision, CircuitBreakerConfig, CompiledNode, NodeError, NodeRegistry, RateLimit,
};
use spane_queue::ExecutionQueue;

/// Key of the global rate limit.
const GLOBAL: &str = "global";

/// Rate-limit waits up to this long are slept in the worker; longer ones postpone the job.
const SLEEP_AT_MOST: Duration = Duration::from_millis(20);

/// Rate limits and breakers in front of executors.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) queue: Arc<dyn ExecutionQueue>,
    pub(crate) registry: Arc<NodeRegistry>,
    pub(crate) global: Option<RateLimit>,
}

/// The breaker a running attempt holds, to report its outcome to.
pub(crate) struct BreakerTicket {
    key: String,
    config: CircuitBreakerConfig,
}

impl Gate {
    /// Reserves a slot under the global limit and the node type's limit. A short wait is
    /// slept here; a longer one is returned, and the caller postpones the job (freeing its
    /// worker slot for other node types) and runs it when the slot comes, without asking
    /// again. A backend error lets the node through (a limiter that is down must not stop the
    /// engine) and is logged.
    pub(crate) async fn reserve_rate_slot(&self, node: &CompiledNode) -> Option<Duration> {
        let limits = self.queue.limits()?;
        let per_type = self.registry.rate_limit(&node.node_type);
        let type_key = format!("type:{}", node.node_type);
        let mut wait = Duration::ZERO;
        for (key, limit) in [(GLOBAL, self.global), (type_key.as_str(), per_type)] {
            let Some(limit) = limit else { continue };
            match limits.rate_acquire(key, limit.max, limit.per).await {
                Ok(None) => {}
                Ok(Some(w)) => {
                    crate::metrics::rate_limit_wait(key, w);
                    wait = wait.max(w);
                }
                Err(e) => {
                    tracing::warn!(error = %e, key, "rate limiter unavailable; letting the node through");
                }
            }
        }
        if wait.is_zero() {
            return None;
        }
        tracing::debug!(node = %node.id, wait_ms = wait.as_millis() as u64, "rate limited");
        if wait <= SLEEP_AT_MOST {
            tokio::time::sleep(wait).await;
            return None;
        }
        Some(wait)
    }

    /// Asks the node's breaker (external node types only) whether the executor may run.
    /// `Err` is the error the attempt fails with when the breaker is open.
    pub(crate) async fn breaker(
        &self,
        node: &CompiledNode,
        probe_lease: Duration,
    ) -> Result<Option<BreakerTicket>, NodeError> {
        let (Some(limits), Some(key)) = (
            self.queue.limits(),
            self.registry.breaker_key(&node.node_type, &node.config),
        ) else {
            return Ok(None);
        };
        let config = node.settings.circuit_breaker.clone().unwrap_or_default();
        match limits.breaker_acquire(&key, &config, probe_lease).await {
            Ok(decision @ (BreakerDecision::Allow | BreakerDecision::Probe)) => {
                let state = if decision == BreakerDecision::Probe {
                    2.0
                } else {
                    0.0
                };
                crate::metrics::breaker_state(&key, state);
                Ok(Some(BreakerTicket { key, config }))
            }
            Ok(BreakerDecision::Reject { retry_in }) => {
                crate::metrics::breaker_state(&key, 1.0);
                Err(NodeError::retryable(format!(
                    "circuit breaker {key} is open (next probe in {} ms)",
                    retry_in.as_millis()
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, %key, "circuit breaker unavailable; letting the node through");
                Ok(None)
            }
        }
    }

    /// Reports an attempt's outcome to the breaker it held.
    pub(crate) async fn report(&self, ticket: Option<BreakerTicket>, success: bool) {
        let (Some(ticket), Some(limits)) = (ticket, self.queue.limits()) else {
            return;
        };
        if let Err(e) = limits
            .breaker_record(&ticket.key, &ticket.config, success)
            .await
        {
            tracing::warn!(error = %e, key = %ticket.key, "recording a breaker outcome failed");
        }
    }
}
