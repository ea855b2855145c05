//! A cron pattern in an IANA time zone, and its next fire time.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use spane_core::parse_cron;

use crate::error::TriggerError;

/// A parsed cron pattern (5 fields, or 6 with seconds first) in a time zone.
///
/// Daylight-saving transitions follow croner's rules: in a gap (spring forward), a job at a
/// fixed time runs at the first valid time after the gap on the same day, and interval or
/// wildcard jobs skip the occurrences inside the gap; in an overlap (fall back), a job at a
/// fixed time runs once, at the first occurrence, and interval or wildcard jobs run for each
/// matching wall-clock time in both passes of the repeated hour.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    timezone: Tz,
}

impl CronSchedule {
    /// Parses `pattern` in `timezone` (UTC when `None`).
    pub fn new(pattern: &str, timezone: Option<&str>) -> Result<Self, TriggerError> {
        let cron = parse_cron(pattern).map_err(|reason| TriggerError::InvalidCron {
            pattern: pattern.to_owned(),
            reason,
        })?;
        let timezone = match timezone {
            None => Tz::UTC,
            Some(name) => {
                Tz::from_str(name).map_err(|_| TriggerError::InvalidTimezone(name.to_owned()))?
            }
        };
        Ok(Self { cron, timezone })
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest fire time at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Cron resolution is a second; croner's backward search keeps sub-seconds.
        let local = at.trunc_subsecs(0).with_timezone(&self.timezone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The time zone.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedule_fires_in_its_timezone() {
        let s = CronSchedule::new("0 9 * * *", Some("America/New_York")).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        // 09:00 in New York in January is 14:00 UTC.
        assert_eq!(
            s.next_after(after),
            Some(Utc.with_ymd_and_hms(2026, 1, 15, 14, 0, 0).unwrap())
        );
        let secs = CronSchedule::new("*/10 * * * * *", None).unwrap();
        assert_eq!(
            secs.next_after(after),
            Some(Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 10).unwrap())
        );
        assert!(matches!(
            CronSchedule::new("0 9 * * *", Some("Mars/Olympus")),
            Err(TriggerError::InvalidTimezone(_))
        ));
        assert!(matches!(
            CronSchedule::new("61 * * * *", None),
            Err(TriggerError::InvalidCron { .. })
        ));
    }
}
