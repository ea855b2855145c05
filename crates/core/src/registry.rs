//! The node registry: executors by node type.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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
#[derive(Clone, Default)]
pub struct NodeRegistry {
    executors: HashMap<String, Arc<dyn NodeExecutor>>,
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
