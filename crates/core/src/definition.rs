//! Workflow definitions as users write them: the original SPANE JSON format, camelCase on the wire.
//!
//! These types are the *source* form. [`WorkflowDefinition::compile`](crate::WorkflowDefinition::compile)
//! validates one and turns it into a [`CompiledWorkflow`](crate::CompiledWorkflow) that the engine runs.
//! Unknown fields are kept (in `extra`), so a definition written for the original round-trips unchanged.

use std::collections::HashMap;
use std::fmt;

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
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// Node positions by id for [`WorkflowDefinition::edge`]; never serialized or compared.
    #[serde(skip)]
    #[cfg_attr(feature = "schemars", schemars(skip))]
    lookup: NodeLookup,
}

impl fmt::Debug for WorkflowDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field but the lookup cache, which is derived from `nodes`.
        f.debug_struct("WorkflowDefinition")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("entry_node_id", &self.entry_node_id)
            .field("nodes", &self.nodes)
            .field("triggers", &self.triggers)
            .field("extra", &self.extra)
            .finish()
    }
}

/// Positions of nodes by id, so that building a graph edge by edge is linear, not quadratic.
///
/// `nodes` is a public field and may change behind the cache's back, so the cache is a hint: a
/// hit is checked against `nodes`, new nodes are indexed on the first miss, and a miss that
/// remains rebuilds it.
#[derive(Clone, Default)]
struct NodeLookup {
    positions: HashMap<String, usize>,
    /// How many leading entries of `nodes` are indexed.
    covered: usize,
}

impl NodeLookup {
    /// The position of the first node called `id`.
    fn find(&mut self, nodes: &[NodeDefinition], id: &str) -> Option<usize> {
        let at = |i: usize| nodes.get(i).is_some_and(|n| n.id == id);
        if let Some(&i) = self.positions.get(id).filter(|&&i| at(i)) {
            return Some(i);
        }
        if self.covered > nodes.len() {
            self.positions.clear();
            self.covered = 0;
        }
        self.index_from(nodes, self.covered);
        if let Some(&i) = self.positions.get(id).filter(|&&i| at(i)) {
            return Some(i);
        }
        // Absent, or the nodes were changed in place: index them again from scratch.
        self.positions.clear();
        self.index_from(nodes, 0);
        self.positions.get(id).copied()
    }

    fn index_from(&mut self, nodes: &[NodeDefinition], start: usize) {
        for (i, n) in nodes.iter().enumerate().skip(start) {
            // The first node with an id wins, like a scan would (duplicates fail validation).
            self.positions.entry(n.id.clone()).or_insert(i);
        }
        self.covered = nodes.len();
    }
}

impl PartialEq for NodeLookup {
    /// A cache: two definitions with the same fields are equal whatever they looked up.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
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
            lookup: NodeLookup::default(),
        }
    }

    /// Adds a node.
    pub fn node(mut self, node: NodeDefinition) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds the edge `from → to`, writing both `from.outputs` and `to.inputs` so they agree.
    /// Unknown ids are left for validation to report.
    ///
    /// Nodes are found through an index kept alongside `nodes`, so a generated graph of many
    /// nodes and edges builds in linear time.
    pub fn edge(mut self, from: &str, to: &str) -> Self {
        let from_at = self.lookup.find(&self.nodes, from);
        if let Some(n) = from_at.and_then(|i| self.nodes.get_mut(i)) {
            n.outputs.push(to.to_owned());
        }
        let to_at = self.lookup.find(&self.nodes, to);
        if let Some(n) = to_at.and_then(|i| self.nodes.get_mut(i)) {
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

#[cfg(test)]
mod edge_lookup {
    use super::*;

    fn ids(list: &[String]) -> Vec<&str> {
        list.iter().map(String::as_str).collect()
    }

    /// A generated chain: every edge lands on the right nodes, and the cache is invisible in
    /// JSON, equality and `Debug`.
    #[test]
    fn generated_chain_builds_and_round_trips() {
        let n = 2_000;
        let mut wf = WorkflowDefinition::new("chain", "Chain");
        for i in 0..n {
            wf = wf.node(NodeDefinition::new(format!("n{i}"), "t"));
        }
        for i in 1..n {
            wf = wf.edge(&format!("n{}", i - 1), &format!("n{i}"));
        }
        assert_eq!(ids(&wf.nodes[0].outputs), ["n1"]);
        assert_eq!(ids(&wf.nodes[n - 1].inputs), [format!("n{}", n - 2)]);
        assert!(wf.nodes.iter().skip(1).all(|node| node.inputs.len() == 1));

        let json = wf.to_json();
        assert!(json.get("lookup").is_none());
        let back: WorkflowDefinition = serde_json::from_value(json).unwrap();
        assert_eq!(back, wf);
        assert!(!format!("{wf:?}").contains("lookup"));
    }

    /// Nodes changed through the public field after edges were added still get theirs.
    #[test]
    fn edges_follow_direct_changes_to_nodes() {
        let mut wf = WorkflowDefinition::new("wf", "")
            .node(NodeDefinition::new("a", "t"))
            .node(NodeDefinition::new("b", "t"))
            .edge("a", "b");
        // Pushed directly, then removed from the front and renamed in place.
        wf.nodes.push(NodeDefinition::new("c", "t"));
        let mut wf = wf.edge("b", "c");
        wf.nodes.remove(0);
        wf.nodes[0].id = "b2".into();
        let wf = wf.edge("b2", "c").edge("b", "c").edge("missing", "c");

        assert_eq!(wf.nodes.len(), 2);
        assert_eq!(ids(&wf.nodes[0].outputs), ["c", "c"]);
        assert_eq!(ids(&wf.nodes[1].inputs), ["b", "b2", "b", "missing"]);
    }
}
