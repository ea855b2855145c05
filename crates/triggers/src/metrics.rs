//! Metrics of triggers, recorded through the [`metrics`] facade (no-ops until the application
//! installs a recorder).
//!
//! | Name | Kind | Labels | What |
//! |---|---|---|---|
//! | [`FIRES`] `spane_trigger_fires_total` | counter | `kind` (`schedule`, `once`, `webhook`) | Executions started by triggers in this process. |
//! | [`MISSES`] `spane_trigger_misses_total` | counter | — | Schedule ticks left unfired by a catch-up policy. |
//! | [`FIRE_LAG`] `spane_trigger_fire_lag_seconds` | histogram | `kind` (`schedule`, `once`) | Time from a tick to its execution being started. |
//! | [`FAILURES`] `spane_trigger_failures_total` | counter | `kind` | Claimed ticks or accepted deliveries whose execution could not start. |
//! | [`WEBHOOK_REFUSALS`] `spane_webhook_refusals_total` | counter | `reason` | Refused webhook deliveries, by error kind (`no_match`, `too_large`, `signature`, `timestamp`, `body`, `in_progress`, `key`, `store`, `launch`). |

use std::time::Duration;

/// Counter: executions started by triggers, label `kind`.
pub const FIRES: &str = "spane_trigger_fires_total";
/// Counter: schedule ticks left unfired by a catch-up policy.
pub const MISSES: &str = "spane_trigger_misses_total";
/// Histogram: seconds from a tick to its execution being started, label `kind`.
pub const FIRE_LAG: &str = "spane_trigger_fire_lag_seconds";
/// Counter: fires whose execution could not start, label `kind`.
pub const FAILURES: &str = "spane_trigger_failures_total";
/// Counter: refused webhook deliveries, label `reason`.
pub const WEBHOOK_REFUSALS: &str = "spane_webhook_refusals_total";

/// Adds the help texts and units of the metrics above to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(FIRES, "Executions started by triggers");
    metrics::describe_counter!(MISSES, "Schedule ticks left unfired by a catch-up policy");
    metrics::describe_histogram!(
        FIRE_LAG,
        metrics::Unit::Seconds,
        "Time from a schedule tick to its execution being started"
    );
    metrics::describe_counter!(FAILURES, "Trigger fires whose execution could not start");
    metrics::describe_counter!(WEBHOOK_REFUSALS, "Refused webhook deliveries");
}

pub(crate) fn fired(kind: &'static str, lag: Option<Duration>) {
    metrics::counter!(FIRES, "kind" => kind).increment(1);
    if let Some(lag) = lag {
        metrics::histogram!(FIRE_LAG, "kind" => kind).record(lag.as_secs_f64());
    }
}

pub(crate) fn missed(n: u64) {
    metrics::counter!(MISSES).increment(n);
}

pub(crate) fn failed(kind: &'static str) {
    metrics::counter!(FAILURES, "kind" => kind).increment(1);
}

pub(crate) fn refused(reason: &'static str) {
    metrics::counter!(WEBHOOK_REFUSALS, "reason" => reason).increment(1);
}
