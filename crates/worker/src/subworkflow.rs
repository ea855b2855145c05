//! Sub-workflow nodes in the worker: starting a node's child, and resuming the node when the
//! child ends, by the protocol of [`spane_queue::ChildExecutions`]; the rules (mappings, the
//! child's output, failures, depth) are [`spane_core::subworkflow`]'s.

use std::time::Duration;

use spane_core::subworkflow::{apply_mapping, child_depth, child_outcome};
use spane_core::{
    CompiledNode, ExecutionId, ExecutionRecord, ExecutionStatus, MAX_DEPTH, NodeError, NodeOutput,
};
use spane_queue::ChildExecutions;
use spane_queue::backend::{ClaimedJob, NodeCommit, StartExecution, WorkerId};

use crate::error::WorkerError;
use crate::outcome::decide;
use crate::processor::{NodeProcessor, jitter_sample};

/// How long a child's end may wait for the worker that ended it to resume its parent before a
/// periodic sweep does it (a crash in between).
pub(crate) const SWEEP_GRACE: Duration = Duration::from_secs(1);

impl NodeProcessor {
    fn links(&self) -> Option<&dyn ChildExecutions> {
        self.queue.sub_workflows()
    }

    /// Runs sub-workflow node `node` of `job`: binds its child (the same one when this run was
    /// claimed before), starts it unless it exists, and waits for it without holding the slot.
    pub(crate) async fn start_child(&self, job: &ClaimedJob, node: &CompiledNode) -> NodeCommit {
        let fail = |e: NodeError| decide(&node.settings, job.attempt, Err(e), jitter_sample());
        let Some(config) = node.settings.sub_workflow.as_ref() else {
            return fail(NodeError::fatal(format!(
                "node {:?}: sub-workflow node without settings",
                node.id
            )));
        };
        let Some(links) = self.links() else {
            return fail(NodeError::fatal(
                "this queue backend does not run sub-workflows",
            ));
        };
        let Ok(depth) = child_depth(job.depth, &[]) else {
            let chain = self.chain(job, &config.workflow_id).await;
            let msg = child_depth(job.depth, &chain).err().unwrap_or_default();
            return fail(NodeError::fatal(format!("node {:?}: {msg}", node.id)));
        };
        let work = async {
            let (version, workflow) = match self.definitions.latest(&config.workflow_id).await {
                Ok(Some(latest)) => latest,
                Ok(None) => {
                    return Err(NodeError::fatal(format!(
                        "node {:?}: sub-workflow {:?} is not registered",
                        node.id, config.workflow_id
                    )));
                }
                Err(e) if e.is_transient() => return Err(NodeError::retryable(e.to_string())),
                Err(e) => {
                    return Err(NodeError::fatal(format!(
                        "node {:?}: sub-workflow {:?}: {e}",
                        node.id, config.workflow_id
                    )));
                }
            };
            let child = match links.bind_child(job, ExecutionId::new()).await {
                Ok(Some(child)) => child,
                // The lease was lost: another worker runs this node now.
                Ok(None) => return Ok(None),
                Err(e) => return Err(NodeError::retryable(format!("binding the child: {e}"))),
            };
            let start = StartExecution::new(
                child,
                workflow,
                version,
                apply_mapping(&job.input, &config.input_mapping),
            )
            .child_of(job.execution_id, job.node_id.clone(), depth);
            self.start_with_retries(start).await?;
            tracing::info!(child = %child, workflow = %config.workflow_id, "sub-workflow started");
            Ok(Some(child))
        };
        match self.with_lease(job, work).await {
            Ok(Some(child)) => NodeCommit::AwaitChild { child },
            // Refused as stale at commit: the other worker's run stands.
            Ok(None) => NodeCommit::AwaitChild {
                child: ExecutionId::new(),
            },
            Err(e) => fail(e),
        }
    }

    /// Starts a child, retrying while the backend cannot be reached (a replay starts nothing
    /// new: the id is bound).
    async fn start_with_retries(&self, start: StartExecution) -> Result<(), NodeError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.starter.start_once(start.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "starting a sub-workflow failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(NodeError::fatal(format!("starting the sub-workflow: {e}"))),
            }
        }
    }

    /// The workflow ids from the top-level execution down to a child of `job`'s node that runs
    /// `child_workflow`.
    async fn chain(&self, job: &ClaimedJob, child_workflow: &str) -> Vec<String> {
        let mut chain = vec![child_workflow.to_owned(), job.workflow_id.clone()];
        let mut next = job.parent_execution_id;
        for _ in 0..=MAX_DEPTH {
            let Some(id) = next else { break };
            match self.queue.execution(id).await {
                Ok(Some(parent)) => {
                    chain.push(parent.workflow_id);
                    next = parent.parent_execution_id;
                }
                _ => {
                    chain.push(format!("(execution {id})"));
                    break;
                }
            }
        }
        chain.reverse();
        chain
    }

    /// After a node started waiting for `child`: a parent paused or cancelled meanwhile (its
    /// cascade did not see the child yet) pauses or cancels the child too.
    pub(crate) async fn after_await(&self, job: &ClaimedJob, child: ExecutionId) {
        let Some(control) = self.queue.control() else {
            return;
        };
        let Ok(Some(status)) = self.queue.execution_status(job.execution_id).await else {
            return;
        };
        let done = match status {
            ExecutionStatus::Paused => control.pause(child).await.map(|_| ()),
            ExecutionStatus::Cancelled => control.cancel(child).await.map(|_| ()),
            _ => Ok(()),
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, %child, "passing the parent's pause or cancel to its child");
        }
    }

    /// Resumes the parent node of `child`, which ended: commits the node's outcome, exactly
    /// once whoever else tries, then forgets the child's end. Errors are logged; the periodic
    /// sweep tries again.
    pub async fn resume_parent(&self, child: ExecutionId) {
        match self.try_resume(child).await {
            Ok(()) => {
                if let Some(links) = self.links()
                    && let Err(e) = links.forget_ended(child).await
                {
                    tracing::debug!(error = %e, %child, "forgetting an ended child failed; the sweep retries");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, %child, "resuming the parent of a sub-workflow failed; the sweep retries")
            }
        }
    }

    async fn try_resume(&self, child: ExecutionId) -> Result<(), WorkerError> {
        let Some(links) = self.links() else {
            return Ok(());
        };
        let Some(record) = self.child_record(child).await? else {
            return Ok(());
        };
        let (Some(parent), Some(node_id)) = (record.parent_execution_id, &record.parent_node_id)
        else {
            return Ok(());
        };
        if !record.status.is_terminal() {
            // Revived by a dead-letter retry: its next end is recorded again.
            return Ok(());
        }
        let Some(job) = links.awaiting_parent(parent, node_id, child).await? else {
            return Ok(());
        };
        let dag = self
            .definitions
            .get(&job.workflow_id, job.workflow_version)
            .await?;
        let node = dag.node(job.node);
        let Some(config) = node.settings.sub_workflow.as_ref() else {
            return Ok(());
        };
        let graph = self
            .definitions
            .get(&record.workflow_id, record.workflow_version)
            .await?;
        let commit = match child_outcome(config, &graph, &record) {
            None => return Ok(()),
            Some(Ok(data)) => decide(&node.settings, job.attempt, Ok(NodeOutput::new(data)), 0.0),
            Some(Err(failure)) => {
                let error = if failure.retryable {
                    NodeError::retryable(failure.message.clone())
                } else {
                    NodeError::fatal(failure.message.clone())
                };
                match decide(&node.settings, job.attempt, Err(error), jitter_sample()) {
                    NodeCommit::Failed {
                        error,
                        continue_on_fail,
                        ..
                    } => NodeCommit::Failed {
                        error,
                        continue_on_fail,
                        details: Some(failure.details()),
                    },
                    other => other,
                }
            }
        };
        tracing::info!(%parent, node = %node_id, %child, status = %record.status, "resuming the parent of a sub-workflow");
        let node_type = node.node_type.clone();
        self.commit(&WorkerId::new(), &job, commit, &node_type, 0)
            .await;
        Ok(())
    }

    /// The ended child's record with its payloads resolved: live from the queue, else history.
    async fn child_record(
        &self,
        child: ExecutionId,
    ) -> Result<Option<ExecutionRecord>, WorkerError> {
        if let Some(mut live) = self.queue.execution(child).await? {
            if let Some(payloads) = self.queue.payloads() {
                spane_queue::backend::resolve_record(payloads, &mut live).await?;
            }
            return Ok(Some(live));
        }
        Ok(self.store.get_execution(child).await?)
    }

    /// Resumes the parents of every child that ended at least a second ago and whose
    /// parent was not resumed (its worker died in between); returns how many it looked at.
    pub async fn sweep_ended_children(&self) -> usize {
        let Some(links) = self.links() else {
            return 0;
        };
        let ended = match links.ended_children(SWEEP_GRACE, 100).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::debug!(error = %e, "reading ended sub-workflows failed");
                return 0;
            }
        };
        for &child in &ended {
            self.resume_parent(child).await;
        }
        ended.len()
    }
}

/// A sweep that never runs faster than this.
pub(crate) fn sweep_every(claim_wait: Duration) -> Duration {
    claim_wait.max(Duration::from_millis(100))
}
