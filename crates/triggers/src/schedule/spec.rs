//! The definition of one schedule and its stored state.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use spane_core::{ExecutionId, ScheduleTrigger};

use crate::cron::CronSchedule;
use crate::error::TriggerError;

/// What happens to the ticks that fell due while no runner was running (downtime, or a
/// runner that fell behind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "camelCase")]
#[non_exhaustive]
pub enum CatchUp {
    /// Fire nothing for missed ticks: only a tick that is at most the runner's
    /// `misfire_grace` late fires; the others are counted as misses.
    Skip,
    /// Fire once, for the latest missed tick; the earlier ones are counted as misses
    /// (the default).
    #[default]
    Latest,
    /// Fire each missed tick, oldest first, but at most the `limit` latest ones; the
    /// earlier ones are counted as misses.
    All {
        /// At most this many fires for one catch-up (at least 1).
        limit: u32,
    },
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[non_exhaustive]
pub enum ScheduleKind {
    /// On every tick of a cron pattern (5 fields, or 6 with seconds first) in a time zone.
    Cron {
        /// The pattern.
        cron: String,
        /// IANA time zone; UTC when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// Once, at a given time (a one-shot from `schedule_workflow`).
    #[serde(rename_all = "camelCase")]
    Once {
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
    },
}

/// Where a schedule came from: re-registering a definition replaces only the schedules its
/// triggers made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ScheduleSource {
    /// A `schedule` trigger of the workflow's definition.
    Definition,
    /// The schedule API (`upsert_schedule`, `schedule_workflow`).
    Api,
}

/// A schedule as it is upserted: which workflow, when, with what data, and how to catch up.
///
/// ```
/// use serde_json::json;
/// use spane_triggers::{CatchUp, ScheduleSpec};
///
/// let spec = ScheduleSpec::cron("report", "0 9 * * 1-5")
///     .timezone("Europe/London")
///     .catch_up(CatchUp::Skip)
///     .data(json!({ "kind": "daily" }));
/// assert_eq!(spec.id(), "schedule:report:0 9 * * 1-5");
/// spec.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ScheduleSpec {
    /// `schedule:{workflowId}:{cron}` for cron schedules, `once:{workflowId}:{ulid}` for
    /// one-shots.
    pub id: String,
    /// The workflow started on each tick.
    pub workflow_id: String,
    /// When.
    pub kind: ScheduleKind,
    /// Missed ticks (default [`CatchUp::Latest`]).
    #[serde(default)]
    pub catch_up: CatchUp,
    /// The initial data of each execution (a JSON object; the engine adds `_trigger`).
    #[serde(default = "empty_object")]
    pub data: Value,
    /// Where it came from.
    pub source: ScheduleSource,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl ScheduleSpec {
    /// A cron schedule of `workflow_id`, UTC, catch-up [`CatchUp::Latest`], data `{}`.
    pub fn cron(workflow_id: impl Into<String>, cron: impl Into<String>) -> Self {
        let workflow_id = workflow_id.into();
        let cron = cron.into();
        Self {
            id: format!("schedule:{workflow_id}:{cron}"),
            workflow_id,
            kind: ScheduleKind::Cron {
                cron,
                timezone: None,
            },
            catch_up: CatchUp::default(),
            data: empty_object(),
            source: ScheduleSource::Api,
        }
    }

    /// A one-shot of `workflow_id` at `at`, with a fresh id.
    pub fn once(workflow_id: impl Into<String>, at: DateTime<Utc>) -> Self {
        let workflow_id = workflow_id.into();
        Self {
            id: format!("once:{workflow_id}:{}", ulid::Ulid::new()),
            workflow_id,
            kind: ScheduleKind::Once {
                at_ms: at.timestamp_millis(),
            },
            catch_up: CatchUp::default(),
            data: empty_object(),
            source: ScheduleSource::Api,
        }
    }

    /// The schedule of a definition's `schedule` trigger. Reads the optional config keys
    /// `catchUp` (`"skip"`, `"latest"` or `"all"`), `catchUpLimit` (for `"all"`, default 10)
    /// and `data` (the initial data, an object).
    pub fn from_trigger(
        workflow_id: &str,
        trigger: &ScheduleTrigger,
    ) -> Result<Self, TriggerError> {
        let mut spec = Self::cron(workflow_id, trigger.cron.clone());
        spec.source = ScheduleSource::Definition;
        if let Some(tz) = &trigger.timezone {
            spec = spec.timezone(tz.clone());
        }
        let bad =
            |field: &'static str, value: &Value, reason: &str| TriggerError::InvalidSchedule {
                schedule: format!("schedule:{workflow_id}:{}", trigger.cron),
                field,
                value: value.to_string(),
                reason: reason.to_owned(),
            };
        let limit = match trigger.extra.get("catchUpLimit") {
            None => 10,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
                .ok_or_else(|| bad("config.catchUpLimit", v, "expected an integer >= 1"))?
                as u32,
        };
        spec.catch_up = match trigger.extra.get("catchUp") {
            None => CatchUp::Latest,
            Some(v) => match v.as_str() {
                Some("skip") => CatchUp::Skip,
                Some("latest") => CatchUp::Latest,
                Some("all") => CatchUp::All { limit },
                _ => {
                    return Err(bad(
                        "config.catchUp",
                        v,
                        "expected \"skip\", \"latest\" or \"all\"",
                    ));
                }
            },
        };
        if let Some(data) = trigger.extra.get("data") {
            spec.data = data.clone();
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Sets the IANA time zone of a cron schedule (no effect on a one-shot).
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        if let ScheduleKind::Cron { timezone, .. } = &mut self.kind {
            *timezone = Some(tz.into());
        }
        self
    }

    /// Sets the catch-up policy.
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Sets the initial data of each execution (a JSON object, or null for `{}`).
    pub fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// Sets where the schedule came from.
    pub fn source(mut self, source: ScheduleSource) -> Self {
        self.source = source;
        self
    }

    /// The schedule's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Checks every field; returns the parsed cron pattern for cron schedules.
    pub fn validate(&self) -> Result<Option<CronSchedule>, TriggerError> {
        let bad =
            |field: &'static str, value: String, reason: &str| TriggerError::InvalidSchedule {
                schedule: self.id.clone(),
                field,
                value,
                reason: reason.to_owned(),
            };
        if self.workflow_id.trim().is_empty() {
            return Err(bad(
                "workflowId",
                format!("{:?}", self.workflow_id),
                "must not be empty",
            ));
        }
        if !(self.data.is_object() || self.data.is_null()) {
            return Err(bad(
                "data",
                self.data.to_string(),
                "expected a JSON object (the engine adds the tick time as `_trigger`)",
            ));
        }
        if let CatchUp::All { limit: 0 } = self.catch_up {
            return Err(bad(
                "catchUpLimit",
                "0".to_owned(),
                "expected an integer >= 1",
            ));
        }
        match &self.kind {
            ScheduleKind::Cron { cron, timezone } => {
                CronSchedule::new(cron, timezone.as_deref()).map(Some)
            }
            ScheduleKind::Once { at_ms } => {
                if Utc.timestamp_millis_opt(*at_ms).single().is_none() {
                    return Err(bad("at", at_ms.to_string(), "not a representable time"));
                }
                Ok(None)
            }
        }
    }

    /// The first fire time strictly after `now` (cron), or the one-shot's time.
    pub fn first_fire(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, TriggerError> {
        match (&self.kind, self.validate()?) {
            (ScheduleKind::Cron { cron, .. }, Some(schedule)) => schedule
                .next_after(now)
                .ok_or_else(|| TriggerError::NeverFires {
                    schedule: self.id.clone(),
                    pattern: cron.clone(),
                }),
            (ScheduleKind::Once { at_ms }, _) => Ok(from_millis(*at_ms)),
            (ScheduleKind::Cron { cron, .. }, None) => Err(TriggerError::NeverFires {
                schedule: self.id.clone(),
                pattern: cron.clone(),
            }),
        }
    }

    /// The initial data of the execution fired for `tick`: the schedule's data with
    /// `_trigger: {type, scheduleId, tick, tickMs}` added (`tick` is RFC 3339 in UTC).
    pub fn fire_data(&self, tick: DateTime<Utc>) -> Value {
        let mut data = match &self.data {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        data.insert(
            "_trigger".to_owned(),
            serde_json::json!({
                "type": "schedule",
                "scheduleId": self.id,
                "tick": tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "tickMs": tick.timestamp_millis(),
            }),
        );
        Value::Object(data)
    }
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A schedule as the store keeps it: its spec and where it stands.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleRecord {
    /// What was upserted.
    pub spec: ScheduleSpec,
    /// The next tick to fire; `None` once a one-shot fired.
    pub next_fire: Option<DateTime<Utc>>,
    /// The latest tick fired.
    pub last_fire: Option<DateTime<Utc>>,
    /// The execution started for the latest tick fired.
    pub last_execution_id: Option<ExecutionId>,
    /// Ticks fired since the schedule was created.
    pub fires: u64,
    /// Ticks missed (skipped by the catch-up policy) since the schedule was created.
    pub misses: u64,
    /// When the schedule was created.
    pub created_at: DateTime<Utc>,
    /// When its spec last changed.
    pub updated_at: DateTime<Utc>,
}

impl ScheduleRecord {
    /// The schedule's id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The workflow it starts.
    pub fn workflow_id(&self) -> &str {
        &self.spec.workflow_id
    }
}
