//! Write-behind history: copies executions from the queue backend to the store in batches, off
//! the hot path. Any number of writers (one per engine that runs workers) share the work; a
//! batch a writer did not finish is taken over by another after `reclaim_idle`, so what was
//! committed reaches the store even when a worker process is killed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use spane_core::ExecutionRecord;
use spane_queue::{ExecutionQueue, QueueError};
use spane_store::{ExecutionStore, StoreError};
use tokio_util::sync::CancellationToken;

/// Settings of a [`HistoryWriter`].
#[derive(Debug, Clone)]
#[non_exhaustive]
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

impl HistoryConfig {
    /// Sets [`batch`](Self::batch).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// Sets [`idle_wait`](Self::idle_wait).
    pub fn idle_wait(mut self, idle_wait: Duration) -> Self {
        self.idle_wait = idle_wait;
        self
    }

    /// Sets [`reclaim_idle`](Self::reclaim_idle).
    pub fn reclaim_idle(mut self, reclaim_idle: Duration) -> Self {
        self.reclaim_idle = reclaim_idle;
        self
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

/// Gauge: seconds between the oldest transition the writer has read but not yet written and
/// now; 0 when it has caught up (no labels).
pub const HISTORY_LAG: &str = "spane_history_lag_seconds";
/// Gauge: executions the writer has read from the feed and not yet written (no labels).
pub const HISTORY_PENDING: &str = "spane_history_pending_executions";
/// Counter: executions written to the store by the writer (no labels).
pub const HISTORY_WRITTEN: &str = "spane_history_written_total";

/// Executions read from the queue at once.
const READ_CONCURRENCY: usize = 32;
/// First and longest wait between two attempts at a batch.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Attempts at a batch once the writer is told to stop; the batch then stays pending for
/// another writer.
const ATTEMPTS_WHEN_STOPPING: u32 = 3;

/// When the feed entry was appended, in ms since the epoch, when its id tells (a Redis stream
/// id is `<ms>-<seq>`).
fn entry_time_ms(entry: &str) -> Option<u64> {
    entry.split_once('-').and_then(|(ms, _)| ms.parse().ok())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sets [`HISTORY_LAG`] to the age of the oldest transition not yet written (appended at
/// `oldest_ms`; when the feed's entry ids carry no time, when the batch was read).
fn record_lag(oldest_ms: u64) {
    #[allow(clippy::cast_precision_loss)]
    let lag = now_ms().saturating_sub(oldest_ms) as f64 / 1000.0;
    metrics::gauge!(HISTORY_LAG).set(lag);
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
    let mut backoff = BACKOFF_MIN;
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
        backoff = BACKOFF_MIN;
        if batch.entries.is_empty() {
            metrics::gauge!(HISTORY_LAG).set(0.0);
            metrics::gauge!(HISTORY_PENDING).set(0.0);
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
        let read_at = now_ms();
        let oldest = batch
            .entries
            .iter()
            .filter_map(|e| entry_time_ms(e))
            .min()
            .unwrap_or(read_at)
            .min(read_at);
        record_lag(oldest);
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(HISTORY_PENDING).set(batch.executions.len() as f64);
        if !write_batch(
            queue.as_ref(),
            store.as_ref(),
            &batch.executions,
            oldest,
            &stop,
        )
        .await
        {
            // Left pending: this or another writer takes the batch over after `reclaim_idle`.
            continue;
        }
        if let Err(e) = feed.history_ack(&batch.entries).await {
            // Not acknowledged: written again later, which the idempotent upserts allow.
            tracing::warn!(error = %e, "acknowledging history failed");
        }
    }
}

/// Why an attempt at a batch did not write it.
enum Failure {
    /// The queue or the store is unavailable: the whole batch is tried again after a backoff.
    Transient(String),
    /// Something retrying the same way will not fix.
    Permanent(String),
}

/// Copies the executions `ids` to the store, in one batch write: while the queue or the store is
/// unavailable the batch is tried again as a whole (one backoff for the batch, re-reading the
/// executions so that the latest state is written), until it is written or the writer is told
/// to stop. A batch the store refuses for good is written one execution at a time so that the
/// others land. `false` when some execution could not be written (the batch stays pending).
async fn write_batch(
    queue: &dyn ExecutionQueue,
    store: &dyn ExecutionStore,
    ids: &[spane_core::ExecutionId],
    oldest_ms: u64,
    stop: &CancellationToken,
) -> bool {
    let mut backoff = BACKOFF_MIN;
    let mut attempts_left_when_stopping = ATTEMPTS_WHEN_STOPPING;
    loop {
        let failure = match read_records(queue, ids).await {
            Ok(records) => match store.save_executions(&records).await {
                Ok(()) => {
                    metrics::counter!(HISTORY_WRITTEN).increment(records.len() as u64);
                    return true;
                }
                Err(StoreError::Unavailable { reason, .. }) => Failure::Transient(reason),
                Err(e) => Failure::Permanent(e.to_string()),
            },
            Err(failure) => failure,
        };
        match failure {
            Failure::Permanent(reason) => {
                tracing::warn!(%reason, executions = ids.len(), "writing a history batch failed; writing its executions one by one");
                let mut written = true;
                for id in ids {
                    written &= write_one(queue, store, *id).await;
                }
                return written;
            }
            Failure::Transient(reason) => {
                tracing::warn!(%reason, executions = ids.len(), retry_in = ?backoff, "writing history failed, retrying the batch");
            }
        }
        if stop.is_cancelled() {
            attempts_left_when_stopping -= 1;
            if attempts_left_when_stopping == 0 {
                tracing::error!(
                    executions = ids.len(),
                    "history not written before stopping; it stays pending for another writer"
                );
                return false;
            }
        }
        record_lag(oldest_ms);
        tokio::select! {
            // Told to stop: try again at once, a few times, rather than after the backoff.
            _ = stop.cancelled(), if !stop.is_cancelled() => {}
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The executions `ids` as history holds them (claim-check references resolved), read a few at
/// a time; executions gone from the queue are skipped (nothing left to copy).
async fn read_records(
    queue: &dyn ExecutionQueue,
    ids: &[spane_core::ExecutionId],
) -> Result<Vec<ExecutionRecord>, Failure> {
    let reads = futures::stream::iter(ids.iter().copied())
        .map(|id| read_record(queue, id))
        .buffered(READ_CONCURRENCY);
    futures::pin_mut!(reads);
    let mut records = Vec::with_capacity(ids.len());
    while let Some(read) = reads.next().await {
        if let Some(record) = read? {
            records.push(record);
        }
    }
    Ok(records)
}

async fn read_record(
    queue: &dyn ExecutionQueue,
    id: spane_core::ExecutionId,
) -> Result<Option<ExecutionRecord>, Failure> {
    let mut record = match queue.execution(id).await {
        Ok(Some(r)) => r,
        // Expired from the queue before it was written: nothing left to copy.
        Ok(None) => return Ok(None),
        Err(QueueError::Unavailable { reason, .. }) => return Err(Failure::Transient(reason)),
        Err(e) => {
            return Err(Failure::Permanent(format!(
                "cannot read execution {id} for history: {e}"
            )));
        }
    };
    // History holds the data, not the claim-check references of the hot state.
    if let Some(payloads) = queue.payloads() {
        spane_queue::backend::resolve_record(payloads, &mut record)
            .await
            .map_err(|e| Failure::Transient(format!("resolving payloads for history: {e}")))?;
    }
    Ok(Some(record))
}

/// Copies one execution, after its batch was refused for good: one more attempt, no retries
/// (the batch write already retried what a retry can fix). `false` when it could not be
/// written.
async fn write_one(
    queue: &dyn ExecutionQueue,
    store: &dyn ExecutionStore,
    id: spane_core::ExecutionId,
) -> bool {
    let record = match read_record(queue, id).await {
        Ok(Some(record)) => record,
        Ok(None) => return true,
        Err(Failure::Transient(reason) | Failure::Permanent(reason)) => {
            tracing::error!(%reason, execution = %id, "cannot read the execution for history; it stays pending");
            return false;
        }
    };
    match store.save_execution(&record).await {
        Ok(()) => {
            metrics::counter!(HISTORY_WRITTEN).increment(1);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, execution = %id, "writing history failed; it stays pending");
            false
        }
    }
}
