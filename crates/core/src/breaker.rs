//! The circuit-breaker state machine, shared by every backend (the Redis script mirrors it).
//!
//! CLOSED counts consecutive failures and opens at `failure_threshold`. OPEN rejects calls
//! until `timeout` has passed, then lets one probe through (HALF_OPEN). In HALF_OPEN one probe
//! runs at a time; a failure re-opens the breaker, `success_threshold` consecutive successes
//! close it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::CircuitBreakerConfig;

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerStatus {
    /// Calls go through.
    #[default]
    Closed,
    /// Calls are rejected without running.
    Open,
    /// One probe at a time goes through.
    HalfOpen,
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerDecision {
    /// Run.
    Allow,
    /// Run as the single probe of a half-open breaker.
    Probe,
    /// Do not run; the breaker may let a probe through after `retry_in`.
    Reject {
        /// Time until the breaker may let a probe through.
        retry_in: Duration,
    },
}

/// The state of one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerState {
    /// Where it is.
    pub status: BreakerStatus,
    /// Consecutive failures (closed).
    pub failures: u32,
    /// Consecutive probe successes (half-open).
    pub successes: u32,
    /// When it opened, milliseconds since the Unix epoch.
    pub opened_at: i64,
    /// Until when the current probe holds the half-open breaker, milliseconds since the epoch.
    pub probe_until: i64,
}

impl BreakerState {
    /// Decides whether a call may run at `now` (ms); `probe_lease` bounds how long one probe
    /// holds a half-open breaker if it never reports back.
    pub fn acquire(
        &mut self,
        config: &CircuitBreakerConfig,
        now: i64,
        probe_lease: Duration,
    ) -> BreakerDecision {
        let lease = probe_lease.as_millis() as i64;
        match self.status {
            BreakerStatus::Closed => BreakerDecision::Allow,
            BreakerStatus::Open => {
                let reopen = self.opened_at + config.open_timeout.as_millis() as i64;
                if now < reopen {
                    return BreakerDecision::Reject {
                        retry_in: Duration::from_millis((reopen - now) as u64),
                    };
                }
                self.status = BreakerStatus::HalfOpen;
                self.successes = 0;
                self.probe_until = now + lease;
                BreakerDecision::Probe
            }
            BreakerStatus::HalfOpen => {
                if now < self.probe_until {
                    return BreakerDecision::Reject {
                        retry_in: Duration::from_millis((self.probe_until - now) as u64),
                    };
                }
                self.probe_until = now + lease;
                BreakerDecision::Probe
            }
        }
    }

    /// Records the outcome of a call that was allowed at `now` (ms).
    pub fn record(&mut self, config: &CircuitBreakerConfig, success: bool, now: i64) {
        match (self.status, success) {
            (BreakerStatus::Closed, true) => self.failures = 0,
            (BreakerStatus::Closed, false) => {
                self.failures += 1;
                if self.failures >= config.failure_threshold {
                    self.open(now);
                }
            }
            (BreakerStatus::HalfOpen, true) => {
                self.successes += 1;
                self.probe_until = 0;
                if self.successes >= config.success_threshold {
                    *self = Self::default();
                }
            }
            (BreakerStatus::HalfOpen, false) => self.open(now),
            // A call allowed before the breaker opened reports late: it changes nothing.
            (BreakerStatus::Open, _) => {}
        }
    }

    fn open(&mut self, now: i64) {
        self.status = BreakerStatus::Open;
        self.opened_at = now;
        self.failures = 0;
        self.successes = 0;
        self.probe_until = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_threshold: 2,
            success_threshold: 2,
            open_timeout: Duration::from_millis(100),
        }
    }

    #[test]
    fn closed_opens_after_the_threshold_and_half_opens_after_the_timeout() {
        let (c, lease) = (cfg(), Duration::from_millis(50));
        let mut b = BreakerState::default();
        assert_eq!(b.acquire(&c, 0, lease), BreakerDecision::Allow);
        b.record(&c, false, 0);
        b.record(&c, true, 1);
        b.record(&c, false, 2);
        assert_eq!(
            b.status,
            BreakerStatus::Closed,
            "failures must be consecutive"
        );
        b.record(&c, false, 3);
        assert_eq!(b.status, BreakerStatus::Open);
        assert_eq!(
            b.acquire(&c, 53, lease),
            BreakerDecision::Reject {
                retry_in: Duration::from_millis(50)
            }
        );
        assert_eq!(b.acquire(&c, 103, lease), BreakerDecision::Probe);
        assert!(
            matches!(b.acquire(&c, 104, lease), BreakerDecision::Reject { .. }),
            "one probe at a time"
        );
        b.record(&c, true, 110);
        assert_eq!(b.acquire(&c, 111, lease), BreakerDecision::Probe);
        b.record(&c, true, 120);
        assert_eq!(
            b.status,
            BreakerStatus::Closed,
            "closed after two successes"
        );
    }

    #[test]
    fn a_failed_probe_reopens_and_an_abandoned_probe_expires() {
        let (c, lease) = (cfg(), Duration::from_millis(50));
        let mut b = BreakerState::default();
        b.record(&c, false, 0);
        b.record(&c, false, 0);
        assert_eq!(b.acquire(&c, 100, lease), BreakerDecision::Probe);
        b.record(&c, false, 101);
        assert_eq!(b.status, BreakerStatus::Open);
        assert_eq!(b.opened_at, 101);
        assert_eq!(b.acquire(&c, 201, lease), BreakerDecision::Probe);
        // The probe never reports: after its lease another probe may go.
        assert_eq!(b.acquire(&c, 252, lease), BreakerDecision::Probe);
    }
}
