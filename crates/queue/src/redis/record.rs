//! Decoding script replies and execution hashes.

use std::collections::BTreeMap;
use std::time::Duration;

use fred::types::Value;
use serde_json::Value as Json;
use spane_core::{
    CompiledWorkflow, ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, NodeStatus,
};

use crate::error::QueueError;
use crate::job::ClaimedJob;
use crate::queue::ServerStats;

fn corrupt(what: impl Into<String>) -> QueueError {
    QueueError::Backend {
        reason: format!("unexpected data in Redis: {}", what.into()),
        source: None,
    }
}

fn json(text: &str, what: &str) -> Result<Json, QueueError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
}

fn text(v: &Value) -> String {
    v.as_string().unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The workflow and version of one job of a claim reply, to find its graph.
pub(super) fn job_version(value: &Value) -> Result<(String, u32), QueueError> {
    let Value::Array(f) = value else {
        return Err(corrupt("a claim reply that is not a list"));
    };
    if f.len() < 14 {
        return Err(corrupt(format!("claim reply with {} fields", f.len())));
    }
    let version = text(&f[9])
        .parse()
        .map_err(|e| corrupt(format!("version {:?}: {e}", text(&f[9]))))?;
    Ok((text(&f[8]), version))
}

/// One job of a claim reply (see `claim.lua`), of a version whose graph is `graph`: the node's
/// children come from the graph, and its input is built by the core's data-passing rule.
pub(super) fn claimed_job(
    value: Value,
    lease: Duration,
    graph: &CompiledWorkflow,
) -> Result<ClaimedJob, QueueError> {
    let f = value.into_array();
    if f.len() < 14 {
        return Err(corrupt(format!("claim reply with {} fields", f.len())));
    }
    let execution_id: ExecutionId = text(&f[0])
        .parse()
        .map_err(|e| corrupt(format!("execution id: {e}")))?;
    let node = usize::try_from(int(&f[1]))
        .ok()
        .filter(|&n| n < graph.nodes().len())
        .ok_or_else(|| corrupt(format!("node index {} of {}", int(&f[1]), graph.id())))?;
    // The live parents' outputs, keyed by parent index.
    let previous: serde_json::Map<String, Json> = match json(&text(&f[5]), "previous results")? {
        Json::Object(m) => m,
        other => return Err(corrupt(format!("previous results {other}"))),
    };
    // The script lists the live parents in the order of the node's inputs (its `p:i`, which is
    // the graph's parent list), so no sort and no search per parent is needed here.
    let mut parents = Vec::with_capacity(previous.len());
    for (index, output) in previous {
        let p = index
            .parse::<usize>()
            .ok()
            .filter(|&p| p < graph.nodes().len())
            .ok_or_else(|| corrupt(format!("parent index {index:?} of node {node}")))?;
        parents.push((p, output));
    }
    let initial = if graph.node(node).parents.is_empty() {
        json(&text(&f[6]), "initial data")?
    } else {
        Json::Null
    };
    // A re-run's changed input for this node replaces what its parents pass.
    let changed = f.get(14).map(text).filter(|t| !t.is_empty());
    let input = match changed {
        Some(t) => json(&t, "changed input")?,
        None => spane_core::node_input(graph, node, &initial, parents.iter().map(|(p, v)| (*p, v))),
    };
    let previous_results: BTreeMap<String, Json> = parents
        .into_iter()
        .map(|(p, v)| (graph.node(p).id.clone(), v))
        .collect();
    let parent = text(&f[10]);
    Ok(ClaimedJob {
        execution_id,
        workflow_id: graph.id().to_owned(),
        workflow_version: text(&f[9]).parse().unwrap_or(1),
        node,
        node_id: graph.node(node).id.clone(),
        children: graph.node(node).children.clone(),
        attempt: int(&f[3]) as u32,
        // Absent from replies of scripts older than the field.
        claims: f.get(15).map_or(0, int) as u32,
        token: int(&f[2]) as u64,
        input,
        previous_results,
        parent_execution_id: if parent.is_empty() {
            None
        } else {
            parent.parse().ok()
        },
        depth: text(&f[11]).parse().unwrap_or(0),
        delay_elapsed: int(&f[7]) == 1,
        lease,
        ready_at: text(&f[13]).parse().ok(),
    })
}

/// An execution status by its wire name.
pub(super) fn execution_status(name: &str) -> Option<ExecutionStatus> {
    Some(match name {
        "running" => ExecutionStatus::Running,
        "paused" => ExecutionStatus::Paused,
        "completed" => ExecutionStatus::Completed,
        "failed" => ExecutionStatus::Failed,
        "cancelled" => ExecutionStatus::Cancelled,
        _ => return None,
    })
}

pub(super) fn node_status(name: &str) -> Option<NodeStatus> {
    Some(match name {
        "pending" => NodeStatus::Pending,
        "running" => NodeStatus::Running,
        "delayed" => NodeStatus::Delayed,
        "completed" => NodeStatus::Completed,
        "failed" => NodeStatus::Failed,
        "skipped" => NodeStatus::Skipped,
        _ => return None,
    })
}

fn node_id(fields: &BTreeMap<String, String>, i: usize) -> Option<String> {
    fields
        .get(&format!("id:{i}"))
        .and_then(|j| serde_json::from_str::<String>(j).ok())
}

fn count(fields: &BTreeMap<String, String>) -> usize {
    fields.get("n").and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn millis(fields: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    fields.get(key).and_then(|v| v.parse().ok())
}

/// Outputs of the nodes that have one, by node id.
pub(super) fn outputs(fields: &BTreeMap<String, String>) -> BTreeMap<String, Json> {
    (0..count(fields))
        .filter_map(|i| {
            let out = fields.get(&format!("o:{i}"))?;
            Some((node_id(fields, i)?, serde_json::from_str(out).ok()?))
        })
        .collect()
}

/// The record of an execution from its hash.
pub(super) fn execution_record(
    id: ExecutionId,
    fields: &BTreeMap<String, String>,
) -> Result<ExecutionRecord, QueueError> {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    let mut node_results = BTreeMap::new();
    for i in 0..count(fields) {
        let Some(status) = fields.get(&format!("ns:{i}")).and_then(|s| node_status(s)) else {
            continue;
        };
        let Some(node) = node_id(fields, i) else {
            continue;
        };
        let data = match fields.get(&format!("o:{i}")) {
            Some(o) => Some(json(o, "node output")?),
            None => None,
        };
        node_results.insert(node.clone(), {
            let mut built = NodeResult::new(node, status);
            built.data = data;
            built.error = fields.get(&format!("e:{i}")).cloned();
            built.attempts = fields
                .get(&format!("a:{i}"))
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            built.claims = fields
                .get(&format!("c:{i}"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            built.continued = fields.get(&format!("s:{i}")).map(String::as_str) == Some("K");
            built.started_at = millis(fields, &format!("ts:{i}"));
            built.finished_at = millis(fields, &format!("tf:{i}"));
            built
        });
    }
    let parent = get("par");
    Ok({
        let mut built = ExecutionRecord::new(
            id,
            get("wf").to_owned(),
            get("ver").parse().unwrap_or(1),
            execution_status(get("st")).ok_or_else(|| corrupt("execution status"))?,
            json(get("init"), "initial data")?,
            millis(fields, "ca").unwrap_or(0),
        );
        built.parent_execution_id = if parent.is_empty() {
            None
        } else {
            parent.parse().ok()
        };
        built.parent_node_id = fields.get("pnd").filter(|p| !p.is_empty()).cloned();
        built.depth = get("dep").parse().unwrap_or(0);
        built.error = fields.get("err").filter(|e| !e.is_empty()).cloned();
        built.finished_at = millis(fields, "fa");
        built.node_results = node_results;
        built
    })
}

/// Parses `INFO commandstats` and `INFO cpu`.
pub(super) fn server_stats(info: &str) -> ServerStats {
    let mut stats = ServerStats::default();
    let mut cpu = 0.0f64;
    for line in info.lines() {
        if line.starts_with("cmdstat_") {
            if let Some(calls) = line
                .split([':', ','])
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok())
            {
                stats.commands += calls;
            }
        } else if let Some(v) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            cpu += v.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    stats.cpu_micros = (cpu * 1e6) as u64;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_stats_sum_commands_and_cpu() {
        let info = "# Commandstats\r\ncmdstat_get:calls=10,usec=5,usec_per_call=0.5\r\n\
                    cmdstat_evalsha:calls=3,usec=9\r\n# CPU\r\nused_cpu_sys:1.5\r\n\
                    used_cpu_user:0.25\r\nused_cpu_sys_children:9.0\r\n";
        let s = server_stats(info);
        assert_eq!(s.commands, 13);
        assert_eq!(s.cpu_micros, 1_750_000);
    }
}
