//! # spane-triggers
//!
//! What starts workflows from outside: webhook routing and cron schedules.
//!
//! Available now, as pure building blocks:
//! - [`WebhookRouter`] — finds the workflows whose webhook trigger matches a path and method.
//! - [`Schedule`] — a parsed cron pattern (5 fields, or 6 with seconds) in an IANA timezone,
//!   with its next fire time.
//!
//! Coming with the triggers issue: the schedule runner that fires each occurrence exactly once
//! across engine instances (a Redis lease per occurrence), and the engine's `trigger_webhook`.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use spane_core::{Trigger, WorkflowDefinition, parse_cron};

/// Errors of the trigger building blocks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// The cron pattern does not parse.
    #[error("invalid cron pattern {pattern:?}: {reason}")]
    InvalidCron {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The timezone is not an IANA name.
    #[error("unknown timezone {0:?}")]
    InvalidTimezone(String),
}

/// Webhook triggers of registered workflows, by path.
#[derive(Debug, Clone, Default)]
pub struct WebhookRouter {
    routes: BTreeMap<String, Vec<(String, Option<String>)>>,
}

impl WebhookRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the routes of `workflow` with its current webhook triggers.
    pub fn register(&mut self, workflow: &WorkflowDefinition) {
        self.remove(&workflow.id);
        for t in workflow.triggers.iter().flatten() {
            if let Trigger::Webhook(w) = t {
                self.routes.entry(normalize(&w.path)).or_default().push((
                    workflow.id.clone(),
                    w.method.as_ref().map(|m| m.to_ascii_uppercase()),
                ));
            }
        }
    }

    /// Removes every route of `workflow_id`.
    pub fn remove(&mut self, workflow_id: &str) {
        self.routes.retain(|_, v| {
            v.retain(|(w, _)| w != workflow_id);
            !v.is_empty()
        });
    }

    /// Workflows whose trigger matches `path` and `method` (a trigger without a method matches
    /// every method), in registration order.
    pub fn matches(&self, path: &str, method: &str) -> Vec<&str> {
        let method = method.to_ascii_uppercase();
        self.routes
            .get(&normalize(path))
            .into_iter()
            .flatten()
            .filter(|(_, m)| m.as_deref().is_none_or(|m| m == method))
            .map(|(w, _)| w.as_str())
            .collect()
    }
}

fn normalize(path: &str) -> String {
    path.trim().trim_matches('/').to_owned()
}

/// A cron schedule in a timezone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    timezone: Tz,
}

impl Schedule {
    /// Parses `pattern` (5 fields, or 6 with seconds first) in `timezone` (UTC when `None`).
    pub fn new(pattern: &str, timezone: Option<&str>) -> Result<Self, TriggerError> {
        let cron = parse_cron(pattern).map_err(|reason| TriggerError::InvalidCron {
            pattern: pattern.to_owned(),
            reason,
        })?;
        let timezone = match timezone {
            None => Tz::UTC,
            Some(name) => {
                Tz::from_str(name).map_err(|_| TriggerError::InvalidTimezone(name.to_owned()))?
            }
        };
        Ok(Self { cron, timezone })
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use spane_core::{NodeDefinition, WebhookTrigger};

    fn hook(path: &str, method: Option<&str>) -> Trigger {
        Trigger::Webhook(WebhookTrigger {
            path: path.into(),
            method: method.map(Into::into),
            extra: Default::default(),
        })
    }

    #[test]
    fn webhook_matches_path_and_method() {
        let a = WorkflowDefinition::new("a", "A")
            .node(NodeDefinition::new("n", "x"))
            .trigger(hook("user-signup", Some("POST")));
        let b = WorkflowDefinition::new("b", "B")
            .node(NodeDefinition::new("n", "x"))
            .trigger(hook("/user-signup/", None));
        let mut router = WebhookRouter::new();
        router.register(&a);
        router.register(&b);
        assert_eq!(router.matches("user-signup", "post"), vec!["a", "b"]);
        assert_eq!(router.matches("user-signup", "GET"), vec!["b"]);
        assert!(router.matches("other", "POST").is_empty());
        router.remove("b");
        assert_eq!(router.matches("user-signup", "GET"), Vec::<&str>::new());
    }

    #[test]
    fn schedule_fires_in_its_timezone() {
        let s = Schedule::new("0 9 * * *", Some("America/New_York")).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        // 09:00 in New York in January is 14:00 UTC.
        assert_eq!(
            s.next_after(after),
            Some(Utc.with_ymd_and_hms(2026, 1, 15, 14, 0, 0).unwrap())
        );
        let secs = Schedule::new("*/10 * * * * *", None).unwrap();
        assert_eq!(
            secs.next_after(after),
            Some(Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 10).unwrap())
        );
        assert!(matches!(
            Schedule::new("0 9 * * *", Some("Mars/Olympus")),
            Err(TriggerError::InvalidTimezone(_))
        ));
    }
}
