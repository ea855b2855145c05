//! Workflow definitions as users write them: the original SPANE JSON format, camelCase on the wire.
//!
//! These types are the *source* form. [`WorkflowDefinition::compile`](crate::WorkflowDefinition::compile)
//! validates one and turns it into a [`CompiledWorkflow`](crate::CompiledWorkflow) that the engine runs.
//! Unknown fields are kept (in `extra`), so a definition written for the original round-trips unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow: a DAG of typed nodes plus optional triggers.
///
/// ```
/// use spane_core::WorkflowDefinition;
///
/// let wf: WorkflowDefinition = serde_json::from_str(r#"{
///   "id": "example", "name": "Example", "entryNodeId": "start",
///   "nodes": [
///     {"id": "start", "type": "transform", "config": {}, "inputs": [], "outputs": ["process"]},
///     {"id": "process", "type": "http", "config": {"url": "https://api.example.com"},
///      "inputs": ["start"], "outputs": []}
///   ]
/// }"#).unwrap();
/// assert_eq!(wf.nodes.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDefinition {
    /// Unique workflow id, chosen by the user.
    pub id: String,
    /// Human-readable name (empty when absent; an empty name is not written back, so a
    /// definition without one round-trips unchanged).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Optional entry node; when set it must name a root (a node without inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_node_id: Option<String>,
    /// The nodes of the graph.
    pub nodes: Vec<NodeDefinition>,
    /// Webhook and schedule triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<Trigger>>,
    /// Fields this version does not interpret, kept so that definitions round-trip unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One node of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct NodeDefinition {
    /// Node id, unique within the workflow.
    pub id: String,
    /// Node type: the name an executor is registered under, or a built-in type
    /// (`delay`, `sub-workflow`).
    #[serde(rename = "type")]
    pub node_type: String,
    /// Free-form configuration handed to the executor. The engine itself reads `retryPolicy`,
    /// `circuitBreaker`, `timeout`, `continueOnFail`, and the delay and sub-workflow keys.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// Ids of the parents of this node.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Ids of the children of this node.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Fields this version does not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NodeDefinition {
    /// A node with the given id and type, an empty config and no edges.
    pub fn new(id: impl Into<String>, node_type: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            node_type: node_type.into(),
            config: Value::Object(Map::new()),
            inputs: Vec::new(),
            outputs: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Sets the node's configuration.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }
}

/// A trigger that starts a workflow from outside: `{"type": "webhook" | "schedule", "config": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "config", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Trigger {
    /// Start on an HTTP request to `path` (and `method`, when given).
    Webhook(WebhookTrigger),
    /// Start on a cron schedule.
    Schedule(ScheduleTrigger),
}

/// Configuration of a webhook trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookTrigger {
    /// Path segment the webhook answers on, for example `user-signup`.
    pub path: String,
    /// HTTP method; any method matches when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Fields this version does not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Configuration of a schedule trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleTrigger {
    /// Cron pattern, 5 fields or 6 with seconds first.
    pub cron: String,
    /// IANA timezone name; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Fields this version does not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WorkflowDefinition {
    /// An empty workflow with the given id and name; add nodes with [`WorkflowDefinition::node`].
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            entry_node_id: None,
            nodes: Vec::new(),
            triggers: None,
            extra: Map::new(),
        }
    }

    /// Adds a node.
    pub fn node(mut self, node: NodeDefinition) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds the edge `from → to`, writing both `from.outputs` and `to.inputs` so they agree.
    /// Unknown ids are left for validation to report.
    pub fn edge(mut self, from: &str, to: &str) -> Self {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.id == from) {
            n.outputs.push(to.to_owned());
        }
        if let Some(n) = self.nodes.iter_mut().find(|n| n.id == to) {
            n.inputs.push(from.to_owned());
        }
        self
    }

    /// Adds a trigger.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.triggers.get_or_insert_with(Vec::new).push(trigger);
        self
    }

    /// Parses a definition from JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The definition as JSON, in the original's camelCase format.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
