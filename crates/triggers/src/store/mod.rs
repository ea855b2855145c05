//! Where schedules live: the [`ScheduleStore`] trait, in memory ([`MemoryScheduleStore`]) and on
//! Redis ([`RedisTriggerStore`](crate::RedisTriggerStore)).
//!
//! Exactly once per tick rests on [`ScheduleStore::claim`]: a compare-and-set of the schedule's
//! next fire time. Every runner that sees tick `T` due asks to move `next_fire` from `T` to the
//! tick after now; one succeeds, the others see `next_fire` already moved and fire nothing.
//! Nothing is held while the execution starts, so there is no lock that could expire mid-fire.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use spane_core::ExecutionId;

use crate::error::TriggerError;
use crate::schedule::{ScheduleRecord, ScheduleSpec};

pub use memory::MemoryScheduleStore;
#[cfg(feature = "redis")]
pub use redis::RedisTriggerStore;

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upserted {
    /// A new schedule.
    Created,
    /// The spec changed; the next fire time was computed again from now.
    Updated,
    /// The same spec was stored already; nothing changed (its next fire time is kept).
    Unchanged,
}

/// The claim of a schedule's due ticks by one runner.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// The schedule.
    pub id: String,
    /// The `next_fire` the runner planned from; the claim fails when it moved.
    pub expected_next: DateTime<Utc>,
    /// The new `next_fire` (`None`: no further tick).
    pub next: Option<DateTime<Utc>>,
    /// The latest tick fired by this claim, if any fires.
    pub last_fire: Option<DateTime<Utc>>,
    /// How many ticks this claim fires.
    pub fired: u64,
    /// How many due ticks it leaves unfired (catch-up policy).
    pub missed: u64,
    /// Delete the schedule with the claim (a one-shot).
    pub delete: bool,
}

impl Claim {
    /// A claim of `id`'s ticks planned from `expected_next`.
    pub fn new(id: impl Into<String>, expected_next: DateTime<Utc>) -> Self {
        Self {
            id: id.into(),
            expected_next,
            next: None,
            last_fire: None,
            fired: 0,
            missed: 0,
            delete: false,
        }
    }
}

/// Keeps schedules and claims their ticks atomically. Implementations must make
/// [`claim`](Self::claim) a single atomic compare-and-set across every process that shares
/// the store.
#[async_trait]
pub trait ScheduleStore: Send + Sync + fmt::Debug + 'static {
    /// Inserts `spec` with `next_fire = first_fire`, or updates an existing schedule of the
    /// same id whose spec differs (its next fire becomes `first_fire`). The same spec again
    /// changes nothing.
    async fn upsert(
        &self,
        spec: &ScheduleSpec,
        first_fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Upserted, TriggerError>;

    /// One schedule.
    async fn get(&self, id: &str) -> Result<Option<ScheduleRecord>, TriggerError>;

    /// Every schedule, or those of one workflow, by id.
    async fn list(&self, workflow_id: Option<&str>) -> Result<Vec<ScheduleRecord>, TriggerError>;

    /// Removes one schedule; `false` when there was none.
    async fn remove(&self, id: &str) -> Result<bool, TriggerError>;

    /// Removes every schedule of a workflow; returns how many.
    async fn remove_workflow(&self, workflow_id: &str) -> Result<usize, TriggerError>;

    /// Schedules whose next fire time is at or before `now`, earliest first, at most `limit`.
    async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, TriggerError>;

    /// The earliest next fire time of any schedule.
    async fn earliest(&self) -> Result<Option<DateTime<Utc>>, TriggerError>;

    /// Moves the schedule's next fire from `claim.expected_next` to `claim.next` and records
    /// the fire, atomically. `false` when `next_fire` is no longer `expected_next` (another
    /// runner claimed those ticks, or the schedule changed or went).
    async fn claim(&self, claim: &Claim, now: DateTime<Utc>) -> Result<bool, TriggerError>;

    /// Records the execution started for `tick`, when `tick` is still the schedule's latest
    /// fire.
    async fn record_execution(
        &self,
        id: &str,
        tick: DateTime<Utc>,
        execution: ExecutionId,
    ) -> Result<(), TriggerError>;
}
