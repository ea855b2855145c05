//! # PostgreSQL history: run on Redis, then query what happened
//!
//! ```text
//! cargo run -p postgres-history --example postgres-history
//! ```
//!
//! Needs Redis and PostgreSQL (`docker compose -f docker/compose.yml up -d`, or the URLs in
//! `SPANE_REDIS_URL`/`REDIS_URL` and `SPANE_DATABASE_URL`/`DATABASE_URL`). It runs 30
//! executions of an order workflow on the Redis backend — some orders are rejected, so some
//! executions fail — with write-behind history in PostgreSQL (schema `spane_example`), shuts
//! the workers down (which writes what is pending), and then reads the history back: counts by
//! status, the newest executions page by page with a cursor, and one execution with its node
//! results.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use spane::prelude::*;
use spane::queue::{RedisConfig, RedisQueue};
use spane::store::{ExecutionQuery, ExecutionStore, SqlStore, SqlStoreOptions};

fn env_url(names: [&str; 2], default: &str) -> String {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .unwrap_or_else(|| default.to_owned())
}

fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(
        "check",
        executor_fn(|ctx| async move {
            let qty = ctx.input_data["qty"].as_i64().unwrap_or(0);
            if qty > 8 {
                return Err(NodeError::fatal(format!(
                    "quantity {qty} is over the limit of 8"
                )));
            }
            Ok(NodeOutput::new(json!({ "qty": qty, "ok": true })))
        }),
    );
    r.register(
        "price",
        executor_fn(|ctx| async move {
            let qty = ctx.input_data["qty"].as_i64().unwrap_or(0);
            Ok(NodeOutput::new(json!({ "total": qty * 25 })))
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
    let redis_url = env_url(["SPANE_REDIS_URL", "REDIS_URL"], "redis://127.0.0.1:6379");
    let db_url = env_url(
        ["SPANE_DATABASE_URL", "DATABASE_URL"],
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let run = ExecutionId::new().to_string().to_lowercase();
    let prefix = format!("spane-example-{run}");

    let store = Arc::new(
        SqlStore::connect(&db_url, SqlStoreOptions::default().schema("spane_example"))
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL at {db_url} (start it: docker compose -f docker/compose.yml up -d)"
                )
            })?,
    );
    let engine = WorkflowEngine::builder()
        .registry(registry())
        .store(store.clone())
        .redis(RedisConfig::new(&redis_url).prefix(&prefix))
        .await
        .with_context(|| {
            format!("Redis at {redis_url} (start it: docker compose -f docker/compose.yml up -d)")
        })?
        .build();

    let workflow_id = format!("orders-{}", &run[run.len() - 6..]);
    let wf = WorkflowDefinition::new(&workflow_id, "Orders")
        .node(NodeDefinition::new("check", "check"))
        .node(NodeDefinition::new("price", "price"))
        .edge("check", "price");
    let version = engine.register_workflow(wf).await?;
    println!("workflow {workflow_id} v{version}, history in PostgreSQL schema spane_example");

    engine.start_workers(8)?;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            engine
                .enqueue_workflow(&workflow_id, json!({ "qty": i % 12 }))
                .await?,
        );
    }
    for id in &ids {
        engine
            .wait_for_execution(*id, Duration::from_secs(60))
            .await?;
    }
    // Stops the workers and writes the history that is still pending.
    engine.shutdown().await;

    let history = store
        .history()
        .context("the SQL store answers history queries")?;
    let mut counts: Vec<_> = history
        .count_by_status(Some(&workflow_id))
        .await?
        .into_iter()
        .collect();
    counts.sort_by_key(|(s, _)| s.as_str());
    println!("\nexecutions by status:");
    for (status, n) in counts {
        println!("  {status:<10} {n}");
    }

    println!("\nnewest first, 10 per page:");
    let mut query = ExecutionQuery {
        workflow_id: Some(workflow_id.clone()),
        limit: Some(10),
        ..ExecutionQuery::default()
    };
    let mut page_no = 1;
    loop {
        let page = history.list_executions_page(&query).await?;
        let line: Vec<String> = page
            .items
            .iter()
            .map(|r| format!("{}={}", &r.execution_id.to_string()[20..], r.status))
            .collect();
        println!("  page {page_no}: {}", line.join(" "));
        match page.next_cursor {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
        page_no += 1;
    }

    let failed = ids[9];
    let record = store
        .get_execution(failed)
        .await?
        .context("the execution is in the history")?;
    println!("\nexecution {failed} ({}):", record.status);
    if let Some(e) = &record.error {
        println!("  error: {e}");
    }
    for (node, result) in &record.node_results {
        println!(
            "  {node:<6} {:<9} attempts={} data={} error={}",
            result.status.as_str(),
            result.attempts,
            result
                .data
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            result.error.as_deref().unwrap_or("-")
        );
    }

    // The run's Redis keys are of no use any more; the history stays in PostgreSQL.
    if let Ok(q) = RedisQueue::connect(RedisConfig::new(&redis_url).prefix(&prefix)).await {
        let _ = q.delete_all_keys().await;
    }
    Ok(())
}
