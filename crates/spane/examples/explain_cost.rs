//! Measures what `explain` costs on a 1,000-node execution: wall time per call on both
//! backends, and on Redis the server-side commands and CPU per call (`INFO`).
//!
//! `cargo run -p spane --example explain_cost` (Redis from `REDIS_URL`, default local).
//! One root feeds 999 children and no worker runs: the root is queued and the 999 children
//! wait for it, so every node is explained (each read of the snapshot reads every node).

#![allow(clippy::print_stdout)]

use std::time::Instant;

use serde_json::json;
use spane::prelude::*;

const CALLS: u32 = 50;

fn wide() -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new("wide", "wide").node(NodeDefinition::new("root", "pass"));
    for i in 0..999 {
        wf = wf
            .node(NodeDefinition::new(format!("n{i}"), "pass"))
            .edge("root", &format!("n{i}"));
    }
    wf
}

async fn measure(name: &str, engine: WorkflowEngine) {
    engine.register_workflow(wide()).await.unwrap();
    let id = engine.enqueue_workflow("wide", json!({})).await.unwrap();
    let before = server_stats(&engine).await;
    let started = Instant::now();
    let mut nodes = 0;
    for _ in 0..CALLS {
        nodes = engine.explain(id).await.unwrap().nodes.len();
    }
    let per_call = started.elapsed() / CALLS;
    let after = server_stats(&engine).await;
    print!("{name}: {nodes} nodes explained, {per_call:?} per call");
    if let (Some(b), Some(a)) = (before, after) {
        print!(
            ", Redis {:.1} commands and {} µs CPU per call",
            (a.commands - b.commands) as f64 / f64::from(CALLS),
            (a.cpu_micros - b.cpu_micros) / u64::from(CALLS)
        );
    }
    println!();
    engine.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let registry = || {
        let mut r = NodeRegistry::new();
        r.register(
            "pass",
            executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
        );
        r
    };
    measure("embedded", WorkflowEngine::embedded(registry())).await;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!(
        "spane-explain-cost-{}",
        ExecutionId::new().to_string().to_lowercase()
    );
    let engine = WorkflowEngine::builder()
        .registry(registry())
        .redis(spane::queue::RedisConfig::new(url).prefix(prefix))
        .await
        .unwrap()
        .build();
    measure("redis", engine).await;
}

async fn server_stats(engine: &WorkflowEngine) -> Option<spane::queue::backend::ServerStats> {
    match engine.queue().counters() {
        Some(c) => Some(c.server_stats().await.unwrap()),
        None => None,
    }
}
