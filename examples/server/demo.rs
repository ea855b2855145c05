//! The demo workflows and executors the server registers, so that there is something to see.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use spane::prelude::*;

/// An order workflow: fan-out, join, a branch (the other side is skipped), a final node.
pub(crate) const ORDERS: &str = r#"{
  "id": "order-processing", "name": "Order processing", "entryNodeId": "validate",
  "nodes": [
    { "id": "validate", "type": "validate", "inputs": [], "outputs": ["price", "stock", "fraud"] },
    { "id": "price", "type": "work", "config": { "ms": 700 }, "inputs": ["validate"], "outputs": ["route"] },
    { "id": "stock", "type": "work", "config": { "ms": 1100 }, "inputs": ["validate"], "outputs": ["route"] },
    { "id": "fraud", "type": "work", "config": { "ms": 900 }, "inputs": ["validate"], "outputs": ["route"] },
    { "id": "route", "type": "route", "inputs": ["price", "stock", "fraud"], "outputs": ["manual-review", "auto-approve"] },
    { "id": "manual-review", "type": "work", "config": { "ms": 800 }, "inputs": ["route"], "outputs": ["notify"] },
    { "id": "auto-approve", "type": "work", "config": { "ms": 400 }, "inputs": ["route"], "outputs": ["notify"] },
    { "id": "notify", "type": "work", "config": { "ms": 300 }, "inputs": ["manual-review", "auto-approve"], "outputs": [] }
  ],
  "triggers": [{ "type": "webhook", "config": { "path": "orders", "method": "POST" } }]
}"#;

/// A payment, run as a sub-workflow by `checkout`.
pub(crate) const PAYMENT: &str = r#"{
  "id": "payment", "name": "Payment",
  "nodes": [
    { "id": "authorize", "type": "work", "config": { "ms": 600 }, "inputs": [], "outputs": ["capture"] },
    { "id": "capture", "type": "work", "config": { "ms": 500 }, "inputs": ["authorize"], "outputs": ["receipt"] },
    { "id": "receipt", "type": "work", "config": { "ms": 200 }, "inputs": ["capture"], "outputs": [] }
  ]
}"#;

/// A checkout whose `pay` node runs `payment` as a child execution.
pub(crate) const CHECKOUT: &str = r#"{
  "id": "checkout", "name": "Checkout",
  "nodes": [
    { "id": "cart", "type": "work", "config": { "ms": 300 }, "inputs": [], "outputs": ["pay"] },
    { "id": "pay", "type": "sub-workflow", "config": { "workflowId": "payment" }, "inputs": ["cart"], "outputs": ["ship"] },
    { "id": "ship", "type": "work", "config": { "ms": 400 }, "inputs": ["pay"], "outputs": [] }
  ]
}"#;

/// An import whose `load` step fails for good when the input says `"fail": true` (retried
/// twice first), so that the dead-letter queue has an item to retry. A retry succeeds.
pub(crate) const IMPORT: &str = r#"{
  "id": "nightly-import", "name": "Nightly import",
  "nodes": [
    { "id": "fetch", "type": "work", "config": { "ms": 500 }, "inputs": [], "outputs": ["parse"] },
    { "id": "parse", "type": "work", "config": { "ms": 400 }, "inputs": ["fetch"], "outputs": ["load"] },
    { "id": "load", "type": "load",
      "config": { "retryPolicy": { "maxAttempts": 2, "backoff": { "type": "fixed", "delay": 300 } } },
      "inputs": ["parse"], "outputs": ["report"] },
    { "id": "report", "type": "work", "config": { "ms": 300 }, "inputs": ["load"], "outputs": [] }
  ],
  "triggers": [{ "type": "schedule", "config": { "cron": "0 2 * * *", "timezone": "Europe/London" } }]
}"#;

/// Executions whose `load` step already failed for good (in this process).
static DEAD_LETTERED: LazyLock<Mutex<HashSet<ExecutionId>>> = LazyLock::new(Default::default);

/// The executors of the demo workflows.
pub(crate) fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(
        "validate",
        executor_fn(|ctx| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(NodeOutput::new(
                json!({ "valid": true, "order": ctx.input_data }),
            ))
        }),
    );
    // Simulated work: waits `config.ms` milliseconds, then echoes what it received.
    r.register(
        "work",
        executor_fn(|ctx| async move {
            let ms = ctx.node_config["ms"].as_u64().unwrap_or(500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(NodeOutput::new(
                json!({ "tookMs": ms, "input": ctx.input_data }),
            ))
        }),
    );
    r.register(
        "route",
        executor_fn(|ctx| async move {
            let total = order_total(&ctx.input_data);
            let branch = if total >= 1000.0 {
                "manual-review"
            } else {
                "auto-approve"
            };
            Ok(NodeOutput::new(json!({ "total": total, "branch": branch }))
                .with_next_nodes([branch]))
        }),
    );
    r.register(
        "load",
        executor_fn(|ctx| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            // Fails every attempt of the first run; a retry from the dead-letter queue (fresh
            // attempts) succeeds.
            if wants_failure(&ctx.input_data) {
                let mut dead = DEAD_LETTERED.lock().unwrap_or_else(PoisonError::into_inner);
                if !dead.contains(&ctx.execution_id) {
                    if ctx.attempt >= 2 {
                        dead.insert(ctx.execution_id);
                    }
                    return Err(NodeError::retryable("warehouse rejected the batch: 503"));
                }
            }
            Ok(NodeOutput::new(json!({ "rows": 1204 })))
        }),
    );
    r
}

fn order_total(input: &Value) -> f64 {
    input["validate"]["order"]["total"]
        .as_f64()
        .or_else(|| input["price"]["input"]["order"]["total"].as_f64())
        .unwrap_or(0.0)
}

fn wants_failure(input: &Value) -> bool {
    // The flag travels from the root through each node's echo.
    fn find(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.get("fail") == Some(&Value::Bool(true)) || m.values().any(find),
            _ => false,
        }
    }
    find(input)
}
