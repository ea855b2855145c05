//! What the trigger runner reports, live, to subscribers in the same process.

use std::time::Duration;

use chrono::{DateTime, Utc};
use spane_core::ExecutionId;

/// One thing a trigger did. The executions it starts also emit the usual workflow events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TriggerEvent {
    /// A schedule's tick started an execution.
    ScheduleFired {
        /// The schedule.
        schedule_id: String,
        /// Its workflow.
        workflow_id: String,
        /// The tick (also in the execution's initial data, `_trigger.tick`).
        tick: DateTime<Utc>,
        /// The execution started.
        execution_id: ExecutionId,
        /// How long after the tick the execution was started.
        lag: Duration,
    },
    /// Due ticks were left unfired by the schedule's catch-up policy.
    ScheduleMissed {
        /// The schedule.
        schedule_id: String,
        /// Its workflow.
        workflow_id: String,
        /// How many ticks.
        missed: u64,
        /// The schedule's next tick.
        next: Option<DateTime<Utc>>,
    },
    /// A claimed tick could not start its execution (for example the workflow is no longer
    /// registered). The tick is not retried.
    ScheduleFailed {
        /// The schedule.
        schedule_id: String,
        /// Its workflow.
        workflow_id: String,
        /// The tick.
        tick: DateTime<Utc>,
        /// Why.
        error: String,
    },
    /// A webhook delivery started executions (or returned those of its first delivery).
    WebhookAccepted {
        /// The normalised path.
        path: String,
        /// The executions.
        execution_ids: Vec<ExecutionId>,
        /// `true` when this was a redelivery of an idempotency key seen before.
        replayed: bool,
    },
    /// A webhook delivery was refused.
    WebhookRefused {
        /// The normalised path.
        path: String,
        /// Why, as the error says it.
        reason: String,
    },
}

/// Report of one runner pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassReport {
    /// Executions started, by schedule id and tick.
    pub fired: Vec<(String, DateTime<Utc>, ExecutionId)>,
    /// Ticks left unfired by catch-up policies.
    pub missed: u64,
    /// Due schedules another runner claimed first.
    pub lost: u64,
    /// Claimed ticks whose execution could not start.
    pub failed: u64,
}
