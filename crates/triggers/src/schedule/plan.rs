//! Which ticks of a due schedule fire, which are missed, and the next tick: a pure decision,
//! the same for every backend.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::spec::{CatchUp, ScheduleKind, ScheduleRecord};
use crate::cron::CronSchedule;

/// At most this many due ticks are counted one by one in a pass; after a longer downtime the
/// ticks to fire are found backwards from now, the misses are counted as this many (a lower
/// bound), and the schedule moves to the first tick after now.
pub const MAX_TICKS_PER_PASS: usize = 10_000;

/// The decision for one due schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FirePlan {
    /// The ticks to fire, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// How many due ticks are not fired.
    pub missed: u64,
    /// The next tick after now; `None` when the schedule is done (a fired one-shot, or a
    /// cron pattern with no further occurrence).
    pub next: Option<DateTime<Utc>>,
}

/// Plans a schedule at `now`: every tick from its `next_fire` up to `now` is due; the catch-up
/// policy picks which fire. `grace` is how late a tick may be and still count as on time for
/// [`CatchUp::Skip`]. Returns `None` when nothing is due.
pub fn plan_fires(
    record: &ScheduleRecord,
    cron: Option<&CronSchedule>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Option<FirePlan> {
    let first = record.next_fire.filter(|t| *t <= now)?;
    let cron = match (&record.spec.kind, cron) {
        (ScheduleKind::Once { .. }, _) | (_, None) => {
            return Some(FirePlan {
                fire: vec![first],
                missed: 0,
                next: None,
            });
        }
        (_, Some(cron)) => cron,
    };
    let keep = match record.spec.catch_up {
        CatchUp::All { limit } => limit.max(1) as usize,
        _ => 1,
    };
    // The latest `keep` due ticks, and how many were due in all.
    let mut due = VecDeque::with_capacity(keep.min(MAX_TICKS_PER_PASS));
    due.push_back(first);
    let mut total: u64 = 1;
    let mut next = cron.next_after(first);
    while let Some(t) = next {
        if t > now {
            break;
        }
        if total >= MAX_TICKS_PER_PASS as u64 {
            // A long downtime: take the latest ticks from now backwards instead.
            due.clear();
            let mut at = cron.latest_at_or_before(now);
            while let Some(t) = at.filter(|t| *t >= first) {
                due.push_front(t);
                if due.len() == keep {
                    break;
                }
                at = cron.latest_at_or_before(t - chrono::Duration::seconds(1));
            }
            next = cron.next_after(now);
            break;
        }
        if due.len() == keep {
            due.pop_front();
        }
        due.push_back(t);
        total += 1;
        next = cron.next_after(t);
    }
    let fire: Vec<DateTime<Utc>> = match record.spec.catch_up {
        CatchUp::Skip => due
            .back()
            .filter(|t| now - **t <= grace)
            .map(|t| vec![*t])
            .unwrap_or_default(),
        _ => due.into_iter().collect(),
    };
    Some(FirePlan {
        missed: total.saturating_sub(fire.len() as u64),
        fire,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleSpec;
    use chrono::TimeZone;

    fn record(spec: ScheduleSpec, next: DateTime<Utc>) -> ScheduleRecord {
        ScheduleRecord {
            spec,
            next_fire: Some(next),
            last_fire: None,
            last_execution_id: None,
            fires: 0,
            misses: 0,
            created_at: next,
            updated_at: next,
        }
    }

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, h, m, 0).unwrap()
    }

    #[test]
    fn catch_up_policies_after_downtime() {
        // Every 10 minutes; down from 10:00 (due) to 10:45: ticks 10:00..10:40 are due (5).
        let spec = ScheduleSpec::cron("w", "*/10 * * * *");
        let cron = spec.validate().unwrap();
        let now = t(10, 45);
        let grace = chrono::Duration::seconds(5);

        let latest =
            plan_fires(&record(spec.clone(), t(10, 0)), cron.as_ref(), now, grace).unwrap();
        assert_eq!(latest.fire, vec![t(10, 40)]);
        assert_eq!(latest.missed, 4);
        assert_eq!(latest.next, Some(t(10, 50)));

        let skip = spec.clone().catch_up(CatchUp::Skip);
        let skipped =
            plan_fires(&record(skip.clone(), t(10, 0)), cron.as_ref(), now, grace).unwrap();
        assert!(skipped.fire.is_empty());
        assert_eq!(skipped.missed, 5);
        assert_eq!(skipped.next, Some(t(10, 50)));
        // On time (within the grace), Skip fires.
        let on_time =
            plan_fires(&record(skip, t(10, 40)), cron.as_ref(), t(10, 40), grace).unwrap();
        assert_eq!(on_time.fire, vec![t(10, 40)]);

        let all = spec.clone().catch_up(CatchUp::All { limit: 3 });
        let each = plan_fires(&record(all, t(10, 0)), cron.as_ref(), now, grace).unwrap();
        assert_eq!(each.fire, vec![t(10, 20), t(10, 30), t(10, 40)]);
        assert_eq!(each.missed, 2);

        // Nothing due yet.
        assert!(plan_fires(&record(spec, t(10, 50)), cron.as_ref(), now, grace).is_none());
    }

    #[test]
    fn one_shot_fires_once_then_is_done() {
        let spec = ScheduleSpec::once("w", t(9, 0));
        let plan = plan_fires(
            &record(spec, t(9, 0)),
            None,
            t(12, 0),
            chrono::Duration::zero(),
        )
        .unwrap();
        assert_eq!(plan.fire, vec![t(9, 0)]);
        assert_eq!(plan.next, None);
    }

    #[test]
    fn a_long_downtime_is_bounded() {
        let spec = ScheduleSpec::cron("w", "* * * * * *").catch_up(CatchUp::All { limit: 2 });
        let cron = spec.validate().unwrap();
        let start = t(0, 0);
        let now = t(23, 0);
        let plan = plan_fires(
            &record(spec, start),
            cron.as_ref(),
            now,
            chrono::Duration::zero(),
        )
        .unwrap();
        assert_eq!(plan.fire, vec![now - chrono::Duration::seconds(1), now]);
        assert_eq!(plan.missed, MAX_TICKS_PER_PASS as u64 - 2);
        assert_eq!(plan.next, Some(now + chrono::Duration::seconds(1)));
    }
}
