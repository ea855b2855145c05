//! Compiled graphs by definition version, so that a commit is decided in the worker by the
//! core's rules ([`spane_core::CommitPlan::decide`]) before the script applies it.
//!
//! A process learns a version's graph when it starts an execution of it, or, the first time it
//! commits a job of a version it has not seen, from the definition stored under
//! `P:def:{<id>}:<version>` (one `GET` and a compile, then cached for the life of the queue:
//! a version never changes).

use std::sync::Arc;

use spane_core::{AnyNodeType, CompiledWorkflow};

use super::RedisQueue;
use crate::error::QueueError;
use crate::queue::ExecutionQueue;

impl RedisQueue {
    /// The compiled graph of `workflow_id` at `version`.
    pub(super) async fn graph(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Arc<CompiledWorkflow>, QueueError> {
        if let Some(graph) = self.known_graph(workflow_id, version) {
            return Ok(graph);
        }
        let definition = ExecutionQueue::definition(self, workflow_id, version)
            .await?
            .ok_or_else(|| QueueError::Backend {
                reason: format!("definition {workflow_id:?} v{version} is not stored in Redis"),
            })?;
        // The graph and the node settings do not depend on which executors exist: any node
        // type is accepted here; the worker checks its own registry.
        let graph = definition
            .compile(&AnyNodeType)
            .map_err(|e| QueueError::Backend {
                reason: format!("stored definition {workflow_id:?} v{version} is invalid: {e}"),
            })?;
        Ok(self.remember_graph(version, Arc::new(graph)))
    }

    pub(super) fn known_graph(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Option<Arc<CompiledWorkflow>> {
        let graphs = self.inner.graphs.lock().ok()?;
        graphs.get(&(workflow_id.to_owned(), version)).cloned()
    }

    pub(super) fn remember_graph(
        &self,
        version: u32,
        graph: Arc<CompiledWorkflow>,
    ) -> Arc<CompiledWorkflow> {
        if let Ok(mut graphs) = self.inner.graphs.lock() {
            graphs
                .entry((graph.id().to_owned(), version))
                .or_insert_with(|| graph.clone());
        }
        graph
    }
}
