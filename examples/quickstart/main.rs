//! # Quickstart: an order workflow, no services needed
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Runs a 7-node workflow on the embedded engine (in-memory queue, store and event bus):
//!
//! ```text
//!                  ┌─> price-check ─┐
//! validate-order ──┤                ├─> route ──┬─> manual-review ──┐
//!                  └─> stock-check ─┘  (branch) └─> auto-approve ───┴─> notify
//! ```
//!
//! `price-check` and `stock-check` run in parallel (fan-out), `route` waits for both (join)
//! and picks one branch by order value (conditional branching: the other branch is skipped),
//! and `notify` runs on whichever branch ran. Node events are printed as they happen, then
//! the final execution record. Exits 0 when the execution completed.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use spane::prelude::*;

const WORKFLOW: &str = r#"{
  "id": "order-processing",
  "name": "Order processing",
  "entryNodeId": "validate-order",
  "nodes": [
    { "id": "validate-order", "type": "validate", "config": {},
      "inputs": [], "outputs": ["price-check", "stock-check"] },
    { "id": "price-check", "type": "price", "config": { "taxRate": 0.2 },
      "inputs": ["validate-order"], "outputs": ["route"] },
    { "id": "stock-check", "type": "stock", "config": {},
      "inputs": ["validate-order"], "outputs": ["route"] },
    { "id": "route", "type": "route", "config": { "highValueThreshold": 1000 },
      "inputs": ["price-check", "stock-check"], "outputs": ["manual-review", "auto-approve"] },
    { "id": "manual-review", "type": "review", "config": {},
      "inputs": ["route"], "outputs": ["notify"] },
    { "id": "auto-approve", "type": "approve", "config": {},
      "inputs": ["route"], "outputs": ["notify"] },
    { "id": "notify", "type": "notify", "config": {},
      "inputs": ["manual-review", "auto-approve"], "outputs": [] }
  ]
}"#;

fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(
        "validate",
        executor_fn(|ctx| async move {
            let items = ctx.input_data["items"]
                .as_array()
                .filter(|i| !i.is_empty())
                .ok_or_else(|| NodeError::fatal("order has no items"))?;
            Ok(NodeOutput::new(
                json!({ "orderId": ctx.input_data["orderId"], "items": items }),
            ))
        }),
    );
    r.register(
        "price",
        executor_fn(|ctx| async move {
            let tax = ctx.node_config["taxRate"].as_f64().unwrap_or(0.0);
            let subtotal: f64 = items(&ctx.input_data)
                .map(|i| i["price"].as_f64().unwrap_or(0.0) * i["qty"].as_f64().unwrap_or(1.0))
                .sum();
            Ok(NodeOutput::new(
                json!({ "subtotal": subtotal, "total": subtotal * (1.0 + tax) }),
            ))
        }),
    );
    r.register(
        "stock",
        executor_fn(|ctx| async move {
            let units: f64 = items(&ctx.input_data)
                .map(|i| i["qty"].as_f64().unwrap_or(1.0))
                .sum();
            Ok(NodeOutput::new(json!({ "inStock": true, "units": units })))
        }),
    );
    r.register(
        "route",
        executor_fn(|ctx| async move {
            // A join: the input holds one key per parent.
            let total = ctx.input_data["price-check"]["total"]
                .as_f64()
                .unwrap_or(0.0);
            let threshold = ctx.node_config["highValueThreshold"]
                .as_f64()
                .unwrap_or(1000.0);
            let branch = if total >= threshold {
                "manual-review"
            } else {
                "auto-approve"
            };
            Ok(NodeOutput::new(json!({ "total": total, "branch": branch }))
                .with_next_nodes([branch]))
        }),
    );
    r.register(
        "review",
        executor_fn(|ctx| async move {
            Ok(NodeOutput::new(
                json!({ "decision": "queued for review", "total": ctx.input_data["total"] }),
            ))
        }),
    );
    r.register(
        "approve",
        executor_fn(|ctx| async move {
            Ok(NodeOutput::new(
                json!({ "decision": "approved", "total": ctx.input_data["total"] }),
            ))
        }),
    );
    r.register(
        "notify",
        executor_fn(|ctx| async move {
            // Two declared parents, one skipped: only the branch that ran is in the input.
            let (from, result) = ctx
                .input_data
                .as_object()
                .and_then(|m| m.iter().next())
                .map(|(k, v)| (k.clone(), v.clone()))
                .ok_or_else(|| NodeError::fatal("nothing to notify about"))?;
            Ok(NodeOutput::new(
                json!({ "sent": true, "via": from, "decision": result["decision"] }),
            ))
        }),
    );
    r
}

fn items(input: &Value) -> impl Iterator<Item = &Value> {
    input["items"].as_array().into_iter().flatten()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let engine = WorkflowEngine::embedded(registry());
    let definition = WorkflowDefinition::from_json(WORKFLOW).context("parsing the workflow")?;
    let version = engine.register_workflow(definition).await?;
    println!("registered workflow order-processing v{version}");
    engine.start_workers(8)?;

    let mut events = engine.subscribe(EventFilter::All).await?;
    let printer = tokio::spawn(async move {
        use futures::StreamExt as _;
        while let Some(Ok(event)) = events.next().await {
            match &event {
                EngineEvent::Node(e) => println!("  node {:<15} {:?}", e.node_id, e.status),
                EngineEvent::Workflow(e) => println!("  workflow          {:?}", e.status),
                _ => {}
            }
            if matches!(&event, EngineEvent::Workflow(e) if e.status != spane::core::WorkflowEventStatus::Started)
            {
                break;
            }
        }
    });

    let order = json!({
        "orderId": "A-1001",
        "items": [ { "sku": "laptop", "price": 900.0, "qty": 1 }, { "sku": "mouse", "price": 25.0, "qty": 2 } ]
    });
    let id = engine.enqueue_workflow("order-processing", order).await?;
    println!("execution {id} started");
    let record = engine
        .wait_for_execution(id, Duration::from_secs(30))
        .await?;
    let _ = printer.await;
    engine.shutdown().await;

    println!(
        "\nfinal execution record:\n{}",
        serde_json::to_string_pretty(&record)?
    );
    if record.status != ExecutionStatus::Completed {
        bail!("execution ended {}: {:?}", record.status, record.error);
    }
    println!(
        "\nexecution {id} completed: {}",
        record.output("notify").cloned().unwrap_or_default()
    );
    Ok(())
}
