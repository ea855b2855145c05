//! Cron patterns: the one parser every part of SPANE uses (definition validation, the trigger
//! runner), so that a pattern the validator accepts is the pattern that fires.

use chrono::{DateTime, TimeZone};

/// A parsed cron pattern: 5 fields (`minute hour day-of-month month day-of-week`), or 6 with
/// seconds first. Time zones are the caller's: the searches work in the zone of the instant
/// they are given.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use spane_core::CronPattern;
///
/// let every_ten_seconds = CronPattern::parse("*/10 * * * * *").unwrap();
/// let t = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 3).unwrap();
/// assert_eq!(
///     every_ten_seconds.next_after(&t),
///     Some(Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 10).unwrap())
/// );
/// assert!(CronPattern::parse("61 * * * *").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct CronPattern(croner::Cron);

impl CronPattern {
    /// Parses `pattern`; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(pattern)
            .map(Self)
            .map_err(|e| e.to_string())
    }

    /// The first time the pattern matches strictly after `after` (`None` when it never does).
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.0.find_next_occurrence(after, false).ok()
    }

    /// The latest time the pattern matches at or before `at` (`None` when it never did).
    pub fn latest_at_or_before<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.0.find_previous_occurrence(at, true).ok()
    }
}
