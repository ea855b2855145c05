//! Compiled definitions by (workflow, version): immutable, so cached without expiry.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use spane_core::{CompiledWorkflow, NodeRegistry};
use spane_queue::ExecutionQueue;
use spane_store::WorkflowStore;

use crate::error::WorkerError;

/// Resolves the definition version an execution is pinned to: from memory, else from the queue
/// backend (which holds the definitions of the executions it runs, so a worker process that
/// never registered the workflow can run it), else from the store.
///
/// A version never changes once saved, so every worker process can cache it forever; this is
/// what makes running executions immune to re-registration.
pub struct Definitions {
    registry: Arc<NodeRegistry>,
    store: Arc<dyn WorkflowStore>,
    queue: Arc<dyn ExecutionQueue>,
    /// By workflow id, then version (looked up by `&str`: no key is built per node).
    cache: RwLock<HashMap<String, HashMap<u32, Arc<CompiledWorkflow>>>>,
}

impl fmt::Debug for Definitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definitions")
            .field(
                "cached",
                &self
                    .cache
                    .read()
                    .map(|c| c.values().map(HashMap::len).sum::<usize>())
                    .unwrap_or(0),
            )
            .finish()
    }
}

impl Definitions {
    /// Definitions read from `queue` or `store`, compiled against `registry`.
    pub fn new(
        registry: Arc<NodeRegistry>,
        store: Arc<dyn WorkflowStore>,
        queue: Arc<dyn ExecutionQueue>,
    ) -> Self {
        Self {
            registry,
            store,
            queue,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The node registry definitions are compiled against.
    pub fn registry(&self) -> &Arc<NodeRegistry> {
        &self.registry
    }

    /// Remembers a compiled version (the engine calls this when it registers one).
    pub fn insert(&self, version: u32, workflow: Arc<CompiledWorkflow>) {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(workflow.id().to_owned())
            .or_default()
            .insert(version, workflow);
    }

    /// The latest version of `workflow_id` in the store and its compiled definition (what a
    /// new execution of it runs, pinned); `None` when the workflow is not registered.
    pub async fn latest(
        &self,
        workflow_id: &str,
    ) -> Result<Option<(u32, Arc<CompiledWorkflow>)>, WorkerError> {
        let Some(stored) = self.store.get_workflow(workflow_id, None).await? else {
            return Ok(None);
        };
        let version = stored.version;
        if let Some(hit) = self.cached(workflow_id, version) {
            return Ok(Some((version, hit)));
        }
        let compiled = Arc::new(stored.definition.compile(self.registry.as_ref())?);
        self.insert(version, compiled.clone());
        Ok(Some((version, compiled)))
    }

    fn cached(&self, workflow_id: &str, version: u32) -> Option<Arc<CompiledWorkflow>> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(workflow_id)
            .and_then(|versions| versions.get(&version))
            .cloned()
    }

    /// The compiled definition of `workflow_id` at `version`.
    pub async fn get(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Arc<CompiledWorkflow>, WorkerError> {
        if let Some(hit) = self.cached(workflow_id, version) {
            return Ok(hit);
        }
        let definition = match self.queue.definition(workflow_id, version).await? {
            Some(d) => d,
            None => {
                self.store
                    .get_workflow(workflow_id, Some(version))
                    .await?
                    .ok_or_else(|| WorkerError::DefinitionNotFound {
                        workflow_id: workflow_id.to_owned(),
                        version,
                    })?
                    .definition
            }
        };
        let compiled = Arc::new(definition.compile(self.registry.as_ref())?);
        self.insert(version, compiled.clone());
        Ok(compiled)
    }
}
