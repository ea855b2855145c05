//! Where the trigger runner reads the time: the system clock, or a clock a test moves by hand.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

/// The current time, as the trigger runner sees it. Every decision about which ticks are due
/// reads it; sleeping between passes does not (it is only a wake-up hint).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told: for tests of schedules, time zones, DST and catch-up
/// without waiting.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use spane_triggers::{Clock, ManualClock};
///
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap());
/// clock.advance(chrono::Duration::hours(2));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2026, 3, 29, 2, 0, 0).unwrap());
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
    }

    /// Moves the time forward (or back, with a negative duration).
    pub fn advance(&self, by: ChronoDuration) {
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
