//! The node registry: executors by node type.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::dag::NodeTypes;
use crate::executor::NodeExecutor;
use crate::settings::{DELAY_NODE_TYPE, SUB_WORKFLOW_NODE_TYPE};

/// Executors by node type. Built-in types (`delay`, `sub-workflow`) need no executor.
///
/// ```
/// use spane_core::{executor_fn, NodeOutput, NodeRegistry};
///
/// let mut registry = NodeRegistry::new();
/// registry.register("echo", executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }));
/// assert!(registry.has("echo"));
/// ```
#[derive(Clone)]
pub struct NodeRegistry {
    executors: HashMap<String, Arc<dyn NodeExecutor>>,
    external: HashMap<String, KeyExtractor>,
    rate_limits: HashMap<String, RateLimit>,
    cpu_heavy: std::collections::HashSet<String>,
}

/// Derives a circuit-breaker key from a node's `config` (for example the host of a URL).
pub type KeyExtractor = Arc<dyn Fn(&Value) -> Option<String> + Send + Sync>;

/// At most `max` runs per `per`, across every worker sharing the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Runs allowed per window.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

impl Default for NodeRegistry {
    /// An empty registry in which `http`, `webhook`, `database` and `email` are external node
    /// types with the original's breaker keys: the URL host, `config.path`,
    /// `config.connectionId` and `config.smtpHost`.
    fn default() -> Self {
        let mut r = Self {
            executors: HashMap::new(),
            external: HashMap::new(),
            rate_limits: HashMap::new(),
            cpu_heavy: Default::default(),
        };
        r.register_external("http", |c| c["url"].as_str().and_then(url_host));
        r.register_external("webhook", |c| c["path"].as_str().map(str::to_owned));
        r.register_external("database", |c| match &c["connectionId"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        r.register_external("email", |c| c["smtpHost"].as_str().map(str::to_owned));
        r
    }
}

/// The host of `url` (`https://api.example.com:8443/x` → `api.example.com`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&str> = self.executors.keys().map(String::as_str).collect();
        types.sort_unstable();
        f.debug_struct("NodeRegistry")
            .field("types", &types)
            .finish()
    }
}

impl NodeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `executor` for `node_type`, replacing any earlier one.
    pub fn register(
        &mut self,
        node_type: impl Into<String>,
        executor: impl NodeExecutor,
    ) -> &mut Self {
        self.executors.insert(node_type.into(), Arc::new(executor));
        self
    }

    /// Registers an executor that is already shared.
    pub fn register_arc(
        &mut self,
        node_type: impl Into<String>,
        executor: Arc<dyn NodeExecutor>,
    ) -> &mut Self {
        self.executors.insert(node_type.into(), executor);
        self
    }

    /// The executor for `node_type`.
    pub fn get(&self, node_type: &str) -> Option<&Arc<dyn NodeExecutor>> {
        self.executors.get(node_type)
    }

    /// Whether an executor is registered for `node_type`, or it is built in.
    pub fn has(&self, node_type: &str) -> bool {
        self.executors.contains_key(node_type)
            || node_type == DELAY_NODE_TYPE
            || node_type == SUB_WORKFLOW_NODE_TYPE
    }

    /// Marks `node_type` as external: its nodes run behind a circuit breaker keyed
    /// `{type}:{key}`, with `key` derived from the node's config (nodes whose config yields no
    /// key share the breaker `{type}:default`).
    pub fn register_external(
        &mut self,
        node_type: impl Into<String>,
        key: impl Fn(&Value) -> Option<String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.external.insert(node_type.into(), Arc::new(key));
        self
    }

    /// The circuit-breaker key of a node of `node_type` with `config`, when the type is
    /// external.
    pub fn breaker_key(&self, node_type: &str, config: &Value) -> Option<String> {
        let extract = self.external.get(node_type)?;
        let key = extract(config).unwrap_or_else(|| "default".to_owned());
        Some(format!("{node_type}:{key}"))
    }

    /// Limits `node_type` to `max` runs per `per`, across every worker sharing the backend.
    pub fn register_rate_limit(
        &mut self,
        node_type: impl Into<String>,
        max: u32,
        per: Duration,
    ) -> &mut Self {
        self.rate_limits.insert(
            node_type.into(),
            RateLimit {
                max: max.max(1),
                per: per.max(Duration::from_millis(1)),
            },
        );
        self
    }

    /// The rate limit of `node_type`, if any.
    pub fn rate_limit(&self, node_type: &str) -> Option<RateLimit> {
        self.rate_limits.get(node_type).copied()
    }

    /// Runs executors of `node_type` on the engine's separate CPU pool, so that CPU-bound work
    /// never stalls the async runtime that claims and commits.
    pub fn mark_cpu_heavy(&mut self, node_type: impl Into<String>) -> &mut Self {
        self.cpu_heavy.insert(node_type.into());
        self
    }

    /// Whether any node type is marked CPU-heavy.
    pub fn has_cpu_heavy_types(&self) -> bool {
        !self.cpu_heavy.is_empty()
    }

    /// Whether `node_type` runs on the CPU pool.
    pub fn is_cpu_heavy(&self, node_type: &str) -> bool {
        self.cpu_heavy.contains(node_type)
    }

    /// Registered node types (built-ins excluded), sorted.
    pub fn types(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.executors.keys().map(String::as_str).collect();
        t.sort_unstable();
        t
    }
}

impl NodeTypes for NodeRegistry {
    fn has_type(&self, node_type: &str) -> bool {
        self.has(node_type)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn default_external_types_have_the_original_breaker_keys() {
        let r = NodeRegistry::new();
        assert_eq!(
            r.breaker_key(
                "http",
                &json!({"url": "https://API.example.com:8443/v1?x=1"})
            ),
            Some("http:api.example.com".into())
        );
        assert_eq!(
            r.breaker_key("webhook", &json!({"path": "hooks/a"})),
            Some("webhook:hooks/a".into())
        );
        assert_eq!(
            r.breaker_key("database", &json!({"connectionId": 7})),
            Some("database:7".into())
        );
        assert_eq!(
            r.breaker_key("email", &json!({"smtpHost": "smtp.x"})),
            Some("email:smtp.x".into())
        );
        assert_eq!(
            r.breaker_key("http", &json!({})),
            Some("http:default".into())
        );
        assert_eq!(r.breaker_key("transform", &json!({})), None);
    }

    #[test]
    fn users_register_their_own_external_types_and_limits() {
        let mut r = NodeRegistry::new();
        r.register_external("llm", |c| c["model"].as_str().map(str::to_owned));
        r.register_rate_limit("llm", 5, Duration::from_secs(1));
        r.mark_cpu_heavy("resize");
        assert_eq!(
            r.breaker_key("llm", &json!({"model": "m1"})),
            Some("llm:m1".into())
        );
        assert_eq!(r.rate_limit("llm").unwrap().max, 5);
        assert!(r.is_cpu_heavy("resize") && !r.is_cpu_heavy("llm"));
    }
}
