//! Data passing between nodes.

use serde_json::{Map, Value, json};

use crate::dag::{CompiledWorkflow, NodeIndex};

/// The input of `node`, from the outputs of its live parents (see
/// [`ExecutionState::live_parents`](crate::ExecutionState::live_parents)):
///
/// - a root gets the execution's initial data;
/// - a node with one declared parent gets that parent's data as it is;
/// - a node with several declared parents gets `{parentId: data, ...}` over the parents whose
///   data flows into it (skipped parents, and parents that routed elsewhere, are absent).
pub fn node_input<'a>(
    dag: &CompiledWorkflow,
    node: NodeIndex,
    initial: &Value,
    live_parents: impl IntoIterator<Item = (NodeIndex, &'a Value)>,
) -> Value {
    let declared = &dag.node(node).parents;
    match declared.len() {
        0 => initial.clone(),
        1 => live_parents
            .into_iter()
            .next()
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null),
        _ => {
            let mut merged = Map::new();
            for (p, v) in live_parents {
                merged.insert(dag.node(p).id.clone(), v.clone());
            }
            Value::Object(merged)
        }
    }
}

/// The data a node that failed with `continueOnFail` hands to its children:
/// `{"error": message, "failed": true, "nodeId": node, "attempts": n}`.
pub fn failure_output(node_id: &str, message: &str, attempts: u32) -> Value {
    json!({ "error": message, "failed": true, "nodeId": node_id, "attempts": attempts })
}
