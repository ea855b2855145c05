//! The REST handlers, one file per resource.

pub(crate) mod breakers;
pub(crate) mod control;
pub(crate) mod dlq;
pub(crate) mod executions;
pub(crate) mod operate;
pub(crate) mod schedules;
pub(crate) mod system;
pub(crate) mod webhooks;
pub(crate) mod workflows;

use std::sync::Arc;

use spane::WorkflowEngine;

use crate::HttpConfig;

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) engine: WorkflowEngine,
    pub(crate) config: Arc<HttpConfig>,
}
