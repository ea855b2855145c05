//! Metrics of the worker runtime, recorded through the [`metrics`] facade.
//!
//! The library records; it never installs a recorder. Without one (the default), every call
//! below is a no-op. An application that wants the numbers installs a recorder once at start,
//! for example `metrics-exporter-prometheus` (see `examples/metrics`), and may call
//! [`describe`] afterwards to attach units and help texts.
//!
//! | Name | Kind | Labels | What |
//! |---|---|---|---|
//! | [`EXECUTIONS_STARTED`] `spane_executions_started_total` | counter | — | Executions started by `WorkflowEngine::enqueue_workflow` in this process. |
//! | [`EXECUTIONS_FINISHED`] `spane_executions_finished_total` | counter | `status` | Executions ended by a node commit of this process, by the final status the commit reports (`completed`, `failed`). Counted once per execution, by the worker whose commit ended it; a cancel ends an execution without a commit and is not counted here; an execution revived from the dead-letter queue counts again when it ends again. |
//! | [`NODE_EXECUTIONS`] `spane_node_executions_total` | counter | `node_type`, `outcome` | Commits of node attempts: `completed`, `failed` (for good), `continued` (failed with `continueOnFail`), `retry` (another attempt scheduled, including `retry_after`), `delayed` (a delay node starts waiting), `stale` (refused: the lease was lost, another worker's result stands; each is also logged at `warn` with its `execution_id`, `node_id` and `attempt`). |
//! | [`NODE_DURATION`] `spane_node_duration_seconds` | histogram | `node_type` | Wall time of one executor call (timed-out and panicking attempts included; delay nodes run no executor). |
//! | [`NODE_RETRIES`] `spane_node_retries_total` | counter | `node_type` | Retries scheduled (applied `retry` commits, `retry_after` included). |
//! | [`QUEUE_WAIT`] `spane_queue_wait_seconds` | histogram | `node_type` | Time from a node becoming claimable (ready, or due after a delay or retry backoff) to a worker starting it. |
//! | [`DLQ_SIZE`] `spane_dlq_size` | gauge | — | Items in the dead-letter queue, read by each running worker manager every [`DLQ_REFRESH`] when the backend keeps one. |
//! | [`BREAKER_STATE`] `spane_breaker_state` | gauge | `key` | What this worker last saw of a circuit breaker: 0 closed, 1 open (an attempt was rejected), 2 half-open (a probe was let through). |
//! | [`RATE_LIMIT_WAITS`] `spane_rate_limit_waits_total` | counter | `key` | Nodes that had to wait for a rate-limit slot (`global` or `type:<node type>`). |
//! | [`RATE_LIMIT_WAIT`] `spane_rate_limit_wait_seconds` | histogram | `key` | How long they waited for their slot. |
//! | [`HISTORY_LAG`](crate::HISTORY_LAG) `spane_history_lag_seconds` | gauge | — | Write-behind history: age of the oldest transition not yet written to the store (0 when caught up). |
//! | [`HISTORY_PENDING`](crate::HISTORY_PENDING) `spane_history_pending_executions` | gauge | — | Executions in the batch the history writer is working on. |
//! | [`HISTORY_WRITTEN`](crate::HISTORY_WRITTEN) `spane_history_written_total` | counter | — | Execution records written to the store by the history writer. |
//!
//! `node_type` is the node's type in the definition (`delay` for delay nodes), or `unknown` when
//! the pinned definition could not be loaded.
//!
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use metrics::{Key, Label, Level, Metadata};
use spane_core::ExecutionStatus;
use spane_queue::backend::{CommitOutcome, NodeCommit};

/// Counter: executions started (no labels).
pub const EXECUTIONS_STARTED: &str = "spane_executions_started_total";
/// Counter: executions finished, label `status`.
pub const EXECUTIONS_FINISHED: &str = "spane_executions_finished_total";
/// Counter: node attempts by outcome, labels `node_type` and `outcome`.
pub const NODE_EXECUTIONS: &str = "spane_node_executions_total";
/// Histogram: executor wall time in seconds, label `node_type`.
pub const NODE_DURATION: &str = "spane_node_duration_seconds";
/// Counter: retries scheduled, label `node_type`.
pub const NODE_RETRIES: &str = "spane_node_retries_total";
/// Histogram: seconds from a node becoming claimable to a worker starting it, label `node_type`.
pub const QUEUE_WAIT: &str = "spane_queue_wait_seconds";
/// Gauge: items in the dead-letter queue (no labels).
pub const DLQ_SIZE: &str = "spane_dlq_size";

/// Gauge: circuit breaker state seen by this worker (0 closed, 1 open, 2 half-open), label `key`.
pub const BREAKER_STATE: &str = "spane_breaker_state";
/// Counter: nodes that waited for a rate-limit slot, label `key`.
pub const RATE_LIMIT_WAITS: &str = "spane_rate_limit_waits_total";
/// Histogram: seconds waited for a rate-limit slot, label `key`.
pub const RATE_LIMIT_WAIT: &str = "spane_rate_limit_wait_seconds";

/// How often a worker manager reads the dead-letter queue's size for [`DLQ_SIZE`].
pub const DLQ_REFRESH: Duration = Duration::from_secs(5);

/// The `node_type` label when the node's definition could not be loaded.
pub(crate) const UNKNOWN_NODE_TYPE: &str = "unknown";

/// Attaches units and help texts to the metrics above in the installed recorder. Call it after
/// installing the recorder; harmless without one.
pub fn describe() {
    metrics::describe_counter!(EXECUTIONS_STARTED, "Executions started.");
    metrics::describe_counter!(EXECUTIONS_FINISHED, "Executions finished, by final status.");
    metrics::describe_counter!(
        NODE_EXECUTIONS,
        "Node attempts committed, by node type and outcome."
    );
    metrics::describe_histogram!(
        NODE_DURATION,
        metrics::Unit::Seconds,
        "Wall time of one executor call, by node type."
    );
    metrics::describe_counter!(NODE_RETRIES, "Node retries scheduled, by node type.");
    metrics::describe_gauge!(DLQ_SIZE, "Items in the dead-letter queue.");
    metrics::describe_histogram!(
        QUEUE_WAIT,
        metrics::Unit::Seconds,
        "Time from a node becoming claimable to a worker starting it."
    );
    metrics::describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state last seen: 0 closed, 1 open, 2 half-open."
    );
    metrics::describe_counter!(RATE_LIMIT_WAITS, "Nodes that waited for a rate-limit slot.");
    metrics::describe_gauge!(
        crate::HISTORY_LAG,
        metrics::Unit::Seconds,
        "Age of the oldest transition the history writer has not written yet."
    );
    metrics::describe_gauge!(
        crate::HISTORY_PENDING,
        "Executions in the history writer's current batch."
    );
    metrics::describe_counter!(
        crate::HISTORY_WRITTEN,
        "Execution records written to the store by the history writer."
    );
    metrics::describe_histogram!(
        RATE_LIMIT_WAIT,
        metrics::Unit::Seconds,
        "Time waited for a rate-limit slot."
    );
}

/// Counts one started execution ([`EXECUTIONS_STARTED`]). The engine calls it.
pub fn execution_started() {
    metrics::counter!(EXECUTIONS_STARTED).increment(1);
}

/// Counts one finished execution ([`EXECUTIONS_FINISHED`]).
pub(crate) fn execution_finished(status: ExecutionStatus) {
    metrics::counter!(EXECUTIONS_FINISHED, "status" => status.as_str()).increment(1);
}

/// What the `metrics` macros would attach to the metrics recorded here.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The keys of the per-node metrics of one node type. Recorded several times per node, they
/// are built once per thread and node type instead of once per call (a key with a label
/// costs allocations); the recorder is still looked up on every call, so a recorder installed
/// later (or a thread-local one) sees every record, exactly as with the macros.
struct TypeKeys {
    duration: Key,
    queue_wait: Key,
    retries: Key,
    /// [`NODE_EXECUTIONS`] by outcome.
    executions: Vec<(&'static str, Key)>,
}

impl TypeKeys {
    fn new(node_type: &str) -> Self {
        Self {
            duration: type_key(NODE_DURATION, node_type),
            queue_wait: type_key(QUEUE_WAIT, node_type),
            retries: type_key(NODE_RETRIES, node_type),
            executions: Vec::new(),
        }
    }

    fn execution(&mut self, node_type: &str, outcome: &'static str) -> &Key {
        let i = match self.executions.iter().position(|(o, _)| *o == outcome) {
            Some(i) => i,
            None => {
                let key = Key::from_parts(
                    NODE_EXECUTIONS,
                    vec![
                        Label::new("node_type", node_type.to_owned()),
                        Label::new("outcome", outcome),
                    ],
                );
                self.executions.push((outcome, key));
                self.executions.len() - 1
            }
        };
        &self.executions[i].1
    }
}

fn type_key(name: &'static str, node_type: &str) -> Key {
    Key::from_parts(name, vec![Label::new("node_type", node_type.to_owned())])
}

thread_local! {
    /// By node type (a handful per engine).
    static TYPE_KEYS: RefCell<HashMap<String, TypeKeys>> = RefCell::new(HashMap::new());
}

/// Runs `f` with the keys of `node_type`.
fn with_type_keys<T>(node_type: &str, f: impl FnOnce(&mut TypeKeys) -> T) -> T {
    TYPE_KEYS.with(|keys| match keys.try_borrow_mut() {
        Ok(mut keys) => {
            if !keys.contains_key(node_type) {
                keys.insert(node_type.to_owned(), TypeKeys::new(node_type));
            }
            match keys.get_mut(node_type) {
                Some(k) => f(k),
                None => f(&mut TypeKeys::new(node_type)),
            }
        }
        // Only if a recorder records from inside a recorder call on this thread.
        Err(_) => f(&mut TypeKeys::new(node_type)),
    })
}

/// Records one executor call's wall time ([`NODE_DURATION`]).
pub(crate) fn node_duration(node_type: &str, elapsed: Duration) {
    with_type_keys(node_type, |k| {
        metrics::with_recorder(|r| r.register_histogram(&k.duration, &METADATA))
            .record(elapsed.as_secs_f64());
    });
}

/// The `outcome` label of a commit the queue answered with `outcome`.
pub(crate) fn outcome_label(commit: &NodeCommit, outcome: &CommitOutcome) -> &'static str {
    match (outcome, commit) {
        (CommitOutcome::Stale, _) => "stale",
        (_, NodeCommit::Completed { .. }) => "completed",
        (
            _,
            NodeCommit::Failed {
                continue_on_fail: true,
                ..
            },
        ) => "continued",
        (_, NodeCommit::Failed { .. }) => "failed",
        (_, NodeCommit::Retry { .. }) => "retry",
        (_, NodeCommit::Delay { .. }) => "delayed",
        // `CommitOutcome` and `NodeCommit` are non-exhaustive.
        _ => "other",
    }
}

/// Counts one committed attempt ([`NODE_EXECUTIONS`], and [`NODE_RETRIES`] for a retry).
pub(crate) fn node_committed(node_type: &str, outcome: &'static str) {
    with_type_keys(node_type, |k| {
        let key = k.execution(node_type, outcome);
        metrics::with_recorder(|r| r.register_counter(key, &METADATA)).increment(1);
        if outcome == "retry" {
            metrics::with_recorder(|r| r.register_counter(&k.retries, &METADATA)).increment(1);
        }
    });
}

/// Sets [`DLQ_SIZE`].
pub(crate) fn queue_wait(node_type: &str, ready_at: Option<i64>) {
    if let Some(at) = ready_at {
        let waited = (spane_core::now_millis() - at).max(0) as f64 / 1000.0;
        with_type_keys(node_type, |k| {
            metrics::with_recorder(|r| r.register_histogram(&k.queue_wait, &METADATA))
                .record(waited);
        });
    }
}

pub(crate) fn breaker_state(key: &str, state: f64) {
    metrics::gauge!(BREAKER_STATE, "key" => key.to_owned()).set(state);
}

pub(crate) fn rate_limit_wait(key: &str, wait: Duration) {
    metrics::counter!(RATE_LIMIT_WAITS, "key" => key.to_owned()).increment(1);
    metrics::histogram!(RATE_LIMIT_WAIT, "key" => key.to_owned()).record(wait.as_secs_f64());
}

pub(crate) fn dlq_size(items: usize) {
    metrics::gauge!(DLQ_SIZE).set(items as f64);
}
