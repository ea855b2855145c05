//! Sub-workflows: the rules that turn a parent's data into a child's input, a child's end into
//! the parent node's outcome, and that bound nesting. Decided here once; the worker and both
//! queue backends only apply them.
//!
//! - **Input:** with no `inputMapping` the child's roots receive the parent node's input as it
//!   is. With one, the child receives a new object: for each `target: source`, the value at the
//!   dotted path `source` of the parent node's input is written at the dotted path `target`
//!   (intermediate objects are created). A source path that names nothing is left out.
//! - **Output:** a child whose graph has one final node (a node without outputs) yields that
//!   node's data (`null` when it was skipped); several final nodes yield `{nodeId: data}` over
//!   those that have data. `outputMapping` then applies to that value, as `inputMapping` does.
//! - **Failure:** a child that failed fails the parent node with a retryable error (the
//!   node's retry policy may start a fresh child); a cancelled child fails it for good. With
//!   `continueOnFail` the node continues with the usual error object plus
//!   `"partialResults": {nodeId: data}` of what the child finished ([`ChildFailure::details`]).
//! - **Depth:** a top-level execution has depth 0, a child its parent's depth + 1; a child
//!   that would reach [`MAX_DEPTH`] is never started.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::dag::CompiledWorkflow;
use crate::definition::WorkflowDefinition;
use crate::record::ExecutionRecord;
use crate::settings::{SUB_WORKFLOW_NODE_TYPE, SubWorkflowConfig};
use crate::status::ExecutionStatus;

/// The depth no child reaches: nine nested levels run below a top-level execution.
pub const MAX_DEPTH: u32 = 10;

/// The value at the dotted path `path` of `value` (`"a.b"` is `value["a"]["b"]`; an empty
/// path is the value itself).
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.')
        .try_fold(value, |v, key| v.as_object().and_then(|m| m.get(key)))
}

/// Writes `new` at the dotted path `path` of `target`, creating objects on the way (a
/// non-object on the way is replaced by one).
pub fn set_path(target: &mut Map<String, Value>, path: &str, new: Value) {
    let mut parts = path.split('.').peekable();
    let mut map = target;
    while let Some(key) = parts.next() {
        if parts.peek().is_none() {
            map.insert(key.to_owned(), new);
            return;
        }
        let slot = map
            .entry(key.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            return;
        };
        map = next;
    }
}

/// Applies a `{target: source}` mapping to `value` (see the module's rules). An empty mapping
/// returns `value` unchanged.
pub fn apply_mapping(value: &Value, mapping: &[(String, String)]) -> Value {
    if mapping.is_empty() {
        return value.clone();
    }
    let mut out = Map::new();
    for (target, source) in mapping {
        if let Some(v) = get_path(value, source) {
            set_path(&mut out, target, v.clone());
        }
    }
    Value::Object(out)
}

/// What a child yields to its parent node: the data of its one final node, or
/// `{nodeId: data}` over its final nodes that have data.
pub fn child_output(child: &CompiledWorkflow, outputs: &BTreeMap<String, Value>) -> Value {
    let finals: Vec<&str> = child
        .nodes()
        .iter()
        .filter(|n| n.children.is_empty())
        .map(|n| n.id.as_str())
        .collect();
    if let [only] = finals.as_slice() {
        return outputs.get(*only).cloned().unwrap_or(Value::Null);
    }
    let mut merged = Map::new();
    for id in finals {
        if let Some(v) = outputs.get(id) {
            merged.insert(id.to_owned(), v.clone());
        }
    }
    Value::Object(merged)
}

/// Why a child did not yield an output to its parent node.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChildFailure {
    /// The parent node's error message (names the child execution).
    pub message: String,
    /// Whether the parent node's retry policy may start a fresh child (a failed child: yes; a
    /// cancelled one: no).
    pub retryable: bool,
    /// What the child finished, `{nodeId: data}`, for a `continueOnFail` parent.
    pub partial_results: Value,
}

/// The outcome of a sub-workflow node whose child `child` (of graph `graph`) has ended: the
/// mapped output, or why it failed. `None` while the child has not ended.
pub fn child_outcome(
    config: &SubWorkflowConfig,
    graph: &CompiledWorkflow,
    child: &ExecutionRecord,
) -> Option<Result<Value, ChildFailure>> {
    let outputs: BTreeMap<String, Value> = child
        .node_results
        .iter()
        .filter_map(|(id, r)| r.data.clone().map(|d| (id.clone(), d)))
        .collect();
    let failure = |message: String, retryable: bool| {
        Some(Err(ChildFailure {
            message,
            retryable,
            partial_results: Value::Object(outputs.clone().into_iter().collect()),
        }))
    };
    let id = child.execution_id;
    let wf = &child.workflow_id;
    match child.status {
        ExecutionStatus::Completed => Some(Ok(apply_mapping(
            &child_output(graph, &outputs),
            &config.output_mapping,
        ))),
        ExecutionStatus::Failed => failure(
            format!(
                "sub-workflow {wf:?} (execution {id}) failed: {}",
                child.error.as_deref().unwrap_or("no error recorded")
            ),
            true,
        ),
        ExecutionStatus::Cancelled => failure(
            format!("sub-workflow {wf:?} (execution {id}) was cancelled"),
            false,
        ),
        _ => None,
    }
}

impl ChildFailure {
    /// The fields a `continueOnFail` parent node adds to its failure output:
    /// `{"partialResults": {nodeId: data}}`.
    pub fn details(&self) -> Value {
        let mut m = Map::new();
        m.insert("partialResults".to_owned(), self.partial_results.clone());
        Value::Object(m)
    }
}

/// Checks that a child of an execution at `parent_depth` may start. `chain` is the workflow
/// ids from the top-level execution down to the child's, for the error.
pub fn child_depth(parent_depth: u32, chain: &[String]) -> Result<u32, String> {
    let depth = parent_depth.saturating_add(1);
    if depth >= MAX_DEPTH {
        return Err(format!(
            "sub-workflow depth limit reached: a child at depth {depth} is not started (at most {} nested levels): {}",
            MAX_DEPTH - 1,
            chain.join(" -> ")
        ));
    }
    Ok(depth)
}

/// The workflows a definition's sub-workflow nodes call, in node order, without repeats.
pub fn called_workflows(definition: &WorkflowDefinition) -> Vec<String> {
    let mut seen = BTreeSet::new();
    definition
        .nodes
        .iter()
        .filter(|n| n.node_type == SUB_WORKFLOW_NODE_TYPE)
        .filter_map(|n| n.config.get("workflowId").and_then(Value::as_str))
        .filter(|id| seen.insert(id.to_owned()))
        .map(str::to_owned)
        .collect()
}

/// A cycle of sub-workflow calls through `root` that can be seen statically (A calls B calls
/// A), given the other workflows' definitions by id (`lookup`; workflows it does not know are
/// not followed). Returns the chain of workflow ids, first repeated at the end.
pub fn sub_workflow_cycle(
    root: &WorkflowDefinition,
    lookup: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Option<Vec<String>> {
    // Depth-first over calls; `path` is the current chain.
    fn visit(
        id: &str,
        calls: Vec<String>,
        root: &str,
        lookup: &dyn Fn(&str) -> Option<Vec<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> bool {
        path.push(id.to_owned());
        for next in calls {
            if next == root {
                path.push(next);
                return true;
            }
            if path.contains(&next) || done.contains(&next) {
                continue;
            }
            if let Some(more) = lookup(&next)
                && visit(&next, more, root, lookup, path, done)
            {
                return true;
            }
        }
        done.insert(id.to_owned());
        path.pop();
        false
    }
    let mut path = Vec::new();
    let mut done = BTreeSet::new();
    visit(
        &root.id,
        called_workflows(root),
        &root.id,
        lookup,
        &mut path,
        &mut done,
    )
    .then_some(path)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mappings_read_and_write_dotted_paths() {
        let input = json!({"order": {"total": 42, "id": "o1"}, "user": "ann"});
        let mapping = vec![
            ("payment.amount".to_owned(), "order.total".to_owned()),
            ("customer".to_owned(), "user".to_owned()),
            ("missing".to_owned(), "order.nothing".to_owned()),
        ];
        assert_eq!(
            apply_mapping(&input, &mapping),
            json!({"payment": {"amount": 42}, "customer": "ann"})
        );
        assert_eq!(apply_mapping(&input, &[]), input);
    }

    #[test]
    fn depth_nine_is_the_last_level() {
        let chain = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(child_depth(8, &chain), Ok(9));
        let err = child_depth(9, &chain).unwrap_err();
        assert!(err.contains("a -> b"), "{err}");
    }
}
