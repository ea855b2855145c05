//! The engine's trigger API: cron and one-shot schedules, webhooks, and the runner that fires
//! them. Executions start through [`WorkflowEngine::enqueue_workflow_with`], so a triggered
//! execution has the same history and events as any other.

use std::sync::{Arc, Weak};

use serde_json::Value;
use spane_core::{ExecutionId, WorkflowDefinition};
#[cfg(feature = "redis")]
use spane_queue::RedisEndpoint;
#[cfg(feature = "redis")]
use spane_triggers::RedisTriggerStore;
use spane_triggers::chrono::{DateTime, Utc};
use spane_triggers::{
    LaunchError, Launcher, PassReport, ScheduleRecord, ScheduleSpec, TriggerConfig, TriggerEvent,
    Triggers, WebhookDelivery,
};
use tokio::sync::broadcast;

use crate::engine::{EngineBuilder, EnqueueOptions, Inner, WorkflowEngine};
use crate::error::Error;

/// What the builder knows about triggers before the engine exists.
#[derive(Debug, Default)]
pub(crate) struct TriggerSetup {
    config: TriggerConfig,
    #[cfg(feature = "redis")]
    redis: Option<RedisTriggerStore>,
}

impl TriggerSetup {
    #[cfg(feature = "redis")]
    /// Shares schedules and idempotency keys through the Redis at `endpoint`, under `prefix`.
    pub(crate) async fn connect_redis(
        &mut self,
        endpoint: RedisEndpoint,
        prefix: &str,
    ) -> Result<(), Error> {
        self.redis = Some(RedisTriggerStore::connect(endpoint, prefix).await?);
        Ok(())
    }

    pub(crate) fn build(self) -> Arc<Triggers> {
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis {
            return Arc::new(Triggers::redis(store, self.config));
        }
        Arc::new(Triggers::in_memory(self.config))
    }
}

impl EngineBuilder {
    /// Settings of schedules and webhooks (default [`TriggerConfig::default`]: system clock,
    /// 1 MiB webhook bodies, `Idempotency-Key` remembered for 24 h).
    pub fn triggers(mut self, config: TriggerConfig) -> Self {
        self.triggers.config = config;
        self
    }
}

/// Starts executions for the trigger runner through the engine's normal enqueue path. Holds
/// the engine weakly, so that a running trigger runner does not keep a dropped engine alive.
struct EngineLauncher(Weak<Inner>);

#[async_trait::async_trait]
impl Launcher for EngineLauncher {
    async fn launch(&self, workflow_id: &str, data: Value) -> Result<ExecutionId, LaunchError> {
        let inner = self.0.upgrade().ok_or("the engine was dropped")?;
        let engine = WorkflowEngine { inner };
        Ok(engine
            .enqueue_workflow_with(workflow_id, data, EnqueueOptions::default())
            .await?)
    }
}

impl WorkflowEngine {
    fn launcher(&self) -> EngineLauncher {
        EngineLauncher(Arc::downgrade(&self.inner))
    }

    /// Checks a definition's trigger settings before it is saved.
    pub(crate) fn check_triggers(&self, definition: &WorkflowDefinition) -> Result<(), Error> {
        Ok(self.inner.triggers.check_definition(definition)?)
    }

    /// Makes a registered definition's triggers current (webhook routes, `schedule` triggers;
    /// stale schedules of its earlier versions removed).
    pub(crate) async fn sync_triggers(&self, definition: &WorkflowDefinition) -> Result<(), Error> {
        Ok(self.inner.triggers.sync_definition(definition).await?)
    }

    async fn require_workflow(&self, workflow_id: &str) -> Result<(), Error> {
        match self.get_workflow(workflow_id).await? {
            Some(_) => Ok(()),
            None => Err(Error::WorkflowNotFound {
                id: workflow_id.to_owned(),
            }),
        }
    }

    /// Inserts or updates a schedule and returns it as stored. Idempotent: upserting the same
    /// spec again keeps one schedule and its next fire time. The workflow must be registered.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use spane::prelude::*;
    /// use spane::triggers::{CatchUp, ScheduleSpec};
    ///
    /// let engine = WorkflowEngine::embedded(NodeRegistry::new());
    /// engine.register_workflow(WorkflowDefinition::new("report", "Report")
    ///     .node(NodeDefinition::new("wait", "delay").with_config(serde_json::json!({"duration": 0}))))
    ///     .await.unwrap();
    /// let spec = ScheduleSpec::cron("report", "0 9 * * 1-5")
    ///     .timezone("Europe/London")
    ///     .catch_up(CatchUp::Skip);
    /// let stored = engine.upsert_schedule(spec.clone()).await.unwrap();
    /// engine.upsert_schedule(spec).await.unwrap();
    /// assert_eq!(engine.list_schedules(Some("report")).await.unwrap(), vec![stored]);
    /// # });
    /// ```
    pub async fn upsert_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleRecord, Error> {
        self.require_workflow(&spec.workflow_id).await?;
        self.inner.triggers.upsert(&spec).await?;
        self.inner.triggers.get(spec.id()).await?.ok_or_else(|| {
            Error::Trigger(spane_triggers::TriggerError::Backend {
                reason: format!("schedule {:?} vanished right after its upsert", spec.id()),
                source: None,
            })
        })
    }

    /// Every schedule (`None`) or one workflow's, by id: cron schedules and one-shots that
    /// have not fired.
    pub async fn list_schedules(
        &self,
        workflow_id: Option<&str>,
    ) -> Result<Vec<ScheduleRecord>, Error> {
        Ok(self.inner.triggers.list(workflow_id).await?)
    }

    /// One schedule, with its next fire, last fire and last execution id.
    pub async fn get_schedule(&self, id: &str) -> Result<Option<ScheduleRecord>, Error> {
        Ok(self.inner.triggers.get(id).await?)
    }

    /// Removes one schedule; no tick fires after this returns (a pass that already claimed a
    /// tick still starts it). `false` when there was none.
    pub async fn remove_schedule(&self, id: &str) -> Result<bool, Error> {
        Ok(self.inner.triggers.remove(id).await?)
    }

    /// Removes every schedule of a workflow (those of its definition's triggers too, until it
    /// is registered again); returns how many.
    pub async fn remove_workflow_schedules(&self, workflow_id: &str) -> Result<usize, Error> {
        Ok(self.inner.triggers.remove_workflow(workflow_id).await?)
    }

    /// Starts `workflow_id` once, at `at` (a `chrono::DateTime<Utc>` or a `SystemTime`), with
    /// `data` (a JSON object, or null) plus `_trigger` as its initial data. Returns the
    /// one-shot's id, for [`cancel_scheduled_workflow`](Self::cancel_scheduled_workflow). A
    /// time in the past fires at the runner's next pass.
    pub async fn schedule_workflow(
        &self,
        workflow_id: &str,
        data: Value,
        at: impl Into<DateTime<Utc>>,
    ) -> Result<String, Error> {
        self.require_workflow(workflow_id).await?;
        let spec = ScheduleSpec::once(workflow_id, at.into()).data(data);
        self.inner.triggers.upsert(&spec).await?;
        Ok(spec.id)
    }

    /// Cancels a one-shot before it fires: `true` when it was cancelled, `false` when it
    /// already fired (or never existed).
    pub async fn cancel_scheduled_workflow(&self, id: &str) -> Result<bool, Error> {
        Ok(self.inner.triggers.remove(id).await?)
    }

    /// Handles a webhook delivery and returns the executions started: one per registered
    /// workflow whose webhook trigger matches `path` (slashes normalised) and `method` (when
    /// the trigger names one). The body becomes the initial data (JSON, or a string when it
    /// is not JSON; null when empty). Refusals are [`Error::Webhook`], naming the reason:
    /// no match, body over the limit, a missing or bad signature, a stale timestamp, a
    /// delivery with the same idempotency key still in progress. A repeated delivery with the
    /// same `Idempotency-Key` header within the window returns the first one's executions.
    pub async fn trigger_webhook(
        &self,
        path: &str,
        method: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Vec<ExecutionId>, Error> {
        Ok(self
            .inner
            .triggers
            .webhook(path, method, body, headers, &self.launcher())
            .await?)
    }

    /// [`trigger_webhook`](Self::trigger_webhook), also saying whether the delivery replayed
    /// an idempotency key seen before (then nothing started and the ids are the first
    /// delivery's).
    pub async fn trigger_webhook_delivery(
        &self,
        path: &str,
        method: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<WebhookDelivery, Error> {
        Ok(self
            .inner
            .triggers
            .webhook_delivery(path, method, body, headers, &self.launcher())
            .await?)
    }

    /// Starts the trigger runner in this instance without workers (an instance that only
    /// schedules). [`start_workers`](Self::start_workers) starts it too; starting it twice
    /// does nothing. Must be called inside a Tokio runtime.
    pub fn start_triggers(&self) {
        self.inner.triggers.start(Arc::new(self.launcher()));
    }

    /// Stops the trigger runner gracefully (a pass in progress finishes).
    /// [`shutdown`](Self::shutdown) calls it.
    pub async fn stop_triggers(&self) {
        self.inner.triggers.stop().await;
    }

    /// Runs one pass of the trigger runner now: fires every due tick this instance can claim.
    /// For tests with a [`ManualClock`](spane_triggers::ManualClock) and for programs that
    /// drive schedules themselves.
    pub async fn run_due_schedules(&self) -> Result<PassReport, Error> {
        Ok(self.inner.triggers.run_due(&self.launcher()).await?)
    }

    /// Live trigger events of this instance (fires, misses, webhook deliveries and refusals).
    pub fn trigger_events(&self) -> broadcast::Receiver<TriggerEvent> {
        self.inner.triggers.subscribe()
    }
}
