//! # Sub-workflows: an order calls a payment workflow
//!
//! ```text
//! cargo run -p sub-workflows --example sub-workflows
//! ```
//!
//! The original SPANE's headline example, on the embedded engine (no services needed):
//!
//! ```text
//! order-processing:  validate-order ─> process-payment ─> send-confirmation
//!                                        (sub-workflow)
//!                                              │ amount, currency
//!                                              ▼
//! payment-workflow:                  authorize ─> capture
//!                                              │ paymentId, paymentStatus
//!                                              ▼
//!                         transactionId, status (outputMapping)
//! ```
//!
//! `process-payment` starts one child execution of `payment-workflow` with the input mapped
//! from the order (`inputMapping {target: source}`), gives its worker slot back while the
//! child runs, and resumes with the child's final output mapped back (`outputMapping`). The
//! parent's final output is printed. Exits 0 when the order completed.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use spane::prelude::*;

const PAYMENT: &str = r#"{
  "id": "payment-workflow",
  "name": "Payment",
  "nodes": [
    { "id": "authorize", "type": "authorize", "inputs": [], "outputs": ["capture"] },
    { "id": "capture", "type": "capture", "inputs": ["authorize"], "outputs": [] }
  ]
}"#;

const ORDER: &str = r#"{
  "id": "order-processing",
  "name": "Order Processing",
  "entryNodeId": "validate-order",
  "nodes": [
    { "id": "validate-order", "type": "transform", "config": {},
      "inputs": [], "outputs": ["process-payment"] },
    { "id": "process-payment", "type": "sub-workflow",
      "config": {
        "workflowId": "payment-workflow",
        "inputMapping": { "amount": "orderTotal", "currency": "orderCurrency" },
        "outputMapping": { "transactionId": "paymentId", "status": "paymentStatus" },
        "continueOnFail": false
      },
      "inputs": ["validate-order"], "outputs": ["send-confirmation"] },
    { "id": "send-confirmation", "type": "email", "config": {},
      "inputs": ["process-payment"], "outputs": [] }
  ]
}"#;

fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    // Checks the order and passes on what the payment needs.
    r.register(
        "transform",
        executor_fn(|ctx| async move {
            let total = ctx.input_data["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i["price"].as_f64())
                        .sum::<f64>()
                })
                .unwrap_or(0.0);
            if total <= 0.0 {
                return Err(NodeError::fatal("an order needs at least one priced item"));
            }
            Ok(NodeOutput::new(json!({
                "orderTotal": total,
                "orderCurrency": ctx.input_data["currency"],
                "customerId": ctx.input_data["customerId"],
            })))
        }),
    );
    r.register(
        "authorize",
        executor_fn(|ctx| async move {
            let amount = ctx.input_data["amount"].as_f64().unwrap_or(0.0);
            Ok(NodeOutput::new(json!({
                "authorization": format!("auth_{}", (amount * 100.0) as u64),
                "amount": amount,
                "currency": ctx.input_data["currency"],
            })))
        }),
    );
    r.register(
        "capture",
        executor_fn(|ctx| async move {
            let auth = ctx.input_data["authorization"].as_str().unwrap_or_default();
            Ok(NodeOutput::new(json!({
                "paymentId": auth.replace("auth_", "pay_"),
                "paymentStatus": "completed",
            })))
        }),
    );
    r.register(
        "email",
        executor_fn(|ctx| async move {
            Ok(NodeOutput::new(json!({
                "sent": true,
                "body": format!(
                    "Payment {} is {}",
                    ctx.input_data["transactionId"].as_str().unwrap_or("?"),
                    ctx.input_data["status"].as_str().unwrap_or("?")
                ),
            })))
        }),
    );
    r
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let engine = WorkflowEngine::embedded(registry());
    engine
        .register_workflow(WorkflowDefinition::from_json(PAYMENT)?)
        .await?;
    engine
        .register_workflow(WorkflowDefinition::from_json(ORDER)?)
        .await?;
    engine.start_workers(4)?;

    let order = json!({
        "customerId": 123,
        "currency": "USD",
        "items": [{ "sku": "book", "price": 59.99 }, { "sku": "pen", "price": 40.0 }],
    });
    let id = engine.enqueue_workflow("order-processing", order).await?;
    let done = engine
        .wait_for_execution(id, Duration::from_secs(10))
        .await?;
    let child = engine
        .child_executions(id)
        .await?
        .first()
        .copied()
        .context("the payment sub-workflow ran")?;
    let payment = engine
        .get_execution(child)
        .await?
        .context("the payment execution is readable")?;

    println!("order {id}: {}", done.status);
    println!(
        "  payment sub-workflow {child}: {} (depth {}, parent node {:?})",
        payment.status,
        payment.depth,
        payment.parent_node_id.as_deref().unwrap_or("")
    );
    let pretty = |v: Option<&Value>| serde_json::to_string_pretty(&v).unwrap_or_default();
    println!(
        "  process-payment output: {}",
        pretty(done.output("process-payment"))
    );
    println!(
        "  final output (send-confirmation): {}",
        pretty(done.output("send-confirmation"))
    );
    engine.shutdown().await;
    if done.status != ExecutionStatus::Completed {
        bail!("the order did not complete: {:?}", done.error);
    }
    Ok(())
}
