//! Compiled definitions by (workflow, version): immutable, so cached without expiry.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use spane_core::{CompiledWorkflow, NodeRegistry};
use spane_store::WorkflowStore;

use crate::error::WorkerError;

/// Resolves the definition version an execution is pinned to, from memory or from the store.
///
/// A version never changes once saved, so every worker process can cache it forever; this is
/// what makes running executions immune to re-registration.
pub struct Definitions {
    registry: Arc<NodeRegistry>,
    store: Arc<dyn WorkflowStore>,
    cache: RwLock<HashMap<(String, u32), Arc<CompiledWorkflow>>>,
}

impl fmt::Debug for Definitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definitions")
            .field("cached", &self.cache.read().map(|c| c.len()).unwrap_or(0))
            .finish()
    }
}

impl Definitions {
    /// Definitions read from `store`, compiled against `registry`.
    pub fn new(registry: Arc<NodeRegistry>, store: Arc<dyn WorkflowStore>) -> Self {
        Self {
            registry,
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The node registry definitions are compiled against.
    pub fn registry(&self) -> &Arc<NodeRegistry> {
        &self.registry
    }

    /// Remembers a compiled version (the engine calls this when it registers one).
    pub fn insert(&self, version: u32, workflow: Arc<CompiledWorkflow>) {
        let key = (workflow.id().to_owned(), version);
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, workflow);
    }

    /// The compiled definition of `workflow_id` at `version`.
    pub async fn get(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Arc<CompiledWorkflow>, WorkerError> {
        let key = (workflow_id.to_owned(), version);
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let stored = self
            .store
            .get_workflow(workflow_id, Some(version))
            .await?
            .ok_or_else(|| WorkerError::DefinitionNotFound {
                workflow_id: workflow_id.to_owned(),
                version,
            })?;
        let compiled = Arc::new(stored.definition.compile(self.registry.as_ref())?);
        self.insert(version, compiled.clone());
        Ok(compiled)
    }
}
