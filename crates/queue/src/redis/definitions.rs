//! Versioned definitions in Redis, so that every process sharing a prefix agrees on versions.
//!
//! `P:wf:{<id>}` holds the latest version and its JSON (and the creation time of each version);
//! `P:def:{<id>}:<version>` holds each version; `P:workflows` is the set of ids.

use fred::prelude::*;
use spane_core::WorkflowDefinition;

use super::{RedisQueue, unavailable};
use crate::error::QueueError;

/// One stored version of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDefinition {
    /// The definition.
    pub definition: WorkflowDefinition,
    /// Its version, from 1.
    pub version: u32,
    /// When this version was registered, milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl RedisQueue {
    fn workflow_key(&self, id: &str) -> String {
        format!("{}:wf:{{{id}}}", self.inner.config.prefix)
    }

    pub(super) fn definition_key(&self, id: &str, version: u32) -> String {
        format!("{}:def:{{{id}}}:{version}", self.inner.config.prefix)
    }

    /// Saves a definition and returns its version: the latest one when the definition is
    /// unchanged, the next one otherwise. Atomic, so concurrent registrations from several
    /// processes agree.
    pub async fn save_definition(
        &self,
        definition: &WorkflowDefinition,
    ) -> Result<u32, QueueError> {
        let json = serde_json::to_string(definition).map_err(|e| QueueError::Backend {
            reason: format!("serializing the definition: {e}"),
            source: None,
        })?;
        self.trip();
        let version: i64 = self
            .inner
            .scripts
            .define
            .evalsha_with_reload(
                &self.inner.client,
                vec![self.workflow_key(&definition.id)],
                vec![
                    format!("{}:def:{{{}}}:", self.inner.config.prefix, definition.id),
                    json,
                    spane_core::now_millis().to_string(),
                ],
            )
            .await
            .map_err(unavailable)?;
        self.trip();
        let _: i64 = self
            .inner
            .client
            .sadd(
                format!("{}:workflows", self.inner.config.prefix),
                definition.id.as_str(),
            )
            .await
            .map_err(unavailable)?;
        Ok(version as u32)
    }

    /// The latest version of a workflow, without its definition (one `HGET`: what an enqueue
    /// needs); `None` when it is not registered.
    pub async fn latest_definition_version(&self, id: &str) -> Result<Option<u32>, QueueError> {
        self.trip();
        self.inner
            .client
            .hget(self.workflow_key(id), "latest")
            .await
            .map_err(unavailable)
    }

    /// A stored definition: the given version, or the latest.
    pub async fn load_definition(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredDefinition>, QueueError> {
        let version = match version {
            Some(v) => v,
            None => match self.latest_definition_version(id).await? {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        // Both at once: one round trip.
        self.trip();
        let (json, at): (Option<String>, Option<i64>) = tokio::try_join!(
            self.inner.client.get(self.definition_key(id, version)),
            self.inner
                .client
                .hget(self.workflow_key(id), format!("at:{version}")),
        )
        .map_err(unavailable)?;
        let Some(json) = json else {
            return Ok(None);
        };
        let definition = serde_json::from_str(&json).map_err(|e| QueueError::Backend {
            reason: format!("stored definition {id:?} v{version} is unreadable: {e}"),
            source: None,
        })?;
        Ok(Some(StoredDefinition {
            definition,
            version,
            created_at: at.unwrap_or(0),
        }))
    }

    /// The latest version of every registered workflow, ordered by id.
    pub async fn list_definitions(&self) -> Result<Vec<StoredDefinition>, QueueError> {
        self.trip();
        let mut ids: Vec<String> = self
            .inner
            .client
            .smembers(format!("{}:workflows", self.inner.config.prefix))
            .await
            .map_err(unavailable)?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(d) = self.load_definition(&id, None).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Keys matching `pattern`, found with SCAN (never blocks Redis like KEYS would).
    pub(super) async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>, QueueError> {
        let mut cursor = "0".to_owned();
        let mut out = Vec::new();
        loop {
            self.trip();
            let (next, keys): (String, Vec<String>) = self
                .inner
                .client
                .custom(
                    fred::cmd!("SCAN"),
                    vec![
                        cursor,
                        "MATCH".into(),
                        pattern.to_owned(),
                        "COUNT".into(),
                        "500".into(),
                    ],
                )
                .await
                .map_err(unavailable)?;
            out.extend(keys);
            if next == "0" {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// Deletes every key under this queue's prefix (for tests and teardown); returns how many.
    pub async fn delete_all_keys(&self) -> Result<usize, QueueError> {
        let mut deleted = 0;
        for key in self
            .scan_keys(&format!("{}:*", self.inner.config.prefix))
            .await?
        {
            self.trip();
            let n: i64 = self.inner.client.unlink(key).await.map_err(unavailable)?;
            deleted += n as usize;
        }
        Ok(deleted)
    }
}
