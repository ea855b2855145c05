//! Decoding script replies and execution hashes.

use std::collections::BTreeMap;
use std::time::Duration;

use fred::bytes_utils::Str;
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

/// One node's fields of an execution hash (`<field>:<index>`), as they were read.
#[derive(Debug, Default, Clone)]
struct NodeFields {
    /// `id:i`: the node's id, as a JSON string.
    id: Option<Str>,
    /// `ns:i`: its status.
    status: Option<Str>,
    /// `o:i`: its output's JSON text.
    output: Option<Str>,
    /// `e:i`: its error.
    error: Option<Str>,
    /// `a:i`: attempts.
    attempts: Option<Str>,
    /// `c:i`: claims.
    claims: Option<Str>,
    /// `s:i`: its state; `K` when it failed and the execution continued.
    state: Option<Str>,
    /// `ts:i` and `tf:i`: when it started and finished (ms).
    started: Option<Str>,
    finished: Option<Str>,
}

impl NodeFields {
    fn id(&self) -> Option<String> {
        serde_json::from_str(self.id.as_deref()?).ok()
    }
}

/// The fields of an execution hash that make its record, read in one pass over `HGETALL`'s
/// flat reply (field, value, field, value, …) without building a map of owned strings: the
/// values stay slices of the reply until a record takes them.
#[derive(Debug, Default)]
pub(super) struct ExecutionFields {
    workflow: Option<Str>,
    version: Option<Str>,
    status: Option<Str>,
    initial: Option<Str>,
    created: Option<Str>,
    parent: Option<Str>,
    parent_node: Option<Str>,
    depth: Option<Str>,
    error: Option<Str>,
    finished: Option<Str>,
    /// Per node index, in index order (`n` of them).
    nodes: Vec<NodeFields>,
}

fn as_str(v: Value) -> Option<Str> {
    match v {
        Value::String(s) => Some(s),
        Value::Bytes(b) => Str::from_inner(b).ok(),
        _ => None,
    }
}

impl ExecutionFields {
    /// Reads `HGETALL`'s reply; `None` when the hash does not exist (an empty reply).
    pub(super) fn from_reply(reply: Value) -> Result<Option<Self>, QueueError> {
        let flat = match reply {
            Value::Array(flat) => flat,
            Value::Null => return Ok(None),
            other => {
                return Err(corrupt(format!(
                    "an execution hash read as {:?}",
                    other.kind()
                )));
            }
        };
        if flat.is_empty() {
            return Ok(None);
        }
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        let mut count = 0usize;
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let (Some(k), Some(v)) = (as_str(k), as_str(v)) else {
                continue;
            };
            if &*k == "n" {
                count = v.parse().unwrap_or(0);
            }
            pairs.push((k, v));
        }
        let mut f = ExecutionFields {
            // Bounded by the hash's own size: a corrupt `n` cannot make a huge allocation.
            nodes: vec![NodeFields::default(); count.min(pairs.len())],
            ..ExecutionFields::default()
        };
        for (k, v) in pairs {
            let slot = match &*k {
                "wf" => &mut f.workflow,
                "ver" => &mut f.version,
                "st" => &mut f.status,
                "init" => &mut f.initial,
                "ca" => &mut f.created,
                "par" => &mut f.parent,
                "pnd" => &mut f.parent_node,
                "dep" => &mut f.depth,
                "err" => &mut f.error,
                "fa" => &mut f.finished,
                key => {
                    let Some((field, index)) = key.split_once(':') else {
                        continue;
                    };
                    let Some(node) = index.parse::<usize>().ok().and_then(|i| f.nodes.get_mut(i))
                    else {
                        continue;
                    };
                    match field {
                        "id" => &mut node.id,
                        "ns" => &mut node.status,
                        "o" => &mut node.output,
                        "e" => &mut node.error,
                        "a" => &mut node.attempts,
                        "c" => &mut node.claims,
                        "s" => &mut node.state,
                        "ts" => &mut node.started,
                        "tf" => &mut node.finished,
                        _ => continue,
                    }
                }
            };
            *slot = Some(v);
        }
        Ok(Some(f))
    }

    /// The index of the node `node_id`.
    pub(super) fn node_index(&self, node_id: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.id().as_deref() == Some(node_id))
    }
}

fn number<T: std::str::FromStr>(v: Option<&Str>) -> Option<T> {
    v?.parse().ok()
}

/// Outputs of the nodes that have one, by node id.
pub(super) fn outputs(fields: &ExecutionFields) -> BTreeMap<String, Json> {
    fields
        .nodes
        .iter()
        .filter_map(|n| Some((n.id()?, serde_json::from_str(n.output.as_deref()?).ok()?)))
        .collect()
}

/// The record of an execution from its hash.
pub(super) fn execution_record(
    id: ExecutionId,
    fields: ExecutionFields,
) -> Result<ExecutionRecord, QueueError> {
    let text = |v: Option<Str>| v.filter(|s| !s.is_empty()).map(|s| s.to_string());
    let mut node_results = BTreeMap::new();
    for n in &fields.nodes {
        let Some(status) = n.status.as_deref().and_then(node_status) else {
            continue;
        };
        let Some(node) = n.id() else {
            continue;
        };
        let data = match n.output.as_deref() {
            Some(o) => Some(json(o, "node output")?),
            None => None,
        };
        let mut built = NodeResult::new(node.clone(), status);
        built.data = data;
        built.error = n.error.as_deref().map(str::to_owned);
        built.attempts = number(n.attempts.as_ref()).unwrap_or(0);
        built.claims = number(n.claims.as_ref()).unwrap_or(0);
        built.continued = n.state.as_deref() == Some("K");
        built.started_at = number(n.started.as_ref());
        built.finished_at = number(n.finished.as_ref());
        node_results.insert(node, built);
    }
    let status = fields
        .status
        .as_deref()
        .and_then(execution_status)
        .ok_or_else(|| corrupt("execution status"))?;
    let mut built = ExecutionRecord::new(
        id,
        fields.workflow.as_deref().unwrap_or_default().to_owned(),
        number(fields.version.as_ref()).unwrap_or(1),
        status,
        json(
            fields.initial.as_deref().unwrap_or_default(),
            "initial data",
        )?,
        number(fields.created.as_ref()).unwrap_or(0),
    );
    built.parent_execution_id = number(fields.parent.as_ref());
    built.depth = number(fields.depth.as_ref()).unwrap_or(0);
    built.finished_at = number(fields.finished.as_ref());
    built.parent_node_id = text(fields.parent_node);
    built.error = text(fields.error);
    built.node_results = node_results;
    Ok(built)
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

    fn reply(pairs: &[(&str, &str)]) -> Value {
        Value::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [Value::from(*k), Value::from(*v)])
                .collect(),
        )
    }

    #[test]
    fn an_execution_hash_makes_its_record_in_one_pass() {
        let id = ExecutionId::new();
        let parent = ExecutionId::new();
        let fields = reply(&[
            ("wf", "orders"),
            ("ver", "3"),
            ("st", "failed"),
            ("init", r#"{"a":1}"#),
            ("ca", "17"),
            ("par", &parent.to_string()),
            ("pnd", "call"),
            ("dep", "1"),
            ("err", "node b failed"),
            ("fa", "99"),
            ("n", "3"),
            ("id:0", r#""a""#),
            ("ns:0", "completed"),
            ("o:0", r#"{"x":[1,null]}"#),
            ("a:0", "1"),
            ("c:0", "2"),
            ("ts:0", "20"),
            ("tf:0", "30"),
            ("id:1", r#""b \"quoted\"""#),
            ("ns:1", "failed"),
            ("e:1", "boom"),
            ("s:1", "K"),
            // Not started: no status, so no result.
            ("id:2", r#""c""#),
            // Beyond `n`, and a field the record does not use: ignored.
            ("id:7", r#""ghost""#),
            ("ns:7", "completed"),
            ("p:0", "x"),
        ]);
        let f = ExecutionFields::from_reply(fields).unwrap().unwrap();
        assert_eq!(f.node_index("b \"quoted\""), Some(1));
        assert_eq!(f.node_index("ghost"), None);
        let outputs = outputs(&f);
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs["a"], serde_json::json!({"x": [1, null]}));
        let r = execution_record(id, f).unwrap();
        assert_eq!(
            (r.workflow_id.as_str(), r.workflow_version, r.status),
            ("orders", 3, ExecutionStatus::Failed)
        );
        assert_eq!(r.initial_data, serde_json::json!({"a": 1}));
        assert_eq!((r.created_at, r.finished_at, r.depth), (17, Some(99), 1));
        assert_eq!(r.parent_execution_id, Some(parent));
        assert_eq!(r.parent_node_id.as_deref(), Some("call"));
        assert_eq!(r.error.as_deref(), Some("node b failed"));
        assert_eq!(
            r.node_results.keys().collect::<Vec<_>>(),
            ["a", "b \"quoted\""]
        );
        let a = &r.node_results["a"];
        assert_eq!(
            (
                a.attempts,
                a.claims,
                a.started_at,
                a.finished_at,
                a.continued
            ),
            (1, 2, Some(20), Some(30), false)
        );
        let b = &r.node_results["b \"quoted\""];
        assert_eq!(
            (b.status, b.error.as_deref(), b.data.as_ref()),
            (NodeStatus::Failed, Some("boom"), None)
        );
        assert!(b.continued);
    }

    #[test]
    fn a_missing_or_corrupt_execution_hash_is_no_record_or_a_named_error() {
        assert!(
            ExecutionFields::from_reply(Value::Array(vec![]))
                .unwrap()
                .is_none()
        );
        assert!(ExecutionFields::from_reply(Value::Null).unwrap().is_none());
        // A huge `n` allocates no more than the hash holds.
        let f = ExecutionFields::from_reply(reply(&[("n", "99999999999"), ("st", "running")]))
            .unwrap()
            .unwrap();
        assert!(f.nodes.len() <= 2);
        let err = execution_record(ExecutionId::new(), f).unwrap_err();
        assert!(err.to_string().contains("initial data"), "{err}");
        let f = ExecutionFields::from_reply(reply(&[("st", "sideways")]))
            .unwrap()
            .unwrap();
        let err = execution_record(ExecutionId::new(), f).unwrap_err();
        assert!(err.to_string().contains("execution status"), "{err}");
    }

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
