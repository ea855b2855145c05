//! Inspection and the worker heartbeat registry on Redis.
//!
//! A snapshot reads one execution's hash with two `HMGET`s (its header, then ten fields per
//! node: state, shown status, attempt, error, due time, delay flag, bound child, dead-letter
//! item, lease token, routes), the lease expiries of its leased nodes (`ZMSCORE leases`), the
//! ready list's length and its first [`AHEAD_SCAN`] entries, and the worker registry: six
//! calls, none of which scans other executions' hashes.
//!
//! The registry is `P:{0}:workers`, a sorted set of worker ids by last beat (Redis's clock),
//! and `P:{0}:wk`, a hash of each worker's last beat as JSON; `workers.lua` writes both and
//! drops workers silent for an hour.

use std::collections::HashMap;

use async_trait::async_trait;
use fred::prelude::*;
use spane_core::explain::{DeadLetterSnapshot, ExecutionSnapshot, LeaseSnapshot};
use spane_core::{ExecutionId, NodeState};

use super::{RedisQueue, record, unavailable};
use crate::error::QueueError;
use crate::inspect::{ExecutionInspection, Inspected};
use crate::workers::{FORGET_AFTER_MS, WorkerBeat, WorkerRegistry};

/// How many entries at the head of the ready list a snapshot looks through to place the
/// execution's ready nodes.
pub(super) const AHEAD_SCAN: i64 = 1000;

const PER_NODE: usize = 10;

fn node_state(s: Option<&str>, routes: Option<&str>) -> NodeState {
    match s {
        Some("R") => NodeState::Ready,
        Some("C") => NodeState::Completed {
            routes: routes.map(|r| r.split(',').filter_map(|c| c.parse().ok()).collect()),
        },
        Some("K") => NodeState::Failed { continued: true },
        Some("F") => NodeState::Failed { continued: false },
        Some("S") => NodeState::Skipped,
        Some("D") => NodeState::Held,
        _ => NodeState::Waiting,
    }
}

impl RedisQueue {
    fn workers_keys(&self) -> (String, String) {
        let shard = &self.inner.keys.shard;
        (format!("{shard}workers"), format!("{shard}wk"))
    }

    async fn read_snapshot(&self, id: ExecutionId) -> Result<Option<Inspected>, QueueError> {
        let k = &self.inner.keys;
        let x = k.execution(id);
        let client = &self.inner.client;
        self.trip();
        let head: Vec<Option<String>> = client
            .hmget(&x, vec!["st", "wf", "ver", "n", "err", "rof"])
            .await
            .map_err(unavailable)?;
        let [st, wf, ver, n, err, rof] =
            <[Option<String>; 6]>::try_from(head).map_err(|_| QueueError::Backend {
                reason: "short HMGET reply".to_owned(),
                source: None,
            })?;
        let (Some(st), Some(wf)) = (st, wf) else {
            return Ok(None);
        };
        let version: u32 = ver.and_then(|v| v.parse().ok()).unwrap_or(1);
        let n: usize = n.and_then(|v| v.parse().ok()).unwrap_or(0);
        let graph = self.graph(&wf, version).await?;
        let mut fields = Vec::with_capacity(n * PER_NODE);
        for i in 0..n {
            for f in ["s", "ns", "a", "e", "ra", "de", "ch", "dlq", "t", "rt"] {
                fields.push(format!("{f}:{i}"));
            }
        }
        self.trip();
        let values: Vec<Option<String>> = if n == 0 {
            Vec::new()
        } else {
            client.hmget(&x, fields).await.map_err(unavailable)?
        };
        let now = spane_core::now_millis();
        let mut snap = ExecutionSnapshot::new(id, version, n, now);
        snap.status = record::execution_status(&st).unwrap_or(spane_core::ExecutionStatus::Running);
        snap.error = err;
        snap.rerun_of = rof.and_then(|r| r.parse().ok());
        let mut leased = Vec::new();
        for (i, node) in snap.nodes.iter_mut().enumerate() {
            let v = &values[i * PER_NODE..(i + 1) * PER_NODE];
            node.state = node_state(v[0].as_deref(), v[9].as_deref());
            node.shown = v[1].as_deref().and_then(record::node_status);
            node.attempt = v[2].as_deref().and_then(|a| a.parse().ok()).unwrap_or(0);
            node.error = v[3].clone();
            node.ready_at = v[4].as_deref().and_then(|t| t.parse().ok());
            node.delay_elapsed = v[5].as_deref() == Some("1");
            node.child = v[6].as_deref().and_then(|c| c.parse().ok());
            if let Some(item) = v[7].as_deref()
                && let Ok(item) = serde_json::from_str::<serde_json::Value>(item)
            {
                node.dead_letter = Some(DeadLetterSnapshot::new(
                    item["error"].as_str().unwrap_or_default(),
                    item["reason"].as_str() == Some("stalled"),
                    item["attempts"].as_u64().unwrap_or(0) as u32,
                    item["failedAt"].as_i64().unwrap_or(0),
                ));
            }
            if node.state == NodeState::Ready
                && let Some(tok) = v[8].as_deref().filter(|t| !t.is_empty())
            {
                leased.push((i, tok.parse::<u64>().unwrap_or(0)));
            }
        }
        if !leased.is_empty() {
            let mut args: Vec<Value> = vec![k.leases.clone().into()];
            args.extend(leased.iter().map(|(i, _)| Value::from(format!("{id}|{i}"))));
            self.trip();
            let scores: Vec<Option<f64>> = client
                .custom(fred::cmd!("ZMSCORE"), args)
                .await
                .map_err(unavailable)?;
            let beats = self.workers().await?;
            let mut holders: HashMap<(String, u64), (&str, i64)> = HashMap::new();
            for b in &beats {
                for j in &b.jobs {
                    if j.execution_id == id {
                        holders.insert((j.node_id.clone(), j.token), (&b.worker, j.since));
                    }
                }
            }
            for ((i, tok), score) in leased.into_iter().zip(scores) {
                // No lease entry: a sub-workflow node awaiting its child keeps its token only.
                let Some(expires) = score else { continue };
                let mut lease = LeaseSnapshot::new(expires as i64);
                if let Some((w, since)) = holders.get(&(graph.node(i).id.clone(), tok)) {
                    lease = lease.held_by(*w, Some(*since));
                }
                snap.nodes[i].lease = Some(lease);
            }
        }
        self.trip();
        let depth: i64 = client.llen(&k.ready).await.map_err(unavailable)?;
        snap.queue_depth = depth.max(0) as u64;
        if snap
            .nodes
            .iter()
            .any(|n| n.state == NodeState::Ready && n.lease.is_none())
        {
            self.trip();
            let head: Vec<String> = client
                .lrange(&k.ready, 0, AHEAD_SCAN - 1)
                .await
                .map_err(unavailable)?;
            let me = id.to_string();
            for (pos, entry) in head.iter().enumerate() {
                let mut parts = entry.split('|');
                if parts.next() != Some(me.as_str()) {
                    continue;
                }
                if let Some(i) = parts.next().and_then(|i| i.parse::<usize>().ok())
                    && let Some(node) = snap.nodes.get_mut(i)
                    && node.ahead.is_none()
                {
                    node.ahead = Some(pos as u64);
                }
            }
        }
        Ok(Some(Inspected::new(graph, snap)))
    }
}

#[async_trait]
impl ExecutionInspection for RedisQueue {
    async fn snapshot(&self, id: ExecutionId) -> Result<Option<Inspected>, QueueError> {
        self.read_snapshot(id).await
    }
}

#[async_trait]
impl WorkerRegistry for RedisQueue {
    async fn heartbeat(&self, beat: &WorkerBeat) -> Result<(), QueueError> {
        let (set, hash) = self.workers_keys();
        let json = serde_json::to_string(beat).map_err(|e| QueueError::Backend {
            reason: format!("serializing a heartbeat: {e}"),
            source: None,
        })?;
        self.trip();
        let _: i64 = self
            .inner
            .scripts
            .workers
            .evalsha_with_reload(
                &self.inner.client,
                vec![set, hash],
                vec![beat.worker.clone(), json, FORGET_AFTER_MS.to_string()],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerBeat>, QueueError> {
        let (set, hash) = self.workers_keys();
        self.trip();
        let seen: Vec<(String, f64)> = self
            .inner
            .client
            .zrange(
                &set,
                "+inf",
                "-inf",
                Some(fred::types::sorted_sets::ZSort::ByScore),
                true,
                None,
                true,
            )
            .await
            .map_err(unavailable)?;
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        self.trip();
        let beats: HashMap<String, String> = self
            .inner
            .client
            .hgetall(&hash)
            .await
            .map_err(unavailable)?;
        Ok(seen
            .into_iter()
            .filter_map(|(worker, at)| {
                let mut beat: WorkerBeat = serde_json::from_str(beats.get(&worker)?).ok()?;
                beat.seen_at = at as i64;
                Some(beat)
            })
            .collect())
    }

    async fn forget_worker(&self, worker: &str) -> Result<(), QueueError> {
        let (set, hash) = self.workers_keys();
        self.trip();
        let _: i64 = self
            .inner
            .client
            .zrem(&set, worker)
            .await
            .map_err(unavailable)?;
        self.trip();
        let _: i64 = self
            .inner
            .client
            .hdel(&hash, worker)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
