//! Schedules and webhook idempotency keys on Redis, shared by every engine instance.
//!
//! Keys (all under the configured prefix `P`, with their own hash tags so that each family
//! stays in one Redis Cluster slot without sharing the executions' slot):
//! - `P:{sched}:s:<schedule id>`: one hash per schedule (`spec` JSON, `next`, `last`, `exec`,
//!   `fires`, `misses`, `created`, `updated`; times in Unix milliseconds);
//! - `P:{sched}:due`: sorted set of schedule ids by next fire time;
//! - `P:{sched}:ids` and `P:{sched}:wf:<workflow id>`: sets of ids, all and per workflow;
//! - `P:{hooks}:idem:<key>`: a webhook delivery's idempotency key (`pending`, or the JSON
//!   array of execution ids), expiring after the window.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions};
use spane_core::ExecutionId;
use spane_redis::RedisEndpoint;

use super::{Claim, ScheduleStore, Upserted};
use crate::error::TriggerError;
use crate::schedule::{ScheduleRecord, ScheduleSpec, from_millis};
use crate::webhook::{Delivery, IN_PROGRESS_TTL, IdempotencyStore};

struct Scripts {
    upsert: Script,
    claim: Script,
    remove: Script,
    record: Script,
}

/// Schedules and idempotency keys on Redis; one client, cheap to clone.
#[derive(Clone)]
pub struct RedisTriggerStore {
    client: Client,
    scripts: std::sync::Arc<Scripts>,
    sched: String,
    hooks: String,
}

impl fmt::Debug for RedisTriggerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTriggerStore")
            .field("keys", &self.sched)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: fred::error::Error) -> TriggerError {
    use fred::error::ErrorKind;
    match e.kind() {
        ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled | ErrorKind::Routing => {
            TriggerError::Unavailable {
                reason: e.to_string(),
                source: Some(spane_core::ErrorSource::new(e.clone())),
            }
        }
        _ => TriggerError::Backend {
            reason: e.to_string(),
            source: Some(spane_core::ErrorSource::new(e.clone())),
        },
    }
}

fn ms(t: DateTime<Utc>) -> String {
    t.timestamp_millis().to_string()
}

impl RedisTriggerStore {
    /// Connects to the Redis at `endpoint` (a `redis://` or `rediss://` URL, or a
    /// [`RedisEndpoint`] with TLS settings); every key starts with `prefix` (use the engine's
    /// `RedisConfig` prefix).
    pub async fn connect(
        endpoint: impl Into<RedisEndpoint>,
        prefix: &str,
    ) -> Result<Self, TriggerError> {
        let client = spane_redis::connect(&endpoint.into())
            .await
            .map_err(TriggerError::Connect)?;
        let scripts = Scripts {
            upsert: Script::from_lua(include_str!("../../lua/upsert.lua")),
            claim: Script::from_lua(include_str!("../../lua/claim.lua")),
            remove: Script::from_lua(include_str!("../../lua/remove.lua")),
            record: Script::from_lua(include_str!("../../lua/record.lua")),
        };
        for s in [
            &scripts.upsert,
            &scripts.claim,
            &scripts.remove,
            &scripts.record,
        ] {
            s.load(&client).await.map_err(unavailable)?;
        }
        Ok(Self {
            client,
            scripts: std::sync::Arc::new(scripts),
            sched: format!("{prefix}:{{sched}}:"),
            hooks: format!("{prefix}:{{hooks}}:"),
        })
    }

    fn hash(&self, id: &str) -> String {
        format!("{}s:{id}", self.sched)
    }

    fn due_key(&self) -> String {
        format!("{}due", self.sched)
    }

    fn ids_key(&self) -> String {
        format!("{}ids", self.sched)
    }

    fn workflow_key(&self, workflow: &str) -> String {
        format!("{}wf:{workflow}", self.sched)
    }

    fn index_keys(&self, id: &str, workflow: &str) -> Vec<String> {
        vec![
            self.hash(id),
            self.due_key(),
            self.ids_key(),
            self.workflow_key(workflow),
        ]
    }

    fn idem_key(&self, key: &str) -> String {
        format!("{}idem:{key}", self.hooks)
    }

    async fn eval(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<i64, TriggerError> {
        script
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(unavailable)
    }

    async fn read(&self, id: &str) -> Result<Option<ScheduleRecord>, TriggerError> {
        let fields: HashMap<String, String> = self
            .client
            .hgetall(self.hash(id))
            .await
            .map_err(unavailable)?;
        parse_record(id, &fields)
    }
}

fn parse_record(
    id: &str,
    fields: &HashMap<String, String>,
) -> Result<Option<ScheduleRecord>, TriggerError> {
    let Some(spec) = fields.get("spec") else {
        return Ok(None);
    };
    let spec: ScheduleSpec = serde_json::from_str(spec).map_err(|e| TriggerError::Backend {
        reason: format!("schedule {id:?} is unreadable: {e}"),
        source: None,
    })?;
    let time = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .map(from_millis)
    };
    let count = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let created = time("created").unwrap_or(DateTime::<Utc>::MIN_UTC);
    Ok(Some(ScheduleRecord {
        spec,
        next_fire: time("next"),
        last_fire: time("last"),
        last_execution_id: fields.get("exec").and_then(|v| v.parse().ok()),
        fires: count("fires"),
        misses: count("misses"),
        created_at: created,
        updated_at: time("updated").unwrap_or(created),
    }))
}

#[async_trait]
impl ScheduleStore for RedisTriggerStore {
    async fn upsert(
        &self,
        spec: &ScheduleSpec,
        first_fire: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Upserted, TriggerError> {
        let json = serde_json::to_string(spec).map_err(|e| TriggerError::Backend {
            reason: format!("serializing schedule {:?}: {e}", spec.id),
            source: None,
        })?;
        let done = self
            .eval(
                &self.scripts.upsert,
                self.index_keys(&spec.id, &spec.workflow_id),
                vec![spec.id.clone(), json, ms(first_fire), ms(now)],
            )
            .await?;
        Ok(match done {
            0 => Upserted::Unchanged,
            1 => Upserted::Updated,
            _ => Upserted::Created,
        })
    }

    async fn get(&self, id: &str) -> Result<Option<ScheduleRecord>, TriggerError> {
        self.read(id).await
    }

    async fn list(&self, workflow_id: Option<&str>) -> Result<Vec<ScheduleRecord>, TriggerError> {
        let set = match workflow_id {
            Some(w) => self.workflow_key(w),
            None => self.ids_key(),
        };
        let mut ids: Vec<String> = self.client.smembers(set).await.map_err(unavailable)?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.read(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn remove(&self, id: &str) -> Result<bool, TriggerError> {
        let Some(record) = self.read(id).await? else {
            return Ok(false);
        };
        let n = self
            .eval(
                &self.scripts.remove,
                self.index_keys(id, &record.spec.workflow_id),
                vec![id.to_owned()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn remove_workflow(&self, workflow_id: &str) -> Result<usize, TriggerError> {
        let ids: Vec<String> = self
            .client
            .smembers(self.workflow_key(workflow_id))
            .await
            .map_err(unavailable)?;
        let mut removed = 0;
        for id in ids {
            let n = self
                .eval(
                    &self.scripts.remove,
                    self.index_keys(&id, workflow_id),
                    vec![id.clone()],
                )
                .await?;
            removed += n as usize;
        }
        Ok(removed)
    }

    async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, TriggerError> {
        let ids: Vec<String> = self
            .client
            .zrangebyscore(
                self.due_key(),
                "-inf",
                now.timestamp_millis() as f64,
                false,
                Some((0, limit.max(1) as i64)),
            )
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.read(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn earliest(&self) -> Result<Option<DateTime<Utc>>, TriggerError> {
        let first: Vec<(String, f64)> = self
            .client
            .zrange(self.due_key(), 0, 0, None, false, None, true)
            .await
            .map_err(unavailable)?;
        Ok(first.first().map(|(_, score)| from_millis(*score as i64)))
    }

    async fn claim(&self, claim: &Claim, _now: DateTime<Utc>) -> Result<bool, TriggerError> {
        // The workflow's index key is needed only to delete a one-shot; read it from the
        // schedule when so (the claim itself is still one compare-and-set).
        let workflow = if claim.delete {
            match self.read(&claim.id).await? {
                Some(r) => r.spec.workflow_id,
                None => return Ok(false),
            }
        } else {
            String::new()
        };
        let n = self
            .eval(
                &self.scripts.claim,
                self.index_keys(&claim.id, &workflow),
                vec![
                    claim.id.clone(),
                    ms(claim.expected_next),
                    claim.next.map(ms).unwrap_or_default(),
                    claim.last_fire.map(ms).unwrap_or_default(),
                    claim.fired.to_string(),
                    claim.missed.to_string(),
                    if claim.delete { "1" } else { "0" }.to_owned(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn record_execution(
        &self,
        id: &str,
        tick: DateTime<Utc>,
        execution: ExecutionId,
    ) -> Result<(), TriggerError> {
        self.eval(
            &self.scripts.record,
            vec![self.hash(id)],
            vec![ms(tick), execution.to_string()],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for RedisTriggerStore {
    async fn begin(&self, key: &str, _now: DateTime<Utc>) -> Result<Delivery, TriggerError> {
        let redis_key = self.idem_key(key);
        // Twice: a key that expires between the SET and the GET is free again.
        for _ in 0..2 {
            let taken: Option<String> = self
                .client
                .set(
                    &redis_key,
                    "pending",
                    Some(Expiration::PX(IN_PROGRESS_TTL.as_millis() as i64)),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(unavailable)?;
            if taken.is_some() {
                return Ok(Delivery::New);
            }
            let value: Option<String> = self.client.get(&redis_key).await.map_err(unavailable)?;
            match value.as_deref() {
                None => continue,
                Some("pending") => return Ok(Delivery::InProgress),
                Some(json) => {
                    let ids: Vec<String> =
                        serde_json::from_str(json).map_err(|e| TriggerError::Backend {
                            reason: format!("idempotency key {key:?} is unreadable: {e}"),
                            source: None,
                        })?;
                    return Ok(Delivery::Done(
                        ids.iter().filter_map(|s| s.parse().ok()).collect(),
                    ));
                }
            }
        }
        Ok(Delivery::InProgress)
    }

    async fn finish(
        &self,
        key: &str,
        executions: &[ExecutionId],
        window: Duration,
        _now: DateTime<Utc>,
    ) -> Result<(), TriggerError> {
        let ids: Vec<String> = executions.iter().map(ToString::to_string).collect();
        let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_owned());
        let _: () = self
            .client
            .set(
                self.idem_key(key),
                json,
                Some(Expiration::PX(window.as_millis().max(1) as i64)),
                None,
                false,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn abandon(&self, key: &str) -> Result<(), TriggerError> {
        let _: i64 = self
            .client
            .del(self.idem_key(key))
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
