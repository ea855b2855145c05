//! Re-running part of an execution, decided once for every backend.
//!
//! A re-run is a new execution that reuses what an earlier one recorded. [`RerunPlan::decide`]
//! says which nodes keep their recorded outcome (a [`Seed`]) and which run again:
//!
//! - the nodes to re-run (`from`) and all their descendants run again;
//! - every other node keeps its recorded outcome when it has one: completed (with its routes
//!   and output), failed-and-continued (with the output its children received), or skipped;
//! - every other node without an outcome (it failed for good, was held, or never ran) runs
//!   again, like a node of a new execution.
//!
//! The kept nodes are closed under ancestors (a resolved node's parents are resolved, and a
//! parent of a node that is not a descendant of `from` is not one either), so a skipped node
//! that is kept stays skipped for the same reason it was, and a re-run descendant is decided
//! afresh: a skipped node runs when its route changes.
//!
//! On a newer definition version, [`check_unchanged_above`] refuses the re-run with
//! [`RerunError::GraphChanged`] unless every kept node is the same in both versions (same
//! type, config and inputs) and no node was added outside the re-run part.

use std::collections::VecDeque;

use crate::dag::{CompiledWorkflow, NodeIndex};
use crate::state::NodeState;

/// The recorded outcome a kept node starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Seed {
    /// Completed, routing to `routes` (child indices; all children when `None`).
    Completed {
        /// The children it chose.
        routes: Option<Vec<NodeIndex>>,
    },
    /// Failed with `continueOnFail`: its children received its failure output.
    Continued,
    /// Skipped.
    Skipped,
}

/// Why a re-run was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RerunError {
    /// The node to re-run from is not in the definition.
    #[error("node {node:?} is not in workflow {workflow:?}")]
    UnknownNode {
        /// The node id.
        node: String,
        /// The workflow.
        workflow: String,
    },
    /// The newer definition differs above the node to re-run from: outputs recorded under
    /// the old graph cannot be reused.
    #[error("the graph above {from:?} changed in version {version}: node {node:?} {what}")]
    GraphChanged {
        /// The node re-run from.
        from: String,
        /// The newer version.
        version: u32,
        /// The node that differs.
        node: String,
        /// How it differs.
        what: &'static str,
    },
    /// The queue no longer holds the execution (its retention passed): the routes its nodes
    /// took are not kept in history, so it cannot be re-run.
    #[error(
        "execution {execution} is no longer held by the queue; only executions within their retention can be re-run"
    )]
    ExecutionGone {
        /// The execution.
        execution: crate::id::ExecutionId,
    },
    /// `retry_failed` on an execution with no failed node.
    #[error("execution has no failed node to retry")]
    NothingFailed,
    /// A changed input was given for a node that does not start the re-run at once (one of
    /// its parents runs again): the input would be overwritten by that parent's output.
    #[error("node {node:?}: a changed input needs every parent of the node to keep its output")]
    InputNeedsRecordedParents {
        /// The node.
        node: String,
    },
}

/// Which nodes of an earlier execution keep their outcome in its re-run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RerunPlan {
    /// Per node of the earlier execution's graph: its seed when it is kept.
    pub seeds: Vec<Option<Seed>>,
}

impl RerunPlan {
    /// Keeps every resolved node of `states` (an execution of `dag`) that is neither in
    /// `from` nor a descendant of a node in `from`.
    pub fn decide(dag: &CompiledWorkflow, states: &[NodeState], from: &[NodeIndex]) -> Self {
        let rerun = descendants(dag, from);
        let seeds = states
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if rerun[i] {
                    return None;
                }
                match s {
                    NodeState::Completed { routes } => Some(Seed::Completed {
                        routes: routes.clone(),
                    }),
                    NodeState::Failed { continued: true } => Some(Seed::Continued),
                    NodeState::Skipped => Some(Seed::Skipped),
                    _ => None,
                }
            })
            .collect();
        Self { seeds }
    }

    /// Whether node `i` keeps its outcome.
    pub fn keeps(&self, i: NodeIndex) -> bool {
        self.seeds.get(i).is_some_and(Option::is_some)
    }

    /// The seeds mapped onto `new` (a newer version of the same workflow whose kept part is
    /// unchanged: see [`check_unchanged_above`]), by node id; routes are remapped to `new`'s
    /// indices.
    pub fn onto(&self, old: &CompiledWorkflow, new: &CompiledWorkflow) -> Vec<Option<Seed>> {
        let mut seeds = vec![None; new.nodes().len()];
        for (i, seed) in self.seeds.iter().enumerate() {
            let Some(seed) = seed else { continue };
            let Some(j) = new.index_of(&old.node(i).id) else {
                continue;
            };
            seeds[j] = Some(match seed {
                Seed::Completed { routes: Some(r) } => Seed::Completed {
                    routes: Some(
                        r.iter()
                            .filter_map(|&c| new.index_of(&old.node(c).id))
                            .collect(),
                    ),
                },
                other => other.clone(),
            });
        }
        seeds
    }
}

/// Nodes in `from` or below one of them.
pub fn descendants(dag: &CompiledWorkflow, from: &[NodeIndex]) -> Vec<bool> {
    let mut marked = vec![false; dag.nodes().len()];
    let mut work: Vec<NodeIndex> = from.to_vec();
    while let Some(n) = work.pop() {
        if std::mem::replace(&mut marked[n], true) {
            continue;
        }
        work.extend(dag.node(n).children.iter().copied());
    }
    marked
}

/// The nodes of `dag`, parents before children (Kahn's algorithm; the graph is acyclic).
pub fn topological_order(dag: &CompiledWorkflow) -> Vec<NodeIndex> {
    let mut indegree: Vec<usize> = dag.nodes().iter().map(|n| n.parents.len()).collect();
    let mut queue: VecDeque<NodeIndex> = dag.roots().iter().copied().collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(n) = queue.pop_front() {
        order.push(n);
        for &c in &dag.node(n).children {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                queue.push_back(c);
            }
        }
    }
    order
}

/// Checks that `new` (version `version`) can reuse outputs recorded under `old` in a re-run
/// from `from` (indices of `old`): every node of `old` that is not re-run exists in `new` with
/// the same type, config and inputs, the re-run nodes exist with the same inputs, and `new`
/// adds no node outside the re-run part.
pub fn check_unchanged_above(
    old: &CompiledWorkflow,
    new: &CompiledWorkflow,
    version: u32,
    from: &[NodeIndex],
) -> Result<(), RerunError> {
    let from_id = from
        .first()
        .map(|&f| old.node(f).id.clone())
        .unwrap_or_default();
    let changed = |node: &str, what| RerunError::GraphChanged {
        from: from_id.clone(),
        version,
        node: node.to_owned(),
        what,
    };
    let rerun = descendants(old, from);
    let ids = |dag: &CompiledWorkflow, parents: &[NodeIndex]| -> Vec<String> {
        parents.iter().map(|&p| dag.node(p).id.clone()).collect()
    };
    for (i, node) in old.nodes().iter().enumerate() {
        let is_from = from.contains(&i);
        if rerun[i] && !is_from {
            continue;
        }
        let Some(j) = new.index_of(&node.id) else {
            return Err(changed(&node.id, "was removed"));
        };
        let other = new.node(j);
        if ids(old, &node.parents) != ids(new, &other.parents) {
            return Err(changed(&node.id, "has different inputs"));
        }
        if is_from {
            continue;
        }
        if other.node_type != node.node_type {
            return Err(changed(&node.id, "has a different type"));
        }
        if other.config != node.config {
            return Err(changed(&node.id, "has a different config"));
        }
    }
    // A node of `new` that is not below `from` in `new` and not in `old` was added above.
    let from_new: Vec<NodeIndex> = from
        .iter()
        .filter_map(|&f| new.index_of(&old.node(f).id))
        .collect();
    let below = descendants(new, &from_new);
    for (j, node) in new.nodes().iter().enumerate() {
        if !below[j] && old.index_of(&node.id).is_none() {
            return Err(changed(&node.id, "was added"));
        }
    }
    Ok(())
}
