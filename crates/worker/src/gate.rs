//! What a node passes before its executor runs: rate limits (global and per node type) and
//! the circuit breaker of external node types. Both are shared by every worker of the backend.

use std::sync::Arc;
use std::time::Duration;

use spane_core::{
    BreakerDecision, CircuitBreakerConfig, CompiledNode, NodeError, NodeRegistry, RateLimit,
};
use spane_queue::ExecutionQueue;

/// Key of the global rate limit's window.
const GLOBAL: &str = "global";

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
    /// Waits until the global limit and the node type's limit have room. A backend error lets
    /// the node through (a limiter that is down must not stop the engine) and is logged.
    pub(crate) async fn wait_for_rate_limits(&self, node: &CompiledNode) {
        let Some(limits) = self.queue.limits() else {
            return;
        };
        let per_type = self.registry.rate_limit(&node.node_type);
        let type_key = format!("type:{}", node.node_type);
        for (key, limit) in [(GLOBAL, self.global), (type_key.as_str(), per_type)] {
            let Some(limit) = limit else { continue };
            loop {
                match limits.rate_acquire(key, limit.max, limit.per).await {
                    Ok(None) => break,
                    Ok(Some(wait)) => {
                        metrics_wait(key, wait);
                        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, key, "rate limiter unavailable; letting the node through");
                        break;
                    }
                }
            }
        }
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
            Ok(BreakerDecision::Allow | BreakerDecision::Probe) => {
                Ok(Some(BreakerTicket { key, config }))
            }
            Ok(BreakerDecision::Reject { retry_in }) => Err(NodeError::retryable(format!(
                "circuit breaker {key} is open (next probe in {} ms)",
                retry_in.as_millis()
            ))),
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

fn metrics_wait(key: &str, wait: Duration) {
    tracing::debug!(key, wait_ms = wait.as_millis() as u64, "rate limited");
}
