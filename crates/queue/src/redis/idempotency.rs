//! Idempotency keys of execution starts: `P:{0}:ik:<key>` holds the execution id the key maps
//! to, for the retention of finished executions. A key is reserved with `SET NX` on its own;
//! the start script then accepts a start of an existing execution made with the same key (the
//! key is the start's request nonce), so no script touches two executions.

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use spane_core::ExecutionId;

use super::{RedisQueue, unavailable};
use crate::error::QueueError;
use crate::idempotency::IdempotencyKeys;

impl RedisQueue {
    fn idempotency_key(&self, key: &str) -> String {
        format!("{}ik:{key}", self.inner.keys.shard)
    }
}

/// The request nonce of a start sent with idempotency key `key` (a fresh one is a ULID, which
/// never starts with `ik:`).
pub(super) fn nonce(key: &str) -> String {
    format!("ik:{key}")
}

#[async_trait]
impl IdempotencyKeys for RedisQueue {
    async fn reserve(
        &self,
        key: &str,
        execution: ExecutionId,
    ) -> Result<Option<ExecutionId>, QueueError> {
        self.trip();
        // SET NX GET: one atomic step that either takes the key or reads who has it.
        let previous: Option<String> = self
            .inner
            .client
            .set(
                self.idempotency_key(key),
                execution.to_string(),
                Some(Expiration::PX(
                    i64::try_from(self.inner.config.retention.as_millis())
                        .unwrap_or(i64::MAX)
                        .max(1),
                )),
                Some(SetOptions::NX),
                true,
            )
            .await
            .map_err(unavailable)?;
        previous
            .map(|id| {
                id.parse().map_err(|_| QueueError::Backend {
                    reason: format!("idempotency key {key:?} maps to {id:?}, not an execution id"),
                    source: None,
                })
            })
            .transpose()
    }

    async fn release(&self, key: &str, execution: ExecutionId) -> Result<(), QueueError> {
        self.trip();
        let _: i64 = self
            .inner
            .scripts
            .unreserve
            .evalsha_with_reload(
                &self.inner.client,
                vec![self.idempotency_key(key)],
                vec![execution.to_string()],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
