//! Operating executions: "why is it stuck?" ([`WorkflowEngine::explain`]) and re-running part
//! of an execution ([`WorkflowEngine::rerun_from`], [`WorkflowEngine::retry_failed`]).
//!
//! The reasons and the choice of kept nodes are decided in `spane_core` ([`spane_core::explain`],
//! [`spane_core::rerun`]); this file reads the backends and starts the new execution.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use spane_core::explain::{ExplainContext, Explanation, Reason, WorkerView, explain};
use spane_core::rerun::{RerunError, RerunPlan, check_unchanged_above};
use spane_core::{
    BreakerState, CompiledWorkflow, ExecutionId, MAX_DEPTH, NodeIndex, NodeState, NodeStatus,
};
use spane_queue::Inspected;
use spane_queue::backend::{RerunStart, StartExecution};
use spane_store::ExecutionStore;
use spane_worker::ExecutionStarter;

use crate::engine::WorkflowEngine;
use crate::error::Error;

/// Options of [`WorkflowEngine::rerun_from`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RerunOptions {
    /// The input the node re-run from receives instead of what its parents pass.
    pub input: Option<Value>,
    /// Run the workflow's newest definition version instead of the pinned one (refused with
    /// [`RerunError::GraphChanged`] when the graph above the node differs).
    pub latest_version: bool,
}

impl RerunOptions {
    /// Re-run on the pinned version with the recorded input.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node re-run from receives `input`.
    pub fn input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    /// Run the newest definition version (see [`RerunOptions::latest_version`]).
    pub fn latest_version(mut self, latest: bool) -> Self {
        self.latest_version = latest;
        self
    }
}

/// A re-run that was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Rerun {
    /// The new execution.
    pub execution_id: ExecutionId,
    /// The execution it re-runs.
    pub rerun_of: ExecutionId,
    /// The definition version it runs.
    pub workflow_version: u32,
    /// Nodes that keep their recorded outcome.
    pub kept: Vec<String>,
    /// Nodes that run again.
    pub rerun: Vec<String>,
}

impl WorkflowEngine {
    /// Why execution `id` is not progressing: for every node not finished, what it waits for
    /// and the single most specific reason, from the backend's real state, and one line to read
    /// first ([`Explanation::summary`]). A node waiting for a child execution carries the
    /// child's own explanation (recursively, down to the sub-workflow depth limit).
    ///
    /// An execution the queue no longer holds is explained from history (status only).
    pub async fn explain(&self, id: ExecutionId) -> Result<Explanation, Error> {
        self.explain_at_depth(id, 0).await
    }

    fn explain_at_depth(
        &self,
        id: ExecutionId,
        depth: u32,
    ) -> futures::future::BoxFuture<'_, Result<Explanation, Error>> {
        Box::pin(async move {
            let Some(inspected) = self.inspect(id).await? else {
                let record = self
                    .store()
                    .get_execution(id)
                    .await?
                    .ok_or(Error::ExecutionNotFound(id))?;
                return Ok(Explanation::from_history(
                    id,
                    record.workflow_id,
                    record.workflow_version,
                    record.status,
                    record.error.as_deref(),
                ));
            };
            let snapshot = &inspected.snapshot;
            let workers = match self.queue().workers() {
                Some(registry) => Some(
                    registry
                        .workers()
                        .await?
                        .into_iter()
                        .map(|b| {
                            let alive = b.alive_at(snapshot.now);
                            WorkerView::new(b.worker, alive, b.types)
                        })
                        .collect::<Vec<_>>(),
                ),
                None => None,
            };
            // Breakers matter only to a node waiting for a retry.
            let waits = snapshot
                .nodes
                .iter()
                .any(|n| n.shown == Some(NodeStatus::Delayed) && !n.delay_elapsed);
            let mut breakers: BTreeMap<String, BreakerState> = BTreeMap::new();
            if waits && let Some(limits) = self.queue().limits() {
                for b in limits.breakers().await? {
                    breakers.insert(b.key, b.state);
                }
            }
            let cx = ExplainContext::new(workers.as_deref(), &breakers, Some(self.registry()));
            let mut explanation = explain(&inspected.workflow, snapshot, &cx);
            if depth < MAX_DEPTH {
                let mut filled = false;
                for node in &mut explanation.nodes {
                    if let Reason::WaitingForChild { child, explanation } = &mut node.reason {
                        match self.explain_at_depth(*child, depth + 1).await {
                            Ok(e) => *explanation = Some(Box::new(e)),
                            // Not started yet (the worker binds before it starts the child).
                            Err(Error::ExecutionNotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                        filled = true;
                    }
                }
                if filled {
                    explanation.summarize();
                }
            }
            Ok(explanation)
        })
    }

    async fn inspect(&self, id: ExecutionId) -> Result<Option<Inspected>, Error> {
        let inspection = self.queue().inspection().ok_or(Error::Unsupported {
            what: "execution inspection",
        })?;
        Ok(inspection.snapshot(id).await?)
    }

    /// Starts a new execution, linked to `id`, that reuses the recorded outputs of every node
    /// that is not `node_id` or one of its descendants, and runs `node_id` and its descendants
    /// again. Skipped nodes outside that part stay skipped; skipped descendants run when their
    /// route changes. With [`RerunOptions::input`], `node_id` runs with that input (every
    /// parent of it must keep its output); with [`RerunOptions::latest_version`], the newest
    /// definition version runs, unless the graph above `node_id` changed
    /// ([`RerunError::GraphChanged`]).
    pub async fn rerun_from(
        &self,
        id: ExecutionId,
        node_id: &str,
        options: RerunOptions,
    ) -> Result<Rerun, Error> {
        let inspected = self.inspect_for_rerun(id).await?;
        let old = &inspected.workflow;
        let from = old
            .index_of(node_id)
            .ok_or_else(|| RerunError::UnknownNode {
                node: node_id.to_owned(),
                workflow: old.id().to_owned(),
            })?;
        self.start_rerun(id, &inspected, &[from], options).await
    }

    /// Starts a new execution, linked to `id`, that re-runs only the nodes that failed
    /// (for good, or failed-and-continued) and what depended on them, reusing every other
    /// recorded output, on the pinned definition version. [`RerunError::NothingFailed`] when
    /// no node failed.
    pub async fn retry_failed(&self, id: ExecutionId) -> Result<Rerun, Error> {
        let inspected = self.inspect_for_rerun(id).await?;
        let failed: Vec<NodeIndex> = inspected
            .snapshot
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.state, NodeState::Failed { .. }))
            .map(|(i, _)| i)
            .collect();
        if failed.is_empty() {
            return Err(RerunError::NothingFailed.into());
        }
        self.start_rerun(id, &inspected, &failed, RerunOptions::new())
            .await
    }

    /// The live state of execution `id` to re-run it: [`RerunError::ExecutionGone`] when the
    /// queue no longer holds it but history does, [`Error::ExecutionNotFound`] when neither
    /// knows it.
    async fn inspect_for_rerun(&self, id: ExecutionId) -> Result<Inspected, Error> {
        match self.inspect(id).await? {
            Some(inspected) => Ok(inspected),
            None if self.get_execution(id).await?.is_some() => {
                Err(RerunError::ExecutionGone { execution: id }.into())
            }
            None => Err(Error::ExecutionNotFound(id)),
        }
    }

    async fn start_rerun(
        &self,
        id: ExecutionId,
        inspected: &Inspected,
        from: &[NodeIndex],
        options: RerunOptions,
    ) -> Result<Rerun, Error> {
        let old = &inspected.workflow;
        let states: Vec<NodeState> = inspected
            .snapshot
            .nodes
            .iter()
            .map(|n| n.state.clone())
            .collect();
        let plan = RerunPlan::decide(old, &states, from);
        if options.input.is_some()
            && let Some(&f) = from.first()
            && !old.node(f).parents.iter().all(|&p| plan.keeps(p))
        {
            return Err(RerunError::InputNeedsRecordedParents {
                node: old.node(f).id.clone(),
            }
            .into());
        }
        let (dag, version) = self.rerun_target(old, inspected, from, &options).await?;
        let seeds = plan.onto(old, &dag);
        let record = self
            .queue()
            .execution(id)
            .await?
            .ok_or(RerunError::ExecutionGone { execution: id })?;
        let outputs: Vec<Option<Value>> = dag
            .nodes()
            .iter()
            .zip(&seeds)
            .map(|(n, seed)| seed.as_ref().and_then(|_| record.output(&n.id).cloned()))
            .collect();
        let mut rerun = RerunStart::new(id, seeds.clone(), outputs);
        if let (Some(input), Some(&f)) = (options.input, from.first())
            && let Some(j) = dag.index_of(&old.node(f).id)
        {
            rerun = rerun.with_input(j, input);
        }
        let execution_id = ExecutionId::new();
        let starter = ExecutionStarter::new(
            self.queue().clone(),
            self.store().clone() as Arc<dyn ExecutionStore>,
        );
        starter
            .start(
                StartExecution::new(execution_id, dag.clone(), version, record.initial_data)
                    .rerun(rerun),
            )
            .await?;
        let (mut kept, mut again) = (Vec::new(), Vec::new());
        for (n, seed) in dag.nodes().iter().zip(&seeds) {
            match seed {
                Some(_) => kept.push(n.id.clone()),
                None => again.push(n.id.clone()),
            }
        }
        tracing::info!(%execution_id, rerun_of = %id, version, kept = kept.len(), "re-run started");
        Ok(Rerun {
            execution_id,
            rerun_of: id,
            workflow_version: version,
            kept,
            rerun: again,
        })
    }

    /// The graph and version a re-run runs: the pinned one, or the newest one when asked and
    /// unchanged above the re-run part.
    async fn rerun_target(
        &self,
        old: &Arc<CompiledWorkflow>,
        inspected: &Inspected,
        from: &[NodeIndex],
        options: &RerunOptions,
    ) -> Result<(Arc<CompiledWorkflow>, u32), Error> {
        let pinned = inspected.snapshot.workflow_version;
        if !options.latest_version {
            return Ok((old.clone(), pinned));
        }
        let latest = self
            .store()
            .get_workflow(old.id(), None)
            .await?
            .ok_or_else(|| Error::WorkflowNotFound {
                id: old.id().to_owned(),
            })?;
        if latest.version == pinned {
            return Ok((old.clone(), pinned));
        }
        // Compiled without a registry: the workers that run it check their own.
        let new = Arc::new(latest.definition.compile(&spane_core::AnyNodeType)?);
        check_unchanged_above(old, &new, latest.version, from)?;
        Ok((new, latest.version))
    }
}
