//! The dead-letter queue on Redis: `P:{0}:dlq` orders the items by failure time; each item's
//! details live in its execution's hash (`dlq:<node>`), so it expires with the execution.

use async_trait::async_trait;
use fred::prelude::*;
use serde::Deserialize;
use spane_core::ExecutionId;

use super::{RedisQueue, millis, unavailable};
use crate::dlq::{DeadLetter, DeadLetterQueue, DeadLetterReason};
use crate::error::QueueError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    reason: String,
    error: String,
    attempts: u32,
    failed_at: i64,
}

fn split_member(member: &str) -> Option<(ExecutionId, usize)> {
    let (e, i) = member.split_once('|')?;
    Some((e.parse().ok()?, i.parse().ok()?))
}

impl RedisQueue {
    async fn dead_letter_at(
        &self,
        execution: ExecutionId,
        node: usize,
    ) -> Result<Option<DeadLetter>, QueueError> {
        let key = self.inner.keys.execution(execution);
        let (item, wf, ver, id): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = self
            .inner
            .client
            .hmget(
                key,
                vec![
                    format!("dlq:{node}"),
                    "wf".to_owned(),
                    "ver".to_owned(),
                    format!("id:{node}"),
                ],
            )
            .await
            .map_err(unavailable)?;
        let (Some(item), Some(id)) = (item, id) else {
            return Ok(None);
        };
        let item: Item = serde_json::from_str(&item).map_err(|e| QueueError::Backend {
            reason: format!("unreadable dead letter: {e}"),
            source: None,
        })?;
        Ok(Some(DeadLetter {
            execution_id: execution,
            workflow_id: wf.unwrap_or_default(),
            workflow_version: ver.and_then(|v| v.parse().ok()).unwrap_or(1),
            node_id: serde_json::from_str(&id).unwrap_or(id),
            reason: if item.reason == "stalled" {
                DeadLetterReason::Stalled
            } else {
                DeadLetterReason::Failed
            },
            error: item.error,
            attempts: item.attempts,
            failed_at: item.failed_at,
        }))
    }

    async fn node_index(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<Option<usize>, QueueError> {
        Ok(self
            .execution_fields(execution)
            .await?
            .and_then(|fields| fields.node_index(node_id)))
    }

    async fn revive(&self, execution: ExecutionId, nodes: Vec<usize>) -> Result<usize, QueueError> {
        if nodes.is_empty() {
            return Ok(0);
        }
        let k = &self.inner.keys;
        let mut args = vec![
            k.shard.clone(),
            execution.to_string(),
            self.inner.config.events_trim(),
        ];
        args.extend(nodes.iter().map(usize::to_string));
        let n: i64 = self
            .inner
            .scripts
            .revive
            .evalsha_with_reload(
                &self.inner.client,
                vec![k.ready.clone(), k.dlq.clone(), k.events.clone()],
                args,
            )
            .await
            .map_err(unavailable)?;
        Ok(n as usize)
    }
}

#[async_trait]
impl DeadLetterQueue for RedisQueue {
    async fn list_dead_letters(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let members: Vec<String> = self
            .inner
            .client
            .zrange(
                &self.inner.keys.dlq,
                offset as i64,
                (offset + limit - 1) as i64,
                None,
                false,
                None,
                false,
            )
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            if let Some((e, i)) = split_member(&m)
                && let Some(d) = self.dead_letter_at(e, i).await?
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    async fn count_dead_letters(&self) -> Result<usize, QueueError> {
        let n: i64 = self
            .inner
            .client
            .zcard(&self.inner.keys.dlq)
            .await
            .map_err(unavailable)?;
        Ok(n as usize)
    }

    async fn execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        // The items live in the execution's hash: its field names say which nodes have one,
        // without reading the whole dead-letter queue.
        let fields: Vec<String> = self
            .inner
            .client
            .hkeys(self.inner.keys.execution(execution))
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for node in fields
            .iter()
            .filter_map(|f| f.strip_prefix("dlq:")?.parse::<usize>().ok())
        {
            if let Some(d) = self.dead_letter_at(execution, node).await? {
                out.push(d);
            }
        }
        out.sort_by(|a, b| {
            a.failed_at
                .cmp(&b.failed_at)
                .then_with(|| a.node_id.cmp(&b.node_id))
        });
        Ok(out)
    }

    async fn get_dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<Option<DeadLetter>, QueueError> {
        match self.node_index(execution, node_id).await? {
            Some(i) => self.dead_letter_at(execution, i).await,
            None => Ok(None),
        }
    }

    async fn retry_dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<bool, QueueError> {
        match self.node_index(execution, node_id).await? {
            Some(i) => Ok(self.revive(execution, vec![i]).await? > 0),
            None => Ok(false),
        }
    }

    async fn retry_execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<usize, QueueError> {
        let members: Vec<String> = self
            .inner
            .client
            .zrange(&self.inner.keys.dlq, 0, -1, None, false, None, false)
            .await
            .map_err(unavailable)?;
        let nodes = members
            .iter()
            .filter_map(|m| split_member(m))
            .filter(|(e, _)| *e == execution)
            .map(|(_, i)| i)
            .collect();
        self.revive(execution, nodes).await
    }

    async fn purge_dead_letters(&self) -> Result<usize, QueueError> {
        let k = &self.inner.keys;
        let n: i64 = self
            .inner
            .scripts
            .purge
            .evalsha_with_reload(
                &self.inner.client,
                vec![k.dlq.clone()],
                vec![k.shard.clone(), millis(self.inner.config.retention)],
            )
            .await
            .map_err(unavailable)?;
        Ok(n as usize)
    }
}
