//! # spane-triggers
//!
//! What starts workflows from outside: cron schedules, one-shot schedules and webhooks.
//!
//! - [`CronSchedule`]: a cron pattern (5 fields, or 6 with seconds first) in an IANA time zone.
//! - [`ScheduleSpec`] / [`ScheduleRecord`]: a schedule as upserted (id
//!   `schedule:{workflowId}:{cron}`, time zone, [`CatchUp`] policy, data) and as stored (next
//!   fire, last fire, last execution id, counts).
//! - [`ScheduleStore`]: where schedules live, in memory ([`MemoryScheduleStore`]) or on Redis
//!   ([`RedisTriggerStore`]). Its [`claim`](ScheduleStore::claim) is an atomic compare-and-set
//!   of a schedule's next fire time, which makes each tick fire once across any number of
//!   engine instances, with no lock to expire mid-fire. The Redis store connects through
//!   `spane-redis` (`redis://`, or `rediss://` with the `tls-rustls` feature).
//! - [`plan_fires`]: the pure decision of which due ticks fire under a catch-up policy.
//! - [`WebhookRouter`], [`SignatureConfig`], [`IdempotencyStore`]: webhook matching, HMAC-SHA256
//!   verification, idempotent redelivery.
//! - [`Triggers`]: all of it for one engine instance, with the runner that fires due schedules
//!   through a [`Launcher`] (the engine), a [`Clock`] ([`ManualClock`] in tests), [`metrics`]
//!   and [`TriggerEvent`]s.
//!
//! The engine (`spane::WorkflowEngine`) drives this crate; use it directly to build another
//! front end.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use chrono::{TimeZone, Utc};
//! use serde_json::Value;
//! use spane_triggers::*;
//!
//! struct Print;
//! #[async_trait::async_trait]
//! impl Launcher for Print {
//!     async fn launch(&self, _workflow: &str, data: Value) -> Result<spane_core::ExecutionId, LaunchError> {
//!         assert_eq!(data["_trigger"]["tick"], "2026-01-05T09:00:00.000Z");
//!         Ok(spane_core::ExecutionId::new())
//!     }
//! }
//!
//! let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap()));
//! let triggers = Triggers::in_memory(TriggerConfig::default().clock(clock.clone()));
//! triggers.upsert(&ScheduleSpec::cron("report", "0 9 * * 1-5")).await.unwrap();
//! clock.advance(chrono::Duration::hours(1));
//! let pass = triggers.run_due(&Print).await.unwrap();
//! assert_eq!(pass.fired.len(), 1);
//! # });
//! ```

mod clock;
mod config;
mod cron;
mod error;
mod events;
mod launcher;
pub mod metrics;
mod runner;
mod schedule;
mod store;
mod webhook;

/// The `chrono` crate, whose `DateTime<Utc>` the schedule API takes and returns.
pub use chrono;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::TriggerConfig;
pub use cron::CronSchedule;
pub use error::{TriggerError, WebhookError};
pub use events::{PassReport, TriggerEvent};
pub use launcher::{LaunchError, Launcher};
pub use runner::Triggers;
pub use schedule::{
    CatchUp, FirePlan, MAX_TICKS_PER_PASS, ScheduleKind, ScheduleRecord, ScheduleSource,
    ScheduleSpec, plan_fires,
};
#[cfg(feature = "redis")]
pub use store::RedisTriggerStore;
pub use store::{Claim, MemoryScheduleStore, ScheduleStore, Upserted};
pub use webhook::{
    DEFAULT_SIGNATURE_HEADER, DEFAULT_TOLERANCE, Delivery, IN_PROGRESS_TTL, IdempotencyStore,
    MemoryIdempotencyStore, SignatureConfig, WebhookDelivery, WebhookRoute, WebhookRouter, header,
    normalize_path, sign,
};
