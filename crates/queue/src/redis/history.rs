//! The history feed on Redis: a consumer group `history` on the event stream, which the scripts
//! already append to inside every transition, so write-behind adds no command to the hot path.
//! The group is created with the stream when the queue connects, reading from the stream's
//! first entry, so that events appended before any writer started are not skipped.
//! The stream is bounded (`events_cap`, `events_max_age`): a writer must not fall further
//! behind than that.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use spane_core::{ExecutionId, WorkflowEventStatus};

use super::{RedisQueue, unavailable};
use crate::error::QueueError;
use crate::history::{HistoryBatch, HistoryEntry, HistoryFeed};

const GROUP: &str = "history";

/// What the history feed needs of an event: its execution, and for a workflow event its
/// status (whether it brought the execution to rest is the core's rule).
#[derive(Deserialize)]
struct Touched {
    #[serde(rename = "executionId")]
    execution_id: ExecutionId,
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
}

impl Touched {
    fn settles(&self) -> bool {
        self.kind.as_deref() == Some("workflow:status")
            && self.status.as_deref().is_some_and(|s| {
                let status: Result<WorkflowEventStatus, serde::de::value::Error> =
                    WorkflowEventStatus::deserialize(s.into_deserializer());
                status.is_ok_and(WorkflowEventStatus::is_at_rest)
            })
    }
}

/// The feed entry of a stream entry `id` whose `e` field is `events` (a JSON array of events).
fn history_entry(id: String, events: Option<String>) -> HistoryEntry {
    let touched: Vec<Touched> = events
        .and_then(|e| serde_json::from_str(&e).ok())
        .unwrap_or_default();
    let mut entry = HistoryEntry::new(id, Vec::new());
    entry.appended_ms = entry.id.split_once('-').and_then(|(ms, _)| ms.parse().ok());
    for t in touched {
        if t.settles() && !entry.settled.contains(&t.execution_id) {
            entry.settled.push(t.execution_id);
        }
        if !entry.executions.contains(&t.execution_id) {
            entry.executions.push(t.execution_id);
        }
    }
    entry
}

/// Entries (id, the `e` field) of an XREADGROUP or XAUTOCLAIM entry list.
fn parse_entries(list: Value) -> Vec<(String, Option<String>)> {
    list.into_array()
        .into_iter()
        .filter_map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let id = parts.next()?.as_string()?;
            let fields: Vec<String> = match parts.next() {
                Some(Value::Map(m)) => m
                    .inner()
                    .into_iter()
                    .flat_map(|(k, v)| [k.as_str().map(|s| s.to_string()), v.as_string()])
                    .flatten()
                    .collect(),
                Some(other) => other
                    .into_array()
                    .iter()
                    .filter_map(Value::as_string)
                    .collect(),
                None => Vec::new(),
            };
            let events = fields
                .chunks(2)
                .find(|kv| kv.len() == 2 && kv[0] == "e")
                .map(|kv| kv[1].clone());
            Some((id, events))
        })
        .collect()
}

/// Creates the `history` consumer group on `stream` (and the stream with it), reading from the
/// stream's first entry, so that the events appended before any history writer started reach
/// SQL too. Idempotent: an existing group (BUSYGROUP) is kept as it is.
pub(super) async fn create_history_group(client: &Client, stream: &str) -> Result<(), QueueError> {
    let created: Result<Value, _> = client
        .custom(
            fred::cmd!("XGROUP"),
            vec!["CREATE", stream, GROUP, "0", "MKSTREAM"],
        )
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(unavailable(e)),
    }
}

impl RedisQueue {
    /// Makes sure the history group exists, once per queue (the queue creates it when it
    /// connects; this covers a stream deleted in between).
    async fn ensure_history_group(&self) -> Result<(), QueueError> {
        if self.inner.history_group.get().is_some() {
            return Ok(());
        }
        self.trip();
        create_history_group(&self.inner.client, &self.inner.keys.events).await?;
        let _ = self.inner.history_group.set(());
        Ok(())
    }
}

#[async_trait]
impl HistoryFeed for RedisQueue {
    async fn history_batch(
        &self,
        consumer: &str,
        max: usize,
        _block: Duration,
        reclaim_idle: Duration,
    ) -> Result<HistoryBatch, QueueError> {
        self.ensure_history_group().await?;
        let stream = self.inner.keys.events.as_str();
        let count = max.max(1).to_string();
        // Entries a dead writer left pending come first.
        self.trip();
        let claimed: Value = self
            .inner
            .client
            .custom(
                fred::cmd!("XAUTOCLAIM"),
                vec![
                    stream.to_owned(),
                    GROUP.to_owned(),
                    consumer.to_owned(),
                    reclaim_idle.as_millis().to_string(),
                    "0-0".to_owned(),
                    "COUNT".to_owned(),
                    count.clone(),
                ],
            )
            .await
            .map_err(unavailable)?;
        let mut entries = claimed
            .into_array()
            .into_iter()
            .nth(1)
            .map(parse_entries)
            .unwrap_or_default();
        if entries.is_empty() {
            self.trip();
            // Not blocking: the connection is shared by every caller of this queue.
            let read: Value = self
                .inner
                .client
                .custom(
                    fred::cmd!("XREADGROUP"),
                    vec![
                        "GROUP".to_owned(),
                        GROUP.to_owned(),
                        consumer.to_owned(),
                        "COUNT".to_owned(),
                        count,
                        "STREAMS".to_owned(),
                        stream.to_owned(),
                        ">".to_owned(),
                    ],
                )
                .await
                .map_err(unavailable)?;
            let lists: Vec<Value> = match read {
                Value::Map(m) => m.inner().into_values().collect(),
                Value::Array(a) => a
                    .into_iter()
                    .filter_map(|s| s.into_array().into_iter().nth(1))
                    .collect(),
                _ => Vec::new(),
            };
            entries = lists.into_iter().flat_map(parse_entries).collect();
        }
        Ok(HistoryBatch {
            entries: entries
                .into_iter()
                .map(|(id, events)| history_entry(id, events))
                .collect(),
        })
    }

    async fn history_ack(&self, entries: &[String]) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut args = vec![self.inner.keys.events.clone(), GROUP.to_owned()];
        args.extend(entries.iter().cloned());
        self.trip();
        let _: i64 = self
            .inner
            .client
            .custom(fred::cmd!("XACK"), args)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_the_executions_it_changed_and_those_it_brought_to_rest() {
        let (done, running, paused) = (ExecutionId::new(), ExecutionId::new(), ExecutionId::new());
        let events = serde_json::json!([
            { "type": "node:progress", "executionId": running, "nodeId": "a", "status": "completed" },
            { "type": "workflow:status", "executionId": done, "status": "completed" },
            { "type": "workflow:status", "executionId": paused, "status": "paused" },
            { "type": "workflow:status", "executionId": running, "status": "resumed" },
        ]);
        let entry = history_entry("1700000000000-3".to_owned(), Some(events.to_string()));
        assert_eq!(entry.appended_ms, Some(1_700_000_000_000));
        assert_eq!(entry.executions, vec![running, done, paused]);
        assert_eq!(entry.settled, vec![done, paused]);
    }

    #[test]
    fn an_entry_whose_events_do_not_parse_touches_nothing() {
        let entry = history_entry("1-0".to_owned(), Some("not json".to_owned()));
        assert!(entry.executions.is_empty() && entry.settled.is_empty());
    }
}
