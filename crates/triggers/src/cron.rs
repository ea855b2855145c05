//! A cron pattern in an IANA time zone, and its next fire time.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use spane_core::CronPattern;

use crate::error::TriggerError;

/// A parsed cron pattern (5 fields, or 6 with seconds first) in a time zone.
///
/// Daylight-saving transitions follow [`CronPattern::next_after`] (croner's search), and each next tick is
/// computed from the previous one, so every wall-clock time fires at most once:
/// - in a gap (spring forward), a job at a fixed time inside the gap runs at the first valid
///   time after it, the same day (`30 1 * * *` in London on 2026-03-29 runs at 02:00 BST);
///   interval and wildcard jobs skip the times inside the gap;
/// - in an overlap (fall back), every job runs in the first pass of the repeated hour only
///   (`30 1 * * *` runs at 01:30 BST, not again at 01:30 GMT; `*/30 * * * *` runs at 01:00
///   and 01:30 BST, then 02:00 GMT). croner's iterator would also yield the second pass for
///   interval jobs; this runner does not.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: CronPattern,
    timezone: Tz,
}

impl CronSchedule {
    /// Parses `pattern` in `timezone` (UTC when `None`).
    pub fn new(pattern: &str, timezone: Option<&str>) -> Result<Self, TriggerError> {
        let cron = CronPattern::parse(pattern).map_err(|reason| TriggerError::InvalidCron {
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
        // Ticks are whole seconds; croner would keep the sub-seconds of `after`.
        let local = after.trunc_subsecs(0).with_timezone(&self.timezone);
        self.cron.next_after(&local).map(|t| t.with_timezone(&Utc))
    }

    /// The latest fire time at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Cron resolution is a second; croner's backward search keeps sub-seconds.
        let local = at.trunc_subsecs(0).with_timezone(&self.timezone);
        self.cron
            .latest_at_or_before(&local)
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
        // Ticks are whole seconds, whatever the sub-seconds of the start.
        let odd = after + chrono::Duration::milliseconds(1234);
        assert_eq!(
            secs.next_after(odd),
            Some(Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 10).unwrap())
        );
        assert!(matches!(
            CronSchedule::new("61 * * * *", None),
            Err(TriggerError::InvalidCron { .. })
        ));
    }
}

#[cfg(test)]
mod dst {
    use super::*;
    use chrono::TimeZone;

    fn walk(pattern: &str, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let s = CronSchedule::new(pattern, Some("Europe/London")).unwrap();
        std::iter::successors(s.next_after(from), |t| s.next_after(*t))
            .take(n)
            .collect()
    }

    fn utc(mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn spring_forward_gap() {
        // London, 2026-03-29: 01:00 GMT jumps to 02:00 BST (01:00 UTC).
        // A fixed time in the gap runs at the end of the gap, then at its time again.
        assert_eq!(
            walk("30 1 * * *", utc(3, 28, 12, 0), 2),
            vec![utc(3, 29, 1, 0), utc(3, 30, 0, 30)]
        );
        // Interval jobs skip the gap: 00:00, 00:30 GMT, then 02:00, 02:30 BST.
        assert_eq!(
            walk("*/30 * * * *", utc(3, 28, 23, 50), 4),
            vec![
                utc(3, 29, 0, 0),
                utc(3, 29, 0, 30),
                utc(3, 29, 1, 0),
                utc(3, 29, 1, 30)
            ]
        );
    }

    #[test]
    fn fall_back_overlap() {
        // London, 2026-10-25: 02:00 BST falls back to 01:00 GMT (01:00 UTC).
        // A fixed time in the repeated hour runs once, in the first pass (01:30 BST).
        assert_eq!(
            walk("30 1 * * *", utc(10, 24, 12, 0), 2),
            vec![utc(10, 25, 0, 30), utc(10, 26, 1, 30)]
        );
        // Interval jobs run in the first pass only: 01:00, 01:30 BST, then 02:00 GMT.
        assert_eq!(
            walk("*/30 * * * *", utc(10, 24, 23, 50), 3),
            vec![utc(10, 25, 0, 0), utc(10, 25, 0, 30), utc(10, 25, 2, 0)]
        );
    }
}
