//! Sub-workflow links on Redis (see [`ChildExecutions`] for the protocol): the child bound to a
//! node is its `ch:i` field, the children an execution started its `kids` field, and the
//! children that ended before their parent was resumed the shard's `ended` sorted set (by end
//! time), written by the script that ended them (`wf_event` in `lib.lua`). No script touches two
//! executions.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use spane_core::ExecutionId;

use super::{RedisQueue, unavailable};
use crate::children::ChildExecutions;
use crate::error::QueueError;
use crate::job::{ClaimedJob, StartExecution};

/// The JSON fields a child's workflow events carry (`lk` in `lib.lua`): empty for a top-level
/// execution.
pub(super) fn parent_link(start: &StartExecution) -> String {
    match (&start.parent_execution_id, &start.parent_node_id) {
        (Some(parent), Some(node)) => format!(
            ",\"parentExecutionId\":\"{parent}\",\"parentNodeId\":{}",
            serde_json::Value::from(node.as_str())
        ),
        (Some(parent), None) => format!(",\"parentExecutionId\":\"{parent}\""),
        _ => String::new(),
    }
}

fn parse_id(text: &str) -> Result<ExecutionId, QueueError> {
    text.parse().map_err(|e| QueueError::Backend {
        reason: format!("unexpected child execution id {text:?} in Redis: {e}"),
        source: None,
    })
}

impl RedisQueue {
    fn ended_key(&self) -> String {
        format!("{}ended", self.inner.keys.shard)
    }
}

#[async_trait]
impl ChildExecutions for RedisQueue {
    async fn bind_child(
        &self,
        job: &ClaimedJob,
        proposed: ExecutionId,
    ) -> Result<Option<ExecutionId>, QueueError> {
        self.trip();
        let bound: String = self
            .inner
            .scripts
            .bind
            .evalsha_with_reload(
                &self.inner.client,
                vec![self.inner.keys.execution(job.execution_id)],
                vec![
                    job.node.to_string(),
                    job.token.to_string(),
                    proposed.to_string(),
                ],
            )
            .await
            .map_err(unavailable)?;
        if bound.is_empty() {
            return Ok(None);
        }
        parse_id(&bound).map(Some)
    }

    async fn ended_children(
        &self,
        older_than: Duration,
        max: usize,
    ) -> Result<Vec<ExecutionId>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Scores are Redis's clock; a skew with this process's only moves the grace.
        let until = spane_core::now_millis() - older_than.as_millis().min(i64::MAX as u128) as i64;
        self.trip();
        let ids: Vec<String> = self
            .inner
            .client
            .zrangebyscore(
                self.ended_key(),
                "-inf",
                until,
                false,
                Some((0, max as i64)),
            )
            .await
            .map_err(unavailable)?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    async fn awaiting_parent(
        &self,
        parent: ExecutionId,
        node_id: &str,
        child: ExecutionId,
    ) -> Result<Option<ClaimedJob>, QueueError> {
        let key = self.inner.keys.execution(parent);
        self.trip();
        let head: Vec<Option<String>> = self
            .inner
            .client
            .hmget(&key, vec!["wf", "ver", "par", "dep"])
            .await
            .map_err(unavailable)?;
        let [Some(wf), Some(ver), par, dep] =
            <[Option<String>; 4]>::try_from(head).unwrap_or([None, None, None, None])
        else {
            return Ok(None);
        };
        let version: u32 = ver.parse().map_err(|e| QueueError::Backend {
            reason: format!("unexpected version {ver:?} of execution {parent}: {e}"),
            source: None,
        })?;
        let graph = self.graph(&wf, version).await?;
        let Some(node) = graph.index_of(node_id) else {
            return Ok(None);
        };
        self.trip();
        let fields: Vec<Option<String>> = self
            .inner
            .client
            .hmget(
                &key,
                vec![
                    format!("s:{node}"),
                    format!("t:{node}"),
                    format!("ch:{node}"),
                    format!("a:{node}"),
                    format!("c:{node}"),
                ],
            )
            .await
            .map_err(unavailable)?;
        let [state, token, bound, attempt, claims] =
            <[Option<String>; 5]>::try_from(fields).unwrap_or_default();
        let child_text = child.to_string();
        let token = match (state.as_deref(), token, bound.as_deref()) {
            (Some("R"), Some(token), Some(bound)) if bound == child_text && !token.is_empty() => {
                token
            }
            _ => return Ok(None),
        };
        Ok(Some(ClaimedJob {
            execution_id: parent,
            workflow_id: wf,
            workflow_version: version,
            node,
            node_id: node_id.to_owned(),
            children: graph.node(node).children.clone(),
            attempt: attempt.and_then(|a| a.parse().ok()).unwrap_or(1),
            claims: claims.and_then(|c| c.parse().ok()).unwrap_or(0),
            token: token.parse().map_err(|e| QueueError::Backend {
                reason: format!("unexpected token {token:?} of execution {parent}: {e}"),
                source: None,
            })?,
            input: serde_json::Value::Null,
            previous_results: Default::default(),
            parent_execution_id: par.filter(|p| !p.is_empty()).and_then(|p| p.parse().ok()),
            depth: dep.and_then(|d| d.parse().ok()).unwrap_or(0),
            delay_elapsed: false,
            lease: self.inner.config.lease,
            ready_at: None,
        }))
    }

    async fn forget_ended(&self, child: ExecutionId) -> Result<(), QueueError> {
        self.trip();
        let _: i64 = self
            .inner
            .client
            .zrem(self.ended_key(), child.to_string())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn children(&self, parent: ExecutionId) -> Result<Vec<ExecutionId>, QueueError> {
        self.trip();
        let kids: Option<String> = self
            .inner
            .client
            .hget(self.inner.keys.execution(parent), "kids")
            .await
            .map_err(unavailable)?;
        kids.unwrap_or_default()
            .split(',')
            .filter(|k| !k.is_empty())
            .map(parse_id)
            .collect()
    }
}
