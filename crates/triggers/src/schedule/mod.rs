//! Schedules: what a user (or a definition's `schedule` trigger) asks for, and what the store
//! keeps about each one.

mod plan;
mod spec;

pub use plan::{FirePlan, MAX_TICKS_PER_PASS, plan_fires};
#[cfg(feature = "redis")]
pub(crate) use spec::from_millis;
pub use spec::{CatchUp, ScheduleKind, ScheduleRecord, ScheduleSource, ScheduleSpec};
