//! Inspection: an execution's real state as one snapshot, for
//! [`spane_core::explain::explain`] and for re-runs.

use std::sync::Arc;

use async_trait::async_trait;
use spane_core::explain::ExecutionSnapshot;
use spane_core::{CompiledWorkflow, ExecutionId};

use crate::error::QueueError;

/// An execution's snapshot with the graph it runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Inspected {
    /// The compiled definition version the execution runs.
    pub workflow: Arc<CompiledWorkflow>,
    /// Its state now.
    pub snapshot: ExecutionSnapshot,
}

impl Inspected {
    /// A snapshot with its graph.
    pub fn new(workflow: Arc<CompiledWorkflow>, snapshot: ExecutionSnapshot) -> Self {
        Self { workflow, snapshot }
    }
}

/// Capability of a queue that can show an execution's state as an [`ExecutionSnapshot`] (see
/// [`ExecutionQueue::inspection`](crate::ExecutionQueue::inspection)): node states with their
/// routes, shown statuses, attempts, due times, leases (with their holder, when known), bound
/// children, dead-letter items, and the place of ready nodes in the ready queue. One call
/// reads one execution, without scanning other executions' state.
#[async_trait]
pub trait ExecutionInspection: Send + Sync {
    /// The snapshot of `id`, or `None` when the queue no longer holds it.
    async fn snapshot(&self, id: ExecutionId) -> Result<Option<Inspected>, QueueError>;
}
