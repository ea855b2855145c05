//! Write-behind history: copies executions from the queue backend to the store in batches, off
//! the hot path. Any number of writers (one per engine that runs workers) share the work; a
//! batch a writer did not finish is taken over by another after `reclaim_idle`, so what was
//! committed reaches the store even when a worker process is killed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use spane_core::{ExecutionId, ExecutionRecord};
use spane_queue::backend::{HistoryBatch, HistoryEntry};
use spane_queue::{ExecutionQueue, QueueError};
use spane_store::{ExecutionStore, StoreError};
use tokio_util::sync::CancellationToken;

/// Settings of a [`HistoryWriter`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HistoryConfig {
    /// Most feed entries (transitions) written in one batch (default 2,048).
    pub batch: usize,
    /// How long a batch that is not full is held to gather more transitions before it is
    /// written (default 100 ms): an execution that changes several times within it is read
    /// and written once, which is what lets history keep up with a busy engine. History lags
    /// the live state by about this much; [`flush_and_stop`](HistoryWriter::flush_and_stop)
    /// does not wait for it. Zero writes each read at once.
    pub linger: Duration,
    /// How often the state of an execution that is still running is copied (default 1 s): its
    /// transitions are held until the oldest is this old and then written together. One that
    /// comes to rest (completed, failed, cancelled, paused) is written within
    /// [`linger`](Self::linger). Stopping writes everything held.
    pub running_interval: Duration,
    /// Wait between reads when there was nothing to write (default 100 ms).
    pub idle_wait: Duration,
    /// How long a batch may stay unacknowledged before another writer takes it over
    /// (default 30 s).
    pub reclaim_idle: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            batch: 2048,
            linger: Duration::from_millis(100),
            running_interval: Duration::from_secs(1),
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

    /// Sets [`linger`](Self::linger).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets [`running_interval`](Self::running_interval).
    pub fn running_interval(mut self, running_interval: Duration) -> Self {
        self.running_interval = running_interval;
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
    let mut gathered = Gathered::default();
    loop {
        let want = config.batch.saturating_sub(gathered.fresh).max(1);
        let read = match feed
            .history_batch(&consumer, want, config.idle_wait, config.reclaim_idle)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reading the history feed failed, retrying");
                if stop.is_cancelled() && gathered.entries.is_empty() {
                    return;
                }
                if !stop.is_cancelled() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                // Stopping: write what was gathered; the rest stays pending.
                HistoryBatch::default()
            }
        };
        backoff = BACKOFF_MIN;
        gathered.add(read, now_ms());
        if gathered.entries.is_empty() {
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
        let deadline = *gathered
            .deadline
            .get_or_insert_with(|| tokio::time::Instant::now() + config.linger);
        if gathered.fresh < config.batch
            && !stop.is_cancelled()
            && tokio::time::Instant::now() < deadline
        {
            // Not full and young: gather more, so that an execution that keeps changing is
            // written once for all its changes.
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            continue;
        }
        let entries = std::mem::take(&mut gathered).entries;
        let oldest = entries
            .iter()
            .filter_map(|e| e.appended_ms)
            .min()
            .unwrap_or_else(now_ms);
        record_lag(oldest);
        let plan = Plan::new(
            entries,
            now_ms(),
            config.running_interval,
            stop.is_cancelled(),
        );
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(HISTORY_PENDING).set(plan.write.len() as f64);
        // Running executions wait for the next round (their entries stay pending meanwhile).
        gathered.carry(plan.carry);
        if !plan.write.is_empty()
            && !write_batch(queue.as_ref(), store.as_ref(), &plan.write, oldest, &stop).await
        {
            // Left pending: this or another writer takes the batch over after `reclaim_idle`.
            if stop.is_cancelled() {
                return;
            }
            continue;
        }
        if plan.ack.is_empty() {
            continue;
        }
        if let Err(e) = feed.history_ack(&plan.ack).await {
            // Not acknowledged: written again later, which the idempotent upserts allow.
            tracing::warn!(error = %e, "acknowledging history failed");
        }
    }
}

/// Feed entries gathered for one write.
#[derive(Default)]
struct Gathered {
    entries: Vec<HistoryEntry>,
    ids: HashSet<String>,
    /// Entries read since the last write: they fill the batch (carried ones do not).
    fresh: usize,
    /// When the batch is written even if it is not full (set by its first entry).
    deadline: Option<tokio::time::Instant>,
}

impl Gathered {
    /// Adds what was read at `now_ms` (an entry handed out again is kept once).
    fn add(&mut self, read: HistoryBatch, now_ms: u64) {
        for mut entry in read.entries {
            if self.ids.insert(entry.id.clone()) {
                entry.appended_ms.get_or_insert(now_ms);
                self.entries.push(entry);
                self.fresh += 1;
            }
        }
    }

    /// Keeps entries for the next round.
    fn carry(&mut self, entries: Vec<HistoryEntry>) {
        for entry in entries {
            if self.ids.insert(entry.id.clone()) {
                self.entries.push(entry);
            }
        }
    }
}

/// What one round of the writer does with the entries it gathered.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Executions to copy now.
    write: Vec<ExecutionId>,
    /// Entries to acknowledge once they are written: every execution they touched is copied.
    ack: Vec<String>,
    /// Entries kept for a later round: they touched an execution that is still running and
    /// changed less than `running_interval` ago.
    carry: Vec<HistoryEntry>,
}

impl Plan {
    /// An execution is copied now when an entry brought it to rest, when its oldest unwritten
    /// transition is `running_interval` old, or when the writer is stopping; the others wait,
    /// so that a running execution is copied once for many of its transitions.
    fn new(
        entries: Vec<HistoryEntry>,
        now_ms: u64,
        running_interval: Duration,
        stopping: bool,
    ) -> Self {
        let interval = u64::try_from(running_interval.as_millis()).unwrap_or(u64::MAX);
        let mut oldest: HashMap<ExecutionId, u64> = HashMap::new();
        let mut settled: HashSet<ExecutionId> = HashSet::new();
        let mut order = Vec::new();
        for entry in &entries {
            let at = entry.appended_ms.unwrap_or(now_ms);
            for id in &entry.executions {
                oldest
                    .entry(*id)
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert_with(|| {
                        order.push(*id);
                        at
                    });
            }
            settled.extend(entry.settled.iter().copied());
        }
        let due = |id: &ExecutionId| {
            stopping || settled.contains(id) || now_ms.saturating_sub(oldest[id]) >= interval
        };
        let write: Vec<ExecutionId> = order.into_iter().filter(|id| due(id)).collect();
        let mut plan = Plan {
            write,
            ..Plan::default()
        };
        for entry in entries {
            if entry.executions.iter().all(&due) {
                plan.ack.push(entry.id);
            } else {
                plan.carry.push(entry);
            }
        }
        plan
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
    ids: &[ExecutionId],
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
    ids: &[ExecutionId],
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
    id: ExecutionId,
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
    id: ExecutionId,
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

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(1);

    fn entry(
        id: &str,
        at: u64,
        executions: &[ExecutionId],
        settled: &[ExecutionId],
    ) -> HistoryEntry {
        let mut entry = HistoryEntry::new(id, executions.to_vec());
        entry.appended_ms = Some(at);
        entry.settled = settled.to_vec();
        entry
    }

    #[test]
    fn a_settled_execution_is_written_at_once_and_a_young_running_one_waits() {
        let (done, running) = (ExecutionId::new(), ExecutionId::new());
        let plan = Plan::new(
            vec![
                entry("1-0", 10_000, &[done], &[]),
                entry("2-0", 10_100, &[running], &[]),
                entry("3-0", 10_200, &[done], &[done]),
            ],
            10_300,
            INTERVAL,
            false,
        );
        assert_eq!(plan.write, vec![done]);
        assert_eq!(plan.ack, vec!["1-0".to_owned(), "3-0".to_owned()]);
        assert_eq!(plan.carry.len(), 1);
        assert_eq!(plan.carry[0].id, "2-0");
    }

    #[test]
    fn a_running_execution_is_written_once_its_oldest_change_is_an_interval_old() {
        let running = ExecutionId::new();
        let entries = vec![
            entry("1-0", 10_000, &[running], &[]),
            entry("2-0", 10_900, &[running], &[]),
        ];
        let early = Plan::new(entries.clone(), 10_999, INTERVAL, false);
        assert!(early.write.is_empty() && early.ack.is_empty());
        let due = Plan::new(entries, 11_000, INTERVAL, false);
        assert_eq!(due.write, vec![running]);
        assert_eq!(due.ack, vec!["1-0".to_owned(), "2-0".to_owned()]);
        assert!(due.carry.is_empty());
    }

    #[test]
    fn an_entry_is_acknowledged_only_when_every_execution_it_touched_is_written() {
        let (done, running) = (ExecutionId::new(), ExecutionId::new());
        let plan = Plan::new(
            vec![entry("1-0", 10_000, &[done, running], &[done])],
            10_001,
            INTERVAL,
            false,
        );
        assert_eq!(plan.write, vec![done]);
        assert!(plan.ack.is_empty());
        assert_eq!(plan.carry.len(), 1);
    }

    #[test]
    fn stopping_writes_everything_held() {
        let running = ExecutionId::new();
        let plan = Plan::new(
            vec![entry("1-0", 10_000, &[running], &[])],
            10_001,
            INTERVAL,
            true,
        );
        assert_eq!(plan.write, vec![running]);
        assert_eq!(plan.ack, vec!["1-0".to_owned()]);
    }

    #[test]
    fn an_entry_that_touched_nothing_is_acknowledged() {
        let plan = Plan::new(
            vec![entry("1-0", 10_000, &[], &[])],
            10_001,
            INTERVAL,
            false,
        );
        assert!(plan.write.is_empty());
        assert_eq!(plan.ack, vec!["1-0".to_owned()]);
    }

    #[test]
    fn an_entry_handed_out_twice_is_gathered_once() {
        let id = ExecutionId::new();
        let mut gathered = Gathered::default();
        let batch = HistoryBatch {
            entries: vec![HistoryEntry::new("1-0", vec![id])],
        };
        gathered.add(batch.clone(), 5);
        gathered.add(batch, 6);
        assert_eq!(gathered.entries.len(), 1);
        assert_eq!(gathered.entries[0].appended_ms, Some(5));
    }
}
