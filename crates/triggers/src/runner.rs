//! [`Triggers`]: the schedules, webhook routes and the runner of one engine instance.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use spane_core::{ExecutionId, Trigger, WorkflowDefinition};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::config::TriggerConfig;
use crate::error::{TriggerError, WebhookError};
use crate::events::{PassReport, TriggerEvent};
use crate::launcher::Launcher;
use crate::metrics;
use crate::schedule::{ScheduleKind, ScheduleRecord, ScheduleSource, ScheduleSpec, plan_fires};
#[cfg(feature = "redis")]
use crate::store::RedisTriggerStore;
use crate::store::{Claim, MemoryScheduleStore, ScheduleStore, Upserted};
use crate::webhook::{
    Delivery, IdempotencyStore, MemoryIdempotencyStore, WebhookDelivery, WebhookRouter, header,
    normalize_path,
};

/// Schedules, webhook routes and the runner that fires them, for one engine instance. The
/// stores may be shared by many instances (Redis); the router is per instance, filled by the
/// definitions this instance registers.
pub struct Triggers {
    schedules: Arc<dyn ScheduleStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    router: RwLock<WebhookRouter>,
    config: TriggerConfig,
    events: broadcast::Sender<TriggerEvent>,
    wake: Arc<Notify>,
    runner: Mutex<Option<Runner>>,
}

struct Runner {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Triggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Triggers")
            .field("schedules", &self.schedules)
            .field("idempotency", &self.idempotency)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Triggers {
    /// Triggers kept in process memory (the embedded engine).
    pub fn in_memory(config: TriggerConfig) -> Self {
        Self::with_stores(
            Arc::new(MemoryScheduleStore::new()),
            Arc::new(MemoryIdempotencyStore::new()),
            config,
        )
    }

    /// Triggers whose schedules and idempotency keys are shared through Redis.
    #[cfg(feature = "redis")]
    pub fn redis(store: RedisTriggerStore, config: TriggerConfig) -> Self {
        Self::with_stores(Arc::new(store.clone()), Arc::new(store), config)
    }

    /// Triggers over any stores.
    pub fn with_stores(
        schedules: Arc<dyn ScheduleStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        config: TriggerConfig,
    ) -> Self {
        Self {
            schedules,
            idempotency,
            router: RwLock::new(WebhookRouter::new()),
            config,
            events: broadcast::channel(1024).0,
            wake: Arc::new(Notify::new()),
            runner: Mutex::new(None),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TriggerConfig {
        &self.config
    }

    /// The schedule store.
    pub fn schedules(&self) -> &Arc<dyn ScheduleStore> {
        &self.schedules
    }

    /// Live trigger events of this instance.
    pub fn subscribe(&self) -> broadcast::Receiver<TriggerEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: TriggerEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    fn now(&self) -> DateTime<Utc> {
        self.config.clock.now()
    }

    /// Checks a definition's triggers (schedule settings, webhook signature settings) without
    /// changing anything.
    pub fn check_definition(&self, definition: &WorkflowDefinition) -> Result<(), TriggerError> {
        WebhookRouter::routes_of(definition)?;
        for t in definition.triggers.iter().flatten() {
            if let Trigger::Schedule(s) = t {
                ScheduleSpec::from_trigger(&definition.id, s)?;
            }
        }
        Ok(())
    }

    /// Makes the definition's triggers current: its webhook routes replace the old ones in
    /// this instance, its `schedule` triggers are upserted, and schedules an earlier version
    /// of the definition made that it no longer has are removed. Schedules made through the
    /// API are kept.
    pub async fn sync_definition(
        &self,
        definition: &WorkflowDefinition,
    ) -> Result<(), TriggerError> {
        let mut wanted = Vec::new();
        for t in definition.triggers.iter().flatten() {
            if let Trigger::Schedule(s) = t {
                wanted.push(ScheduleSpec::from_trigger(&definition.id, s)?);
            }
        }
        self.router
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .register(definition)?;
        let ids: BTreeSet<&str> = wanted.iter().map(|s| s.id.as_str()).collect();
        for old in self.schedules.list(Some(&definition.id)).await? {
            if old.spec.source == ScheduleSource::Definition && !ids.contains(old.id()) {
                self.schedules.remove(old.id()).await?;
                tracing::info!(schedule = %old.id(), "stale schedule of an earlier definition removed");
            }
        }
        for spec in &wanted {
            self.upsert(spec).await?;
        }
        Ok(())
    }

    /// Inserts or updates a schedule (idempotent: the same spec again keeps its next fire
    /// time). A changed spec fires next at its first tick after now.
    pub async fn upsert(&self, spec: &ScheduleSpec) -> Result<Upserted, TriggerError> {
        let now = self.now();
        let first = spec.first_fire(now)?;
        let done = self.schedules.upsert(spec, first, now).await?;
        self.wake.notify_one();
        Ok(done)
    }

    /// One schedule.
    pub async fn get(&self, id: &str) -> Result<Option<ScheduleRecord>, TriggerError> {
        self.schedules.get(id).await
    }

    /// Every schedule, or one workflow's.
    pub async fn list(
        &self,
        workflow_id: Option<&str>,
    ) -> Result<Vec<ScheduleRecord>, TriggerError> {
        self.schedules.list(workflow_id).await
    }

    /// Removes one schedule (or cancels a one-shot that has not fired); `false` when there
    /// was none.
    pub async fn remove(&self, id: &str) -> Result<bool, TriggerError> {
        self.schedules.remove(id).await
    }

    /// Removes every schedule of a workflow; returns how many.
    pub async fn remove_workflow(&self, workflow_id: &str) -> Result<usize, TriggerError> {
        self.schedules.remove_workflow(workflow_id).await
    }

    /// One pass: claims every due schedule it can and starts their executions through
    /// `launcher`. The runner calls this; tests with a [`ManualClock`](crate::ManualClock)
    /// call it after moving the clock.
    pub async fn run_due(&self, launcher: &dyn Launcher) -> Result<PassReport, TriggerError> {
        let now = self.now();
        let grace = to_chrono(self.config.misfire_grace);
        let mut report = PassReport::default();
        for record in self.schedules.due(now, self.config.batch).await? {
            let Some(expected) = record.next_fire else {
                continue;
            };
            let cron = match record.spec.validate() {
                Ok(cron) => cron,
                Err(e) => {
                    tracing::warn!(schedule = %record.id(), error = %e, "stored schedule is invalid; skipped");
                    continue;
                }
            };
            let Some(plan) = plan_fires(&record, cron.as_ref(), now, grace) else {
                continue;
            };
            let once = matches!(record.spec.kind, ScheduleKind::Once { .. });
            let mut claim = Claim::new(record.id(), expected);
            claim.next = plan.next;
            claim.last_fire = plan.fire.last().copied();
            claim.fired = plan.fire.len() as u64;
            claim.missed = plan.missed;
            claim.delete = once;
            if !self.schedules.claim(&claim, now).await? {
                report.lost += 1;
                continue;
            }
            if plan.missed > 0 {
                metrics::missed(plan.missed);
                report.missed += plan.missed;
                tracing::info!(schedule = %record.id(), missed = plan.missed, "ticks missed (catch-up policy)");
                self.emit(TriggerEvent::ScheduleMissed {
                    schedule_id: record.id().to_owned(),
                    workflow_id: record.workflow_id().to_owned(),
                    missed: plan.missed,
                    next: plan.next,
                });
            }
            let kind = if once { "once" } else { "schedule" };
            for tick in plan.fire {
                match launcher
                    .launch(record.workflow_id(), record.spec.fire_data(tick))
                    .await
                {
                    Ok(execution_id) => {
                        if !once
                            && let Err(e) = self
                                .schedules
                                .record_execution(record.id(), tick, execution_id)
                                .await
                        {
                            tracing::warn!(schedule = %record.id(), error = %e, "could not record the fired execution");
                        }
                        let lag = (self.now() - tick).to_std().unwrap_or_default();
                        metrics::fired(kind, Some(lag));
                        tracing::debug!(schedule = %record.id(), %tick, %execution_id, "schedule fired");
                        report
                            .fired
                            .push((record.id().to_owned(), tick, execution_id));
                        self.emit(TriggerEvent::ScheduleFired {
                            schedule_id: record.id().to_owned(),
                            workflow_id: record.workflow_id().to_owned(),
                            tick,
                            execution_id,
                            lag,
                        });
                    }
                    Err(e) => {
                        metrics::failed(kind);
                        report.failed += 1;
                        tracing::warn!(schedule = %record.id(), %tick, error = %e, "schedule fired but its execution could not start");
                        self.emit(TriggerEvent::ScheduleFailed {
                            schedule_id: record.id().to_owned(),
                            workflow_id: record.workflow_id().to_owned(),
                            tick,
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(report)
    }

    /// Starts the runner (once; later calls do nothing while it runs). It must be called
    /// inside a Tokio runtime.
    pub fn start(self: &Arc<Self>, launcher: Arc<dyn Launcher>) {
        let mut runner = self
            .runner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if runner.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return;
        }
        let stop = CancellationToken::new();
        let this = Arc::downgrade(self);
        let token = stop.clone();
        let wake = self.wake.clone();
        let task = tokio::spawn(async move {
            loop {
                let Some(triggers) = this.upgrade() else {
                    break;
                };
                let wait = triggers.pass_and_wait(launcher.as_ref()).await;
                drop(triggers);
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                if token.is_cancelled() {
                    break;
                }
            }
            tracing::debug!("trigger runner stopped");
        });
        *runner = Some(Runner { stop, task });
        tracing::info!("trigger runner started");
    }

    /// Runs one pass and returns how long to sleep before the next.
    async fn pass_and_wait(&self, launcher: &dyn Launcher) -> Duration {
        if let Err(e) = self.run_due(launcher).await {
            tracing::warn!(error = %e, "trigger runner pass failed; retrying");
            return self.config.poll_interval;
        }
        match self.schedules.earliest().await {
            Ok(Some(t)) => {
                let until = (t - self.now()).to_std().unwrap_or_default();
                // A tick already due (claimed by another runner a moment ago, or the next
                // millisecond) is looked at again shortly, never in a hot loop.
                until
                    .max(Duration::from_millis(2))
                    .min(self.config.poll_interval)
            }
            Ok(None) => self.config.poll_interval,
            Err(e) => {
                tracing::warn!(error = %e, "trigger runner cannot read the next tick");
                self.config.poll_interval
            }
        }
    }

    /// `true` while the runner runs.
    pub fn is_running(&self) -> bool {
        self.runner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|r| !r.task.is_finished())
    }

    /// Stops the runner gracefully: a pass in progress finishes (every tick it claimed starts
    /// its execution), then the runner ends.
    pub async fn stop(&self) {
        let runner = self
            .runner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(r) = runner {
            r.stop.cancel();
            if let Err(e) = r.task.await {
                tracing::warn!(error = %e, "trigger runner ended abnormally");
            }
        }
    }

    /// Handles a webhook delivery: starts every workflow whose trigger matches `path` (slashes
    /// normalised) and `method`, with the body as initial data (JSON, or a string when it is
    /// not JSON; `null` when empty), and returns the executions started. With the
    /// idempotency header, a repeated delivery within the window returns the first one's
    /// executions. Every refusal is a [`WebhookError`] naming the reason.
    pub async fn webhook(
        &self,
        path: &str,
        method: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        launcher: &dyn Launcher,
    ) -> Result<Vec<ExecutionId>, WebhookError> {
        self.webhook_delivery(path, method, body, headers, launcher)
            .await
            .map(|d| d.execution_ids)
    }

    /// [`webhook`](Self::webhook), also saying whether the delivery was a replay of an
    /// idempotency key seen before (an HTTP layer answers a replay differently).
    pub async fn webhook_delivery(
        &self,
        path: &str,
        method: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        launcher: &dyn Launcher,
    ) -> Result<WebhookDelivery, WebhookError> {
        let normalized = normalize_path(path);
        let result = self
            .webhook_inner(&normalized, method, body, headers, launcher)
            .await;
        match &result {
            Ok((ids, replayed)) => {
                if !replayed {
                    for _ in ids {
                        metrics::fired("webhook", None);
                    }
                }
                self.emit(TriggerEvent::WebhookAccepted {
                    path: normalized,
                    execution_ids: ids.clone(),
                    replayed: *replayed,
                });
            }
            Err(e) => {
                metrics::refused(e.kind());
                if matches!(e, WebhookError::Launch { .. }) {
                    metrics::failed("webhook");
                }
                tracing::info!(path = %normalized, error = %e, "webhook refused");
                self.emit(TriggerEvent::WebhookRefused {
                    path: normalized,
                    reason: e.to_string(),
                });
            }
        }
        result.map(|(execution_ids, replayed)| WebhookDelivery {
            execution_ids,
            replayed,
        })
    }

    async fn webhook_inner(
        &self,
        path: &str,
        method: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        launcher: &dyn Launcher,
    ) -> Result<(Vec<ExecutionId>, bool), WebhookError> {
        if body.len() > self.config.max_body_bytes {
            return Err(WebhookError::BodyTooLarge {
                path: path.to_owned(),
                size: body.len(),
                limit: self.config.max_body_bytes,
            });
        }
        let routes: Vec<_> = self
            .router
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .matches(path, method)
            .into_iter()
            .cloned()
            .collect();
        if routes.is_empty() {
            return Err(WebhookError::NoMatch {
                path: path.to_owned(),
                method: method.trim().to_ascii_uppercase(),
            });
        }
        let now = self.now();
        for route in &routes {
            if let Some(sig) = &route.signature {
                sig.verify(&route.workflow_id, path, body, headers, now)?;
            }
        }
        let data = body_data(path, body)?;
        let key = match header(headers, &self.config.idempotency_header) {
            None => None,
            Some(k) if k.is_empty() || k.len() > 256 => {
                return Err(WebhookError::BadIdempotencyKey {
                    path: path.to_owned(),
                    key: k.chars().take(64).collect(),
                });
            }
            Some(k) => Some(format!("{path}|{k}")),
        };
        let store_err = |source| WebhookError::Store {
            path: path.to_owned(),
            source: Box::new(source),
        };
        if let Some(key) = &key {
            match self.idempotency.begin(key, now).await.map_err(store_err)? {
                Delivery::New => {}
                Delivery::Done(ids) => return Ok((ids, true)),
                Delivery::InProgress => {
                    return Err(WebhookError::DeliveryInProgress {
                        path: path.to_owned(),
                        key: key.split_once('|').map_or("", |(_, k)| k).to_owned(),
                    });
                }
            }
        }
        let mut started = Vec::with_capacity(routes.len());
        let mut failure = None;
        for route in &routes {
            match launcher.launch(&route.workflow_id, data.clone()).await {
                Ok(id) => started.push(id),
                Err(e) => {
                    failure = Some(WebhookError::Launch {
                        path: path.to_owned(),
                        workflow: route.workflow_id.clone(),
                        reason: e.to_string(),
                    });
                    break;
                }
            }
        }
        if let Some(key) = &key {
            let kept = if started.is_empty() {
                self.idempotency.abandon(key).await
            } else {
                self.idempotency
                    .finish(key, &started, self.config.idempotency_window, self.now())
                    .await
            };
            if let Err(e) = kept {
                tracing::warn!(path, error = %e, "could not record the webhook's idempotency key");
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((started, false)),
        }
    }
}

fn body_data(path: &str, body: &[u8]) -> Result<Value, WebhookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    match std::str::from_utf8(body) {
        Ok(text) => Ok(Value::String(text.to_owned())),
        Err(_) => Err(WebhookError::BodyNotText {
            path: path.to_owned(),
        }),
    }
}
