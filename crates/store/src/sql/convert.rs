//! Rows to records and back. JSON is stored as text so that it round-trips exactly; SQL NULL
//! stands for "no value" and stays distinct from the JSON value `null`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, NodeStatus};

use super::entity::execution;
use crate::StoreError;

pub(super) fn json_text(value: &Value) -> String {
    value.to_string()
}

pub(super) fn parse_json(text: &str, what: impl FnOnce() -> String) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        reason: format!("{}: invalid JSON: {e}", what()),
    })
}

pub(super) fn execution_status(text: &str) -> Result<ExecutionStatus, StoreError> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| StoreError::Corrupt {
        reason: format!("unknown execution status {text:?}"),
    })
}

fn node_status(text: &str) -> Result<NodeStatus, StoreError> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| StoreError::Corrupt {
        reason: format!("unknown node status {text:?}"),
    })
}

pub(super) fn execution_id(text: &str) -> Result<ExecutionId, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt {
        reason: format!("{e}"),
    })
}

pub(super) fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        reason: format!("{what} = {value}: out of range"),
    })
}

pub(super) fn execution_model(record: &ExecutionRecord) -> execution::Model {
    execution::Model {
        id: record.execution_id.to_string(),
        workflow_id: record.workflow_id.clone(),
        workflow_version: i64::from(record.workflow_version),
        status: record.status.as_str().to_owned(),
        parent_execution_id: record.parent_execution_id.map(|p| p.to_string()),
        depth: i64::from(record.depth),
        parent_node_id: record.parent_node_id.clone(),
        initial_data: json_text(&record.initial_data),
        metadata: None,
        error: record.error.clone(),
        created_at: record.created_at,
        finished_at: record.finished_at,
        nodes: Some(nodes_text(&record.node_results)),
    }
}

/// One node's result inside `executions.nodes`: the columns of the former `node_results`
/// table, every one present (`null` for none), so that a merge (PostgreSQL's `||`, SQLite's
/// `json_patch`) replaces a node's entry as a whole. `data` is the output's JSON text, as a
/// string: `null` is "no output", the string `"null"` the output `null`.
#[derive(Serialize, Deserialize)]
struct NodeEntry<'a> {
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    error: Option<String>,
    attempts: u32,
    #[serde(default)]
    claims: u32,
    #[serde(default)]
    continued: bool,
    #[serde(default)]
    started_at: Option<i64>,
    #[serde(default)]
    finished_at: Option<i64>,
}

fn node_entry(result: &NodeResult) -> NodeEntry<'_> {
    NodeEntry {
        status: result.status.as_str().into(),
        data: result.data.as_ref().map(json_text),
        error: result.error.clone(),
        attempts: result.attempts,
        claims: result.claims,
        continued: result.continued,
        started_at: result.started_at,
        finished_at: result.finished_at,
    }
}

fn serialize(value: &impl Serialize) -> String {
    // Strings, numbers and booleans only: serializing cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The `executions.nodes` text of `results`: a JSON object from node id to entry.
pub(super) fn nodes_text(results: &BTreeMap<String, NodeResult>) -> String {
    let entries: BTreeMap<&str, NodeEntry<'_>> = results
        .iter()
        .map(|(id, r)| (id.as_str(), node_entry(r)))
        .collect();
    serialize(&entries)
}

/// The entry of one node, for a merge into `executions.nodes`.
pub(super) fn node_entry_text(result: &NodeResult) -> String {
    serialize(&node_entry(result))
}

fn corrupt_nodes(id: &str, e: &serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        reason: format!("executions({id}).nodes: {e}"),
    }
}

/// The node results that `executions.nodes` of execution `id` holds (`None`: none yet).
pub(super) fn node_results(
    id: &str,
    nodes: Option<&str>,
) -> Result<BTreeMap<String, NodeResult>, StoreError> {
    let Some(text) = nodes else {
        return Ok(BTreeMap::new());
    };
    let entries: BTreeMap<String, NodeEntry<'_>> =
        serde_json::from_str(text).map_err(|e| corrupt_nodes(id, &e))?;
    entries
        .into_iter()
        .map(|(node, entry)| {
            let data = entry
                .data
                .as_deref()
                .map(|text| parse_json(text, || format!("executions({id}).nodes.{node}.data")))
                .transpose()?;
            let mut built = NodeResult::new(node.clone(), node_status(&entry.status)?);
            built.data = data;
            built.error = entry.error;
            built.attempts = entry.attempts;
            built.claims = entry.claims;
            built.continued = entry.continued;
            built.started_at = entry.started_at;
            built.finished_at = entry.finished_at;
            Ok((node, built))
        })
        .collect()
}

/// How many nodes of execution `id` are in each status, from its `executions.nodes` (the
/// entries' other fields, the outputs among them, are not parsed).
pub(super) fn node_status_counts(
    id: &str,
    nodes: Option<&str>,
) -> Result<HashMap<NodeStatus, u64>, StoreError> {
    #[derive(Deserialize)]
    struct StatusOnly<'a> {
        #[serde(borrow)]
        status: std::borrow::Cow<'a, str>,
    }
    let mut counts = HashMap::new();
    let Some(text) = nodes else {
        return Ok(counts);
    };
    let entries: BTreeMap<String, StatusOnly<'_>> =
        serde_json::from_str(text).map_err(|e| corrupt_nodes(id, &e))?;
    for entry in entries.values() {
        *counts.entry(node_status(&entry.status)?).or_insert(0) += 1;
    }
    Ok(counts)
}

/// A record from its row, with its node results.
pub(super) fn execution_record(row: execution::Model) -> Result<ExecutionRecord, StoreError> {
    let node_results = node_results(&row.id, row.nodes.as_deref())?;
    Ok({
        let mut built = ExecutionRecord::new(
            execution_id(&row.id)?,
            row.workflow_id,
            to_u32(row.workflow_version, "executions.workflow_version")?,
            execution_status(&row.status)?,
            parse_json(&row.initial_data, || {
                format!("executions({}).initial_data", row.id)
            })?,
            row.created_at,
        );
        built.parent_execution_id = row
            .parent_execution_id
            .as_deref()
            .map(execution_id)
            .transpose()?;
        built.depth = to_u32(row.depth, "executions.depth")?;
        built.parent_node_id = row.parent_node_id;
        built.error = row.error;
        built.finished_at = row.finished_at;
        built.node_results = node_results;
        built
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_entries_round_trip_and_count_with_escaped_node_ids() {
        let mut results = BTreeMap::new();
        for (id, status, data) in [
            ("plain", NodeStatus::Completed, Some(Value::Null)),
            ("quote \" and \\ back", NodeStatus::Failed, None),
            (
                "é\n",
                NodeStatus::Completed,
                Some(serde_json::json!({"z": 1, "a": [false]})),
            ),
        ] {
            let mut result = NodeResult::new(id, status);
            result.data = data;
            results.insert(id.to_owned(), result);
        }
        let text = nodes_text(&results);
        assert_eq!(node_results("x", Some(&text)).unwrap(), results);
        assert_eq!(
            node_status_counts("x", Some(&text)).unwrap(),
            HashMap::from([(NodeStatus::Completed, 2), (NodeStatus::Failed, 1)])
        );
        assert!(node_status_counts("x", None).unwrap().is_empty());
        assert!(matches!(
            node_status_counts("x", Some("[1]")),
            Err(StoreError::Corrupt { reason }) if reason.starts_with("executions(x).nodes")
        ));
    }
}
