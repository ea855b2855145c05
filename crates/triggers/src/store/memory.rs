//! Schedules in process memory: the embedded engine's store.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use spane_core::ExecutionId;

use super::{Claim, ScheduleStore, Upserted};
use crate::error::TriggerError;
use crate::schedule::{ScheduleRecord, ScheduleSpec};

/// Schedules in a map under one lock; a claim is a compare-and-set under that lock.
#[derive(Debug, Default)]
pub struct MemoryScheduleStore {
    schedules: Mutex<BTreeMap<String, ScheduleRecord>>,
}

impl MemoryScheduleStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ScheduleRecord>> {
        self.schedules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ScheduleStore for MemoryScheduleStore {
    async fn upsert(
        &self,
        spec: &ScheduleSpec,
        first_fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Upserted, TriggerError> {
        let mut map = self.map();
        match map.get_mut(&spec.id) {
            Some(existing) if existing.spec == *spec => Ok(Upserted::Unchanged),
            Some(existing) => {
                existing.spec = spec.clone();
                existing.next_fire = Some(first_fire);
                existing.updated_at = now;
                Ok(Upserted::Updated)
            }
            None => {
                map.insert(
                    spec.id.clone(),
                    ScheduleRecord {
                        spec: spec.clone(),
                        next_fire: Some(first_fire),
                        last_fire: None,
                        last_execution_id: None,
                        fires: 0,
                        misses: 0,
                        created_at: now,
                        updated_at: now,
                    },
                );
                Ok(Upserted::Created)
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<ScheduleRecord>, TriggerError> {
        Ok(self.map().get(id).cloned())
    }

    async fn list(&self, workflow_id: Option<&str>) -> Result<Vec<ScheduleRecord>, TriggerError> {
        Ok(self
            .map()
            .values()
            .filter(|r| workflow_id.is_none_or(|w| r.spec.workflow_id == w))
            .cloned()
            .collect())
    }

    async fn remove(&self, id: &str) -> Result<bool, TriggerError> {
        Ok(self.map().remove(id).is_some())
    }

    async fn remove_workflow(&self, workflow_id: &str) -> Result<usize, TriggerError> {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, r| r.spec.workflow_id != workflow_id);
        Ok(before - map.len())
    }

    async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, TriggerError> {
        let mut due: Vec<ScheduleRecord> = self
            .map()
            .values()
            .filter(|r| r.next_fire.is_some_and(|t| t <= now))
            .cloned()
            .collect();
        due.sort_by_key(|r| r.next_fire);
        due.truncate(limit);
        Ok(due)
    }

    async fn earliest(&self) -> Result<Option<DateTime<Utc>>, TriggerError> {
        Ok(self.map().values().filter_map(|r| r.next_fire).min())
    }

    async fn claim(&self, claim: &Claim, _now: DateTime<Utc>) -> Result<bool, TriggerError> {
        let mut map = self.map();
        let Some(record) = map.get_mut(&claim.id) else {
            return Ok(false);
        };
        if record.next_fire != Some(claim.expected_next) {
            return Ok(false);
        }
        if claim.delete {
            map.remove(&claim.id);
            return Ok(true);
        }
        record.next_fire = claim.next;
        if claim.last_fire.is_some() {
            record.last_fire = claim.last_fire;
        }
        record.fires += claim.fired;
        record.misses += claim.missed;
        Ok(true)
    }

    async fn record_execution(
        &self,
        id: &str,
        tick: DateTime<Utc>,
        execution: ExecutionId,
    ) -> Result<(), TriggerError> {
        if let Some(record) = self.map().get_mut(id)
            && record.last_fire == Some(tick)
        {
            record.last_execution_id = Some(execution);
        }
        Ok(())
    }
}
