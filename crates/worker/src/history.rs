//! Write-behind history: copies executions from the queue backend to the store in batches, off
//! the hot path. Any number of writers (one per engine that runs workers) share the work; a
//! batch a writer did not finish is taken over by another after `reclaim_idle`, so what was
//! committed reaches the store even when a worker process is killed.

use std::sync::Arc;
use std::time::Duration;

use spane_queue::{ExecutionQueue, QueueError};
use spane_store::{ExecutionStore, StoreError};
use tokio_util::sync::CancellationToken;

/// Settings of a [`HistoryWriter`].
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Entries read per batch (default 256).
    pub batch: usize,
    /// Wait between reads when there was nothing to write (default 100 ms).
    pub idle_wait: Duration,
    /// How long a batch may stay unacknowledged before another writer takes it over
    /// (default 30 s).
    pub reclaim_idle: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            idle_wait: Duration::from_millis(100),
            reclaim_idle: Duration::from_secs(30),
        }
    }
}

/// A running write-behind writer.
#[derive(Debug)]
pub struct HistoryWriter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HistoryWriter {
    /// Starts a writer when `queue` offers a history feed; `None` otherwise.
    pub fn start(
        queue: Arc<dyn ExecutionQueue>,
        store: Arc<dyn ExecutionStore>,
        config: HistoryConfig,
    ) -> Option<Self> {
        queue.history_feed()?;
        let stop = CancellationToken::new();
        let consumer = format!("history-{}", ulid::Ulid::new());
        let task = tokio::spawn(run(queue, store, config, consumer, stop.clone()));
        Some(Self { stop, task })
    }

    /// Writes what is pending, then stops.
    pub async fn flush_and_stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "history writer ended abnormally");
        }
    }
}

async fn run(
    queue: Arc<dyn ExecutionQueue>,
    store: Arc<dyn ExecutionStore>,
    config: HistoryConfig,
    consumer: String,
    stop: CancellationToken,
) {
    let Some(feed) = queue.history_feed() else {
        return;
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let batch = match feed
            .history_batch(
                &consumer,
                config.batch,
                config.idle_wait,
                config.reclaim_idle,
            )
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reading the history feed failed, retrying");
                if stop.is_cancelled() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        if batch.entries.is_empty() {
            // Stopping: everything read so far is written.
            if stop.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(config.idle_wait) => {}
            }
            continue;
        }
        let mut written = true;
        for id in &batch.executions {
            written &= write_one(queue.as_ref(), store.as_ref(), *id).await;
        }
        if !written {
            // Left pending: this or another writer takes the batch over after `reclaim_idle`.
            continue;
        }
        if let Err(e) = feed.history_ack(&batch.entries).await {
            // Not acknowledged: written again later, which the idempotent upserts allow.
            tracing::warn!(error = %e, "acknowledging history failed");
        }
    }
}

/// Copies one execution, retrying while the store or the queue is unavailable. `false` when it
/// could not be written.
async fn write_one(
    queue: &dyn ExecutionQueue,
    store: &dyn ExecutionStore,
    id: spane_core::ExecutionId,
) -> bool {
    let mut backoff = Duration::from_millis(50);
    for _ in 0..8 {
        let mut record = match queue.execution(id).await {
            Ok(Some(r)) => r,
            // Expired from the queue before it was written: nothing left to copy.
            Ok(None) => return true,
            Err(QueueError::Unavailable { reason }) => {
                tracing::warn!(%reason, "reading an execution for history failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, execution = %id, "cannot read the execution for history");
                return false;
            }
        };
        // History holds the data, not the claim-check references of the hot state.
        if let Some(payloads) = queue.payloads()
            && let Err(e) = spane_queue::resolve_record(payloads, &mut record).await
        {
            tracing::warn!(error = %e, "resolving payloads for history failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            continue;
        }
        match store.save_execution(&record).await {
            Ok(()) => return true,
            Err(StoreError::Unavailable { reason }) => {
                tracing::warn!(%reason, "writing history failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, execution = %id, "writing history failed");
                return false;
            }
        }
    }
    tracing::error!(execution = %id, "history not written after repeated failures; it stays pending");
    false
}
