//! Rows to records and back. JSON is stored as text so that it round-trips exactly; SQL NULL
//! stands for "no value" and stays distinct from the JSON value `null`.

use serde_json::Value;
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, NodeStatus};

use super::entity::{execution, node_result};
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
    }
}

pub(super) fn node_result_model(execution: &str, result: &NodeResult) -> node_result::Model {
    node_result::Model {
        id: 0,
        execution_id: execution.to_owned(),
        node_id: result.node_id.clone(),
        status: result.status.as_str().to_owned(),
        data: result.data.as_ref().map(json_text),
        error: result.error.clone(),
        attempts: i64::from(result.attempts),
        claims: i64::from(result.claims),
        continued: result.continued,
        started_at: result.started_at,
        finished_at: result.finished_at,
    }
}

pub(super) fn node_result(row: node_result::Model) -> Result<NodeResult, StoreError> {
    let data = row
        .data
        .as_deref()
        .map(|text| {
            parse_json(text, || {
                format!("node_results({}, {}).data", row.execution_id, row.node_id)
            })
        })
        .transpose()?;
    Ok({
        let mut built = NodeResult::new(row.node_id, node_status(&row.status)?);
        built.data = data;
        built.error = row.error;
        built.attempts = to_u32(row.attempts, "node_results.attempts")?;
        built.claims = to_u32(row.claims, "node_results.claims")?;
        built.continued = row.continued;
        built.started_at = row.started_at;
        built.finished_at = row.finished_at;
        built
    })
}

/// A record from its row, without node results.
pub(super) fn execution_record(row: execution::Model) -> Result<ExecutionRecord, StoreError> {
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
        built
    })
}
