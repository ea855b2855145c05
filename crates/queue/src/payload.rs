//! Claim check: large payloads stored aside, referenced from the execution state.

use async_trait::async_trait;
use serde_json::{Value, json};
use spane_core::ExecutionId;

use crate::error::QueueError;

/// The `$ref` value that marks a payload reference.
pub const PAYLOAD_REF: &str = "spane-payload";

/// A reference to a payload stored aside: `{"$ref": "spane-payload", "key": ..., "bytes": n}`.
pub fn payload_ref(key: &str, bytes: usize) -> Value {
    json!({ "$ref": PAYLOAD_REF, "key": key, "bytes": bytes })
}

/// The key of `value` when it is a payload reference.
pub fn as_payload_ref(value: &Value) -> Option<&str> {
    let map = value.as_object()?;
    if map.get("$ref")?.as_str()? != PAYLOAD_REF {
        return None;
    }
    map.get("key")?.as_str()
}

/// Capability of a queue that keeps large payloads aside (see
/// [`ExecutionQueue::payloads`](crate::ExecutionQueue::payloads)). Payloads expire with their
/// execution's retention.
#[async_trait]
pub trait PayloadStore: Send + Sync {
    /// Stores `value` (its JSON text) for `execution` and returns its key.
    async fn put_payload(&self, execution: ExecutionId, json: String)
    -> Result<String, QueueError>;

    /// The payload under `key`, when it still exists.
    async fn get_payload(&self, key: &str) -> Result<Option<Value>, QueueError>;
}

/// Replaces every payload reference in `value` (at the top, or as a value of a top-level
/// object: a join's merged input) by the payload.
pub async fn resolve_payloads(
    store: &dyn PayloadStore,
    value: &mut Value,
) -> Result<(), QueueError> {
    if let Some(key) = as_payload_ref(value) {
        if let Some(v) = store.get_payload(key).await? {
            *value = v;
        }
        return Ok(());
    }
    if let Value::Object(map) = value {
        for v in map.values_mut() {
            if let Some(key) = as_payload_ref(v)
                && let Some(p) = store.get_payload(key).await?
            {
                *v = p;
            }
        }
    }
    Ok(())
}

/// Resolves the payload references among the outputs of `record`.
pub async fn resolve_record(
    store: &dyn PayloadStore,
    record: &mut spane_core::ExecutionRecord,
) -> Result<(), QueueError> {
    for result in record.node_results.values_mut() {
        if let Some(data) = result.data.as_mut() {
            resolve_payloads(store, data).await?;
        }
    }
    Ok(())
}
