//! Webhook routes of registered workflows, by path.

use std::collections::BTreeMap;

use spane_core::{Trigger, WorkflowDefinition};

use super::signature::SignatureConfig;
use crate::error::TriggerError;

/// One workflow's webhook trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookRoute {
    /// The workflow it starts.
    pub workflow_id: String,
    /// The method it answers (upper case); every method when `None`.
    pub method: Option<String>,
    /// Signature verification, when the trigger asks for it.
    pub signature: Option<SignatureConfig>,
}

/// Webhook triggers of registered workflows, by normalised path.
#[derive(Debug, Clone, Default)]
pub struct WebhookRouter {
    routes: BTreeMap<String, Vec<WebhookRoute>>,
}

/// A path with surrounding spaces and slashes removed, and runs of slashes inside made one:
/// `"/hooks//signup/"` is `"hooks/signup"`.
pub fn normalize_path(path: &str) -> String {
    path.trim()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

impl WebhookRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// The routes `workflow`'s webhook triggers would add, checked (signature settings).
    pub fn routes_of(
        workflow: &WorkflowDefinition,
    ) -> Result<Vec<(String, WebhookRoute)>, TriggerError> {
        let mut out = Vec::new();
        for t in workflow.triggers.iter().flatten() {
            if let Trigger::Webhook(w) = t {
                let signature = SignatureConfig::from_trigger(&workflow.id, w)?;
                out.push((
                    normalize_path(&w.path),
                    WebhookRoute {
                        workflow_id: workflow.id.clone(),
                        method: w.method.as_ref().map(|m| m.to_ascii_uppercase()),
                        signature,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Replaces the routes of `workflow` with its current webhook triggers. On an invalid
    /// signature setting nothing changes.
    pub fn register(&mut self, workflow: &WorkflowDefinition) -> Result<(), TriggerError> {
        let routes = Self::routes_of(workflow)?;
        self.remove(&workflow.id);
        for (path, route) in routes {
            self.routes.entry(path).or_default().push(route);
        }
        Ok(())
    }

    /// Removes every route of `workflow_id`.
    pub fn remove(&mut self, workflow_id: &str) {
        self.routes.retain(|_, v| {
            v.retain(|r| r.workflow_id != workflow_id);
            !v.is_empty()
        });
    }

    /// Routes whose trigger matches `path` (normalised) and `method` (any case; a trigger
    /// without a method matches every method), in registration order.
    pub fn matches(&self, path: &str, method: &str) -> Vec<&WebhookRoute> {
        let method = method.trim().to_ascii_uppercase();
        self.routes
            .get(&normalize_path(path))
            .into_iter()
            .flatten()
            .filter(|r| r.method.as_deref().is_none_or(|m| m == method))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spane_core::{NodeDefinition, WebhookTrigger};

    fn hook(path: &str, method: Option<&str>) -> Trigger {
        Trigger::Webhook(WebhookTrigger {
            path: path.into(),
            method: method.map(Into::into),
            extra: Default::default(),
        })
    }

    fn ids(routes: Vec<&WebhookRoute>) -> Vec<&str> {
        routes.iter().map(|r| r.workflow_id.as_str()).collect()
    }

    #[test]
    fn matching_table() {
        let wf = |id: &str, t: Trigger| {
            WorkflowDefinition::new(id, id)
                .node(NodeDefinition::new("n", "x"))
                .trigger(t)
        };
        let mut router = WebhookRouter::new();
        router
            .register(&wf("post-only", hook("user-signup", Some("post"))))
            .unwrap();
        router
            .register(&wf("any", hook("/user-signup/", None)))
            .unwrap();
        router
            .register(&wf("nested", hook("hooks//a/b", Some("PUT"))))
            .unwrap();
        // (path, method, expected workflows)
        let table: &[(&str, &str, &[&str])] = &[
            ("user-signup", "POST", &["post-only", "any"]),
            ("/user-signup", "post", &["post-only", "any"]),
            ("//user-signup//", "Post", &["post-only", "any"]),
            ("user-signup", "GET", &["any"]),
            ("user-signup", "DELETE", &["any"]),
            ("user-signup/extra", "POST", &[]),
            ("user", "POST", &[]),
            ("hooks/a/b", "PUT", &["nested"]),
            ("/hooks/a//b/", "put", &["nested"]),
            ("hooks/a/b", "POST", &[]),
            ("", "POST", &[]),
        ];
        for (path, method, want) in table {
            assert_eq!(ids(router.matches(path, method)), *want, "{method} {path}");
        }
        router.remove("any");
        assert_eq!(
            ids(router.matches("user-signup", "GET")),
            Vec::<&str>::new()
        );
        // Re-registering replaces the workflow's routes.
        router
            .register(&wf("post-only", hook("renamed", None)))
            .unwrap();
        assert!(router.matches("user-signup", "POST").is_empty());
        assert_eq!(ids(router.matches("renamed", "GET")), vec!["post-only"]);
    }
}
