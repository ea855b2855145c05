//! The fault suite behind `cargo xtask faults`: worker processes (`spane-test-worker`) on a
//! Redis the suite starts itself, with faults injected at chosen points, each tried over many
//! runs. Every run checks what a user relies on: executions lost, nodes committed twice (joins
//! among them), executor side effects repeated (allowed by at-least-once delivery, counted), and
//! the time from the fault to the end of every execution.
//!
//! The faults (see [`FAULTS`]):
//!
//! | name | what happens |
//! |---|---|
//! | `kill-before-effect` | SIGKILL of a worker whose executor is about to perform its side effect |
//! | `kill-after-effect` | SIGKILL after the side effect, before the commit |
//! | `kill-commit-in-flight` | the worker dies the moment its first commit's reply arrives (the commit was applied; the next job it was handed is leased to a dead worker) |
//! | `kill-fan-out` | SIGKILL during a fan-out of 50 children with a join |
//! | `sigstop-past-lease` | SIGSTOP past the lease, another worker completes the node, SIGCONT: the stale commit is refused |
//! | `worker-cut-off` | a worker's connection to Redis is dropped (not killed) past its lease, then restored |
//! | `redis-restart-always` | Redis SIGKILLed mid-run and restarted, AOF with `appendfsync always` |
//! | `redis-restart-everysec` | the same with `appendfsync everysec` |
//! | `pg-outage` | PostgreSQL unreachable for 30 s (5 s with `--quick`; at most 5 runs, 2 quick) through a proxy the suite controls, under write-behind history |
//! | `sub-workflow-resume` | the worker dies between a child's end and its parent's resumption |
//! | `trigger-instance-killed` | one of two instances firing a seconds-cron schedule SIGKILLed at a random moment and restarted (3 runs quick, 20 full): no tick fires twice |
//! | `soak` | 10,000 executions (1,000 quick), once, with a 2 s retention: nothing is left without a TTL, memory returns to its baseline but for the event stream |

mod cluster;
mod scenarios;

use std::fmt;
use std::time::Duration;

pub use scenarios::FAULTS;

/// Why a run could not be carried out (a setup problem, not a finding).
#[derive(Debug, Clone)]
pub struct FaultError(pub String);

impl FaultError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FaultError {}

/// What one run of a fault found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunOutcome {
    /// Executions (or, for history, records) that did not complete.
    pub lost: usize,
    /// Node or execution completions recorded more than once (extra ones).
    pub doubled: usize,
    /// Of `doubled`, completions of join nodes.
    pub joins_doubled: usize,
    /// Executor invocations beyond the first, per node (at-least-once: allowed, counted).
    pub repeated_effects: usize,
    /// From the fault to the end of every execution.
    pub recovery: Option<Duration>,
    /// What else the run observed (a stale commit refused, bytes of memory left, ...).
    pub note: Option<String>,
}

/// The settings of a suite run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SuiteOptions {
    /// Runs per fault.
    pub runs: usize,
    /// Only these faults (all when empty).
    pub only: Vec<String>,
    /// Quick mode: shorter outages and a smaller soak.
    pub quick: bool,
    /// PostgreSQL for `pg-outage` (skipped with a note when absent).
    pub database_url: Option<String>,
}

impl SuiteOptions {
    /// `runs` runs of every fault.
    pub fn new(runs: usize) -> Self {
        Self {
            runs,
            only: Vec::new(),
            quick: false,
            database_url: None,
        }
    }

    /// Only the named faults.
    pub fn only(mut self, names: Vec<String>) -> Self {
        self.only = names;
        self
    }

    /// Quick mode.
    pub fn quick(mut self, quick: bool) -> Self {
        self.quick = quick;
        self
    }

    /// The PostgreSQL of `pg-outage`.
    pub fn database_url(mut self, url: Option<String>) -> Self {
        self.database_url = url;
        self
    }
}

/// The results of one fault over its runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FaultReport {
    /// The fault's name.
    pub fault: &'static str,
    /// What the fault does.
    pub description: &'static str,
    /// One outcome per run that could be carried out.
    pub runs: Vec<RunOutcome>,
    /// Runs that could not be carried out, with why.
    pub errors: Vec<String>,
}

impl FaultReport {
    fn sum(&self, f: impl Fn(&RunOutcome) -> usize) -> usize {
        self.runs.iter().map(f).sum()
    }

    /// The 99th percentile of the recovery times.
    pub fn p99_recovery(&self) -> Option<Duration> {
        let mut times: Vec<Duration> = self.runs.iter().filter_map(|r| r.recovery).collect();
        if times.is_empty() {
            return None;
        }
        times.sort();
        let at = ((times.len() as f64) * 0.99).ceil() as usize;
        Some(times[at.clamp(1, times.len()) - 1])
    }

    /// Whether nothing was lost or doubled and every run was carried out.
    pub fn clean(&self) -> bool {
        self.errors.is_empty() && self.sum(|r| r.lost) == 0 && self.sum(|r| r.doubled) == 0
    }

    /// One line of the table.
    pub fn row(&self) -> String {
        let p99 = self
            .p99_recovery()
            .map_or_else(|| "-".to_owned(), |d| format!("{:.2}s", d.as_secs_f64()));
        let errors = match self.errors.first() {
            None => String::new(),
            Some(first) => format!("{} runs failed to run: {first}", self.errors.len()),
        };
        format!(
            "| {} | {} | {} | {} ({} joins) | {} | {p99} | {errors} |",
            self.fault,
            self.runs.len(),
            self.sum(|r| r.lost),
            self.sum(|r| r.doubled),
            self.sum(|r| r.joins_doubled),
            self.sum(|r| r.repeated_effects),
        )
    }

    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "fault": self.fault,
            "description": self.description,
            "runs": self.runs.len(),
            "lost": self.sum(|r| r.lost),
            "doubled": self.sum(|r| r.doubled),
            "joinsDoubled": self.sum(|r| r.joins_doubled),
            "repeatedEffects": self.sum(|r| r.repeated_effects),
            "p99RecoveryMs": self.p99_recovery().map(|d| d.as_millis() as u64),
            "errors": self.errors,
            "notes": self.runs.iter().filter_map(|r| r.note.clone()).collect::<Vec<_>>(),
        })
    }
}

/// The table header.
pub const TABLE_HEADER: &str = "| fault | runs | lost | doubled | repeated effects | p99 recovery | errors |\n|---|---|---|---|---|---|---|";

/// Runs the suite; `progress` hears about each fault as it ends.
pub async fn run_suite(
    options: &SuiteOptions,
    mut progress: impl FnMut(&FaultReport),
) -> Vec<FaultReport> {
    let mut reports = Vec::new();
    for fault in FAULTS {
        if !options.only.is_empty() && !options.only.iter().any(|n| n == fault.name) {
            continue;
        }
        let report = scenarios::run_fault(fault, options).await;
        progress(&report);
        reports.push(report);
    }
    reports
}
