//! Graphs by definition version.
//!
//! In Redis, each version's graph (the parents and children of every node) is one hash,
//! `P:{0}:g:<workflow>:<version>`, written once per version, not copied into every execution:
//! an execution's hash names it in its `g` field, and the scripts read it only where the
//! worker cannot tell them (a deep skip cascade, a join's parent list when it becomes ready, a
//! job put back without its parents).
//!
//! In the process, each version's compiled graph is kept, so that a commit is decided in the
//! worker by the core's rules ([`spane_core::CommitPlan::decide`]) before the script applies it,
//! and a claimed job's node id, children and input are built from it ([`spane_core::node_input`]).
//!
//! A process learns a version's graph when it starts an execution of it, or, the first time it
//! commits a job of a version it has not seen, from the definition stored under
//! `P:def:{<id>}:<version>` (one `GET` and a compile, then cached for the life of the queue:
//! a version never changes).

use std::sync::Arc;

use fred::prelude::*;
use fred::types::Value;
use spane_core::{AnyNodeType, CompiledWorkflow};

use super::{RedisQueue, record, unavailable};
use crate::error::QueueError;
use crate::job::ClaimedJob;
use crate::queue::ExecutionQueue;

/// Keeps a hash a real hash table (see `PAD` in `lib.lua`).
const PAD: &str =
    "................................................................................";

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
                source: None,
            })?;
        // The graph and the node settings do not depend on which executors exist: any node
        // type is accepted here; the worker checks its own registry.
        let graph = definition
            .compile(&AnyNodeType)
            .map_err(|e| QueueError::Backend {
                reason: format!("stored definition {workflow_id:?} v{version} is invalid: {e}"),
                source: None,
            })?;
        Ok(self.remember_graph(version, Arc::new(graph)))
    }

    pub(super) fn known_graph(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Option<Arc<CompiledWorkflow>> {
        let graphs = self.inner.graphs.lock().ok()?;
        graphs.get(workflow_id)?.get(&version).cloned()
    }

    pub(super) fn remember_graph(
        &self,
        version: u32,
        graph: Arc<CompiledWorkflow>,
    ) -> Arc<CompiledWorkflow> {
        if let Ok(mut graphs) = self.inner.graphs.lock() {
            graphs
                .entry(graph.id().to_owned())
                .or_default()
                .entry(version)
                .or_insert_with(|| graph.clone());
        }
        graph
    }

    /// The key of the graph hash of `workflow_id` at `version`.
    pub(super) fn graph_key(&self, workflow_id: &str, version: u32) -> String {
        format!("{}g:{workflow_id}:{version}", self.inner.keys.shard)
    }

    /// Writes the graph hash of a version. Its content depends only on the version, so
    /// processes that write it at the same time write the same thing.
    pub(super) async fn publish_graph(
        &self,
        graph: &CompiledWorkflow,
        version: u32,
    ) -> Result<(), QueueError> {
        let csv = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        let mut fields: Vec<(String, String)> = Vec::with_capacity(graph.nodes().len() * 2 + 1);
        for (i, node) in graph.nodes().iter().enumerate() {
            fields.push((format!("p:{i}"), csv(&node.parents)));
            fields.push((format!("c:{i}"), csv(&node.children)));
        }
        fields.push(("_h".to_owned(), PAD.to_owned()));
        self.trip();
        let _: i64 = self
            .inner
            .client
            .hset(self.graph_key(graph.id(), version), fields)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Builds the claimed jobs of a script reply, each from its version's graph.
    pub(super) async fn jobs(&self, replies: Vec<Value>) -> Result<Vec<ClaimedJob>, QueueError> {
        let lease = self.inner.config.lease;
        let mut jobs = Vec::with_capacity(replies.len());
        for reply in replies {
            let (workflow_id, version) = record::job_version(&reply)?;
            let graph = self.graph(&workflow_id, version).await?;
            jobs.push(record::claimed_job(reply, lease, &graph)?);
        }
        Ok(jobs)
    }
}
