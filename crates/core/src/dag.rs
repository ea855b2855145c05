//! Compiling a definition: validation of every rule at once, and the indexed graph the engine runs.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use serde_json::Value;

use crate::definition::{NodeDefinition, Trigger, WorkflowDefinition};
use crate::error::{ValidationError, ValidationErrors};
use crate::settings::{DELAY_NODE_TYPE, NodeSettings, SUB_WORKFLOW_NODE_TYPE};

/// Position of a node in [`CompiledWorkflow::nodes`].
pub type NodeIndex = usize;

/// Answers whether a node type can be run; implemented by
/// [`NodeRegistry`](crate::NodeRegistry). Built-in types (`delay`, `sub-workflow`) are always known.
pub trait NodeTypes {
    /// Whether an executor is registered for `node_type`.
    fn has_type(&self, node_type: &str) -> bool;
}

/// Accepts every node type: for tools that validate a graph without a registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyNodeType;

impl NodeTypes for AnyNodeType {
    fn has_type(&self, _node_type: &str) -> bool {
        true
    }
}

/// One node of a compiled workflow.
#[derive(Debug, Clone)]
pub struct CompiledNode {
    /// Node id.
    pub id: String,
    /// Node type.
    pub node_type: String,
    /// The node's `config` as written.
    pub config: Value,
    /// Parents, in the order of the node's `inputs`.
    pub parents: Vec<NodeIndex>,
    /// Children, in the order of the node's `outputs`.
    pub children: Vec<NodeIndex>,
    /// What the engine reads from `config`.
    pub settings: NodeSettings,
}

impl CompiledNode {
    /// Whether this is a built-in `delay` node.
    pub fn is_delay(&self) -> bool {
        self.node_type == DELAY_NODE_TYPE
    }

    /// Whether this is a built-in `sub-workflow` node.
    pub fn is_sub_workflow(&self) -> bool {
        self.node_type == SUB_WORKFLOW_NODE_TYPE
    }
}

/// A validated workflow: an acyclic graph with consistent edges, indexed for the engine.
#[derive(Debug, Clone)]
pub struct CompiledWorkflow {
    definition: WorkflowDefinition,
    nodes: Vec<CompiledNode>,
    index: HashMap<String, NodeIndex>,
    roots: Vec<NodeIndex>,
}

impl CompiledWorkflow {
    /// The definition this was compiled from.
    pub fn definition(&self) -> &WorkflowDefinition {
        &self.definition
    }

    /// The workflow id.
    pub fn id(&self) -> &str {
        &self.definition.id
    }

    /// All nodes; [`NodeIndex`] values index this slice.
    pub fn nodes(&self) -> &[CompiledNode] {
        &self.nodes
    }

    /// The node at `index`.
    pub fn node(&self, index: NodeIndex) -> &CompiledNode {
        &self.nodes[index]
    }

    /// The index of the node called `id`.
    pub fn index_of(&self, id: &str) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// Nodes without inputs, in definition order. Every root receives the initial data.
    pub fn roots(&self) -> &[NodeIndex] {
        &self.roots
    }

    /// Nodes without outputs, in definition order.
    pub fn leaves(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].children.is_empty())
    }
}

impl WorkflowDefinition {
    /// Validates the definition against every rule and compiles it, or reports every problem found
    /// (cycles excepted: the first ten found are named, which is enough to reject and to fix).
    ///
    /// ```
    /// use spane_core::{AnyNodeType, NodeDefinition, WorkflowDefinition};
    ///
    /// let wf = WorkflowDefinition::new("wf", "Two steps")
    ///     .node(NodeDefinition::new("a", "transform"))
    ///     .node(NodeDefinition::new("b", "transform"))
    ///     .edge("a", "b");
    /// let compiled = wf.compile(&AnyNodeType).unwrap();
    /// assert_eq!(compiled.roots(), &[0]);
    /// ```
    pub fn compile(&self, types: &dyn NodeTypes) -> Result<CompiledWorkflow, ValidationErrors> {
        let mut errors = Vec::new();
        if self.id.trim().is_empty() {
            errors.push(ValidationError::EmptyWorkflowId);
        }
        if self.nodes.is_empty() {
            errors.push(ValidationError::NoNodes);
        }

        let index = index_nodes(self, &mut errors);
        check_edges(self, &index, &mut errors);

        let roots: Vec<NodeIndex> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].inputs.is_empty())
            .collect();
        if roots.is_empty() && !self.nodes.is_empty() {
            errors.push(ValidationError::NoRoot);
        }
        if let Some(entry) = &self.entry_node_id {
            match index.get(entry.as_str()) {
                None => errors.push(ValidationError::UnknownEntry {
                    entry: entry.clone(),
                }),
                Some(&i) if !self.nodes[i].inputs.is_empty() => {
                    errors.push(ValidationError::EntryNotRoot {
                        entry: entry.clone(),
                        inputs: self.nodes[i].inputs.clone(),
                    });
                }
                Some(_) => {}
            }
        }

        let adjacency = adjacency(self, &index);
        find_cycles(self, &adjacency, &mut errors);

        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            let builtin = n.node_type == DELAY_NODE_TYPE || n.node_type == SUB_WORKFLOW_NODE_TYPE;
            if !builtin && !types.has_type(&n.node_type) {
                errors.push(ValidationError::UnknownNodeType {
                    node: n.id.clone(),
                    node_type: n.node_type.clone(),
                });
            }
            let settings = NodeSettings::parse(&n.id, &n.node_type, &n.config, &mut errors);
            nodes.push(CompiledNode {
                id: n.id.clone(),
                node_type: n.node_type.clone(),
                config: n.config.clone(),
                parents: resolve(&n.inputs, &index),
                children: adjacency[i].clone(),
                settings,
            });
        }

        for (i, trigger) in self.triggers.iter().flatten().enumerate() {
            check_trigger(i, trigger, &mut errors);
        }

        if errors.is_empty() {
            Ok(CompiledWorkflow {
                definition: self.clone(),
                nodes,
                index: index.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                roots,
            })
        } else {
            Err(ValidationErrors {
                workflow_id: self.id.clone(),
                errors,
            })
        }
    }
}

fn index_nodes<'a>(
    def: &'a WorkflowDefinition,
    errors: &mut Vec<ValidationError>,
) -> HashMap<&'a str, NodeIndex> {
    let mut index = HashMap::with_capacity(def.nodes.len());
    let mut reported = HashSet::new();
    for (i, n) in def.nodes.iter().enumerate() {
        if n.id.trim().is_empty() {
            errors.push(ValidationError::EmptyNodeId { index: i });
            continue;
        }
        if index.contains_key(n.id.as_str()) {
            // The first occurrence stays, so that later checks are stable.
            if reported.insert(n.id.as_str()) {
                errors.push(ValidationError::DuplicateNodeId { node: n.id.clone() });
            }
        } else {
            index.insert(n.id.as_str(), i);
        }
    }
    index
}

fn check_edges(
    def: &WorkflowDefinition,
    index: &HashMap<&str, NodeIndex>,
    errors: &mut Vec<ValidationError>,
) {
    // `(node, id)` for every id in a node's `inputs` / `outputs`, so that each edge is checked
    // against the other side in constant time: a node may have thousands of children.
    let listed = |field: fn(&NodeDefinition) -> &Vec<String>| -> HashSet<(NodeIndex, &str)> {
        def.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| field(n).iter().map(move |r| (i, r.as_str())))
            .collect()
    };
    let listed_inputs = listed(|n| &n.inputs);
    let listed_outputs = listed(|n| &n.outputs);
    for n in &def.nodes {
        for (field, list, counterpart) in [
            ("inputs", &n.inputs, "outputs"),
            ("outputs", &n.outputs, "inputs"),
        ] {
            let mut seen = HashSet::new();
            for r in list {
                if !seen.insert(r.as_str()) {
                    errors.push(ValidationError::RepeatedReference {
                        node: n.id.clone(),
                        field,
                        reference: r.clone(),
                    });
                    continue;
                }
                let Some(&other) = index.get(r.as_str()) else {
                    errors.push(ValidationError::UnknownReference {
                        node: n.id.clone(),
                        field,
                        reference: r.clone(),
                    });
                    continue;
                };
                let back = if field == "inputs" {
                    &listed_outputs
                } else {
                    &listed_inputs
                };
                if !back.contains(&(other, n.id.as_str())) {
                    errors.push(ValidationError::EdgeMismatch {
                        node: n.id.clone(),
                        field,
                        other: r.clone(),
                        counterpart,
                    });
                }
            }
        }
    }
}

/// The known nodes among `ids`, each once, in order.
fn resolve(ids: &[String], index: &HashMap<&str, NodeIndex>) -> Vec<NodeIndex> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter()
        .filter_map(|id| index.get(id.as_str()).copied())
        .filter(|&i| seen.insert(i))
        .collect()
}

/// Children of each node from `outputs`, plus edges that only `inputs` declares, so that a cycle
/// is found even when the two lists disagree.
fn adjacency(def: &WorkflowDefinition, index: &HashMap<&str, NodeIndex>) -> Vec<Vec<NodeIndex>> {
    let mut adj: Vec<Vec<NodeIndex>> = def
        .nodes
        .iter()
        .map(|n| resolve(&n.outputs, index))
        .collect();
    let mut edges: HashSet<(NodeIndex, NodeIndex)> = adj
        .iter()
        .enumerate()
        .flat_map(|(p, children)| children.iter().map(move |&c| (p, c)))
        .collect();
    for (i, n) in def.nodes.iter().enumerate() {
        for p in resolve(&n.inputs, index) {
            if edges.insert((p, i)) {
                adj[p].push(i);
            }
        }
    }
    adj
}

/// At most this many cycles are reported. Each names every node on it, so one per back edge
/// could take memory quadratic in the size of the definition (n nodes that all lead back to
/// the first make n cycles of up to n nodes each); a few are enough to fix a definition.
pub(crate) const MAX_REPORTED_CYCLES: usize = 10;

fn find_cycles(
    def: &WorkflowDefinition,
    adj: &[Vec<NodeIndex>],
    errors: &mut Vec<ValidationError>,
) {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Grey,
        Black,
    }
    let mut color = vec![Color::White; adj.len()];
    let mut reported: HashSet<Vec<NodeIndex>> = HashSet::new();
    for start in 0..adj.len() {
        if color[start] != Color::White {
            continue;
        }
        // Iterative DFS: (node, next child position); `path` mirrors the grey nodes.
        let mut stack = vec![(start, 0usize)];
        let mut path = vec![start];
        color[start] = Color::Grey;
        while let Some(&mut (node, ref mut pos)) = stack.last_mut() {
            if let Some(&child) = adj[node].get(*pos) {
                *pos += 1;
                match color[child] {
                    Color::White => {
                        color[child] = Color::Grey;
                        stack.push((child, 0));
                        path.push(child);
                    }
                    Color::Grey => {
                        let from = path.iter().position(|&p| p == child).unwrap_or(0);
                        let cycle: Vec<NodeIndex> = path[from..].to_vec();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        if reported.insert(key) {
                            let mut names: Vec<String> =
                                cycle.iter().map(|&i| def.nodes[i].id.clone()).collect();
                            names.push(def.nodes[child].id.clone());
                            errors.push(ValidationError::Cycle { path: names });
                            if reported.len() == MAX_REPORTED_CYCLES {
                                return;
                            }
                        }
                    }
                    Color::Black => {}
                }
            } else {
                color[node] = Color::Black;
                stack.pop();
                path.pop();
            }
        }
    }
}

const HTTP_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn check_trigger(index: usize, trigger: &Trigger, errors: &mut Vec<ValidationError>) {
    match trigger {
        Trigger::Webhook(w) => {
            if w.path.trim().is_empty() || w.path.contains(char::is_whitespace) {
                errors.push(ValidationError::InvalidTrigger {
                    index,
                    kind: "webhook",
                    field: "config.path",
                    value: w.path.clone(),
                    reason: "expected a non-empty path without spaces".to_owned(),
                });
            }
            if let Some(m) = &w.method
                && !HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str())
            {
                errors.push(ValidationError::InvalidTrigger {
                    index,
                    kind: "webhook",
                    field: "config.method",
                    value: m.clone(),
                    reason: format!("expected one of {}", HTTP_METHODS.join(", ")),
                });
            }
        }
        Trigger::Schedule(s) => {
            if let Err(e) = crate::CronPattern::parse(&s.cron) {
                errors.push(ValidationError::InvalidTrigger {
                    index,
                    kind: "schedule",
                    field: "config.cron",
                    value: s.cron.clone(),
                    reason: e,
                });
            }
            if let Some(tz) = &s.timezone
                && chrono_tz::Tz::from_str(tz).is_err()
            {
                errors.push(ValidationError::InvalidTrigger {
                    index,
                    kind: "schedule",
                    field: "config.timezone",
                    value: tz.clone(),
                    reason: "unknown IANA timezone".to_owned(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node `id` with the given edge lists.
    fn node(id: String, inputs: Vec<String>, outputs: Vec<String>) -> NodeDefinition {
        let mut n = NodeDefinition::new(id, "t");
        n.inputs = inputs;
        n.outputs = outputs;
        n
    }

    fn name(i: usize) -> String {
        format!("n{i}")
    }

    fn cycles(errors: &ValidationErrors) -> Vec<&[String]> {
        errors
            .iter()
            .filter_map(|e| match e {
                ValidationError::Cycle { path } => Some(path.as_slice()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reported_cycles_are_capped() {
        // A chain of 2,000 nodes that all lead back to the first has 1,999 cycles; reporting
        // each named about 2 million node ids (and a 20,000-node chain took two minutes in a
        // debug build).
        let n = 2_000;
        let mut wf = WorkflowDefinition::new("wf", "");
        for i in 0..n {
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            if i > 0 {
                inputs.push(name(i - 1));
                outputs.push(name(0));
            } else {
                inputs.extend((1..n).map(name));
            }
            if i + 1 < n {
                outputs.push(name(i + 1));
            }
            wf = wf.node(node(name(i), inputs, outputs));
        }
        let errors = wf.compile(&AnyNodeType).unwrap_err();
        let found = cycles(&errors);
        assert_eq!(found.len(), MAX_REPORTED_CYCLES, "{errors}");
        for path in found {
            assert_eq!(path.first().map(String::as_str), Some("n0"), "{path:?}");
            assert_eq!(path.first(), path.last());
        }
        assert!(
            errors.any(|e| matches!(e, ValidationError::NoRoot)),
            "{errors}"
        );
    }

    #[test]
    fn cycles_below_the_cap_are_all_reported() {
        let wf = (0..3).fold(WorkflowDefinition::new("wf", ""), |wf, i| {
            wf.node(node(name(i), vec![name(i)], vec![name(i)]))
        });
        let errors = wf.compile(&AnyNodeType).unwrap_err();
        assert_eq!(
            cycles(&errors),
            [["n0", "n0"], ["n1", "n1"], ["n2", "n2"]],
            "{errors}"
        );
    }

    #[test]
    fn huge_fan_out_and_fan_in_compile() {
        // One root, 50,000 children, one sink under all of them. Checking, resolving and
        // deduplicating edges used to compare each edge with all its siblings: a 40,000-child
        // fan-out alone took 43 s to compile in a debug build, against about 1 s now. The time
        // is not asserted (speed belongs to benchmarks); a quadratic regression shows up as
        // this test hitting the runner's slow-test limit.
        let n = 50_000;
        let sink = name(n + 1);
        let mut nodes = vec![node(name(0), Vec::new(), (1..=n).map(name).collect())];
        nodes.extend((1..=n).map(|i| node(name(i), vec![name(0)], vec![sink.clone()])));
        nodes.push(node(sink.clone(), (1..=n).map(name).collect(), Vec::new()));
        let wf = nodes
            .into_iter()
            .fold(WorkflowDefinition::new("wf", ""), WorkflowDefinition::node);
        let dag = wf.compile(&AnyNodeType).unwrap();
        assert_eq!(dag.node(0).children.len(), n);
        assert_eq!(dag.node(n + 1).parents.len(), n);
    }
}
