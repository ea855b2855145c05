//! Idempotency keys of execution starts: the same key starts one execution, however often and
//! from however many processes it is sent.

use async_trait::async_trait;
use spane_core::ExecutionId;

use crate::error::QueueError;

/// Capability of a queue that keeps idempotency keys of execution starts (see
/// [`ExecutionQueue::idempotency_keys`](crate::ExecutionQueue::idempotency_keys)).
///
/// The protocol is two steps, each atomic on its own, so that no step touches two executions:
///
/// 1. [`reserve`](Self::reserve) maps the key to an execution id, unless it maps to one
///    already (`SET NX` on Redis): exactly one caller wins the key.
/// 2. Every caller then starts the execution the key maps to with
///    [`StartExecution::idempotency_key`](crate::backend::StartExecution::idempotency_key) set: a start
///    of an existing execution made with the same key is accepted without change, so the
///    winner and the callers that lost the key (including one that takes over after the
///    winner died between the two steps) create the execution once.
///
/// A key is kept as long as the backend keeps a finished execution (its retention); after
/// that the same key starts a new execution.
#[async_trait]
pub trait IdempotencyKeys: Send + Sync {
    /// Maps `key` to `execution` unless it maps to an execution already. Returns `None` when
    /// this call reserved the key, and the execution it maps to otherwise (which may be
    /// `execution` itself, when the same request is sent again).
    async fn reserve(
        &self,
        key: &str,
        execution: ExecutionId,
    ) -> Result<Option<ExecutionId>, QueueError>;

    /// Forgets `key` if it still maps to `execution` (the start it was reserved for was
    /// refused), so that a later request with the key may start an execution.
    async fn release(&self, key: &str, execution: ExecutionId) -> Result<(), QueueError>;
}
