//! Settings of the trigger runner and of webhooks.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// Settings of [`Triggers`](crate::Triggers), with documented defaults.
///
/// ```
/// use std::time::Duration;
/// use spane_triggers::TriggerConfig;
///
/// let config = TriggerConfig::default()
///     .idempotency_window(Duration::from_secs(3600))
///     .max_body_bytes(64 * 1024);
/// assert_eq!(config.idempotency_header, "Idempotency-Key");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TriggerConfig {
    /// Where the runner reads the time (default the system clock; tests pass a
    /// [`ManualClock`](crate::ManualClock)).
    pub clock: Arc<dyn Clock>,
    /// The longest the runner sleeps between passes (default 1 s), so that schedules another
    /// instance adds are seen. It wakes earlier for the earliest known tick.
    pub poll_interval: Duration,
    /// How late a tick may fire and still count as on time for
    /// [`CatchUp::Skip`](crate::CatchUp::Skip) (default 5 s).
    pub misfire_grace: Duration,
    /// At most this many due schedules per pass (default 100).
    pub batch: usize,
    /// Webhook bodies larger than this are refused (default 1 MiB).
    pub max_body_bytes: usize,
    /// The header whose value makes a webhook delivery idempotent (default `Idempotency-Key`).
    pub idempotency_header: String,
    /// How long a delivery's idempotency key is remembered (default 24 h).
    pub idempotency_window: Duration,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            poll_interval: Duration::from_secs(1),
            misfire_grace: Duration::from_secs(5),
            batch: 100,
            max_body_bytes: 1024 * 1024,
            idempotency_header: "Idempotency-Key".to_owned(),
            idempotency_window: Duration::from_secs(24 * 3600),
        }
    }
}

impl TriggerConfig {
    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the longest sleep between runner passes.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Sets how late a tick may be and still fire under `CatchUp::Skip`.
    pub fn misfire_grace(mut self, grace: Duration) -> Self {
        self.misfire_grace = grace;
        self
    }

    /// Sets the webhook body limit.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Sets the idempotency header's name.
    pub fn idempotency_header(mut self, name: impl Into<String>) -> Self {
        self.idempotency_header = name.into();
        self
    }

    /// Sets how long idempotency keys are remembered.
    pub fn idempotency_window(mut self, window: Duration) -> Self {
        self.idempotency_window = window.max(Duration::from_millis(1));
        self
    }
}
