//! Idempotent webhook deliveries: a repeated delivery with the same key returns the executions
//! the first one started.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use spane_core::ExecutionId;

use crate::error::TriggerError;

/// How long a delivery may stay "in progress" before its key is free again (a process that
/// died while starting executions does not block the key for the whole window).
pub const IN_PROGRESS_TTL: Duration = Duration::from_secs(60);

/// What the idempotency store knows about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// First delivery within the window: the caller owns the key and must
    /// [`finish`](IdempotencyStore::finish) or [`abandon`](IdempotencyStore::abandon) it.
    New,
    /// Delivered before, within the window: these executions were started.
    Done(Vec<ExecutionId>),
    /// Another delivery with this key is starting its executions right now.
    InProgress,
}

/// Keeps idempotency keys for a window. `begin` must be atomic across every process sharing
/// the store.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + fmt::Debug + 'static {
    /// Takes `key` if it is free.
    async fn begin(&self, key: &str, now: DateTime<Utc>) -> Result<Delivery, TriggerError>;
    /// Records the executions started for `key`, kept for `window`.
    async fn finish(
        &self,
        key: &str,
        executions: &[ExecutionId],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), TriggerError>;
    /// Frees `key` after a delivery that started nothing (it was refused or failed).
    async fn abandon(&self, key: &str) -> Result<(), TriggerError>;
}

#[derive(Debug)]
enum Entry {
    Pending,
    Done(Vec<ExecutionId>),
}

/// Idempotency keys in process memory, expired by the clock passed in.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    keys: Mutex<HashMap<String, (Entry, DateTime<Utc>)>>,
}

impl MemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(&self, key: &str, now: DateTime<Utc>) -> Result<Delivery, TriggerError> {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.retain(|_, (_, expires)| *expires > now);
        match keys.get(key) {
            Some((Entry::Pending, _)) => Ok(Delivery::InProgress),
            Some((Entry::Done(ids), _)) => Ok(Delivery::Done(ids.clone())),
            None => {
                keys.insert(
                    key.to_owned(),
                    (Entry::Pending, after(now, IN_PROGRESS_TTL)),
                );
                Ok(Delivery::New)
            }
        }
    }

    async fn finish(
        &self,
        key: &str,
        executions: &[ExecutionId],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), TriggerError> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                key.to_owned(),
                (Entry::Done(executions.to_vec()), after(now, window)),
            );
        Ok(())
    }

    async fn abandon(&self, key: &str) -> Result<(), TriggerError> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        Ok(())
    }
}
