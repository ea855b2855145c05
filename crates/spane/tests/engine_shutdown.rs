//! Shutdown is prompt: an idle engine stops at once, whatever its claim wait, and a busy one as
//! soon as its in-flight nodes are done.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use spane::prelude::*;
use tokio::sync::Notify;

on_every_backend!(
    an_idle_engine_shuts_down_before_its_claim_wait,
    shutdown_returns_when_in_flight_nodes_are_done,
    workers_started_again_after_a_shutdown_run_at_once,
);

/// Far longer than any test deadline: a shutdown that waited for it would fail the test.
const LONG_CLAIM_WAIT: Duration = Duration::from_secs(300);

fn slow_config() -> spane::EngineConfig {
    spane::EngineConfig::default()
        .claim_wait(LONG_CLAIM_WAIT)
        .shutdown_timeout(LONG_CLAIM_WAIT)
}

async fn an_idle_engine_shuts_down_before_its_claim_wait(b: Backend) {
    let calls = Calls::default();
    let engine = engine_with(b, pass_registry(&calls), slow_config()).await;
    engine.start_workers(4).unwrap();
    // One execution first, so that the workers are back in a claim wait when shutdown comes.
    let done = run(&engine, graph("idle", &["a"], &[]), json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Completed);
    let report = tokio::time::timeout(DEADLINE, engine.shutdown())
        .await
        .expect("an idle engine shuts down without waiting for its claim wait");
    assert_eq!(report.released, 0);
}

async fn shutdown_returns_when_in_flight_nodes_are_done(b: Backend) {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let mut registry = NodeRegistry::new();
    let (s, r) = (started.clone(), release.clone());
    registry.register(
        "gate",
        executor_fn(move |_| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                s.notify_one();
                r.notified().await;
                Ok(NodeOutput::new(json!("done")))
            }
        }),
    );
    let engine = engine_with(b, registry, slow_config()).await;
    engine.start_workers(2).unwrap();
    engine
        .register_workflow(
            WorkflowDefinition::new("gated", "gated").node(NodeDefinition::new("g", "gate")),
        )
        .await
        .unwrap();
    let id = engine.enqueue_workflow("gated", json!({})).await.unwrap();
    tokio::time::timeout(DEADLINE, started.notified())
        .await
        .expect("the node starts");
    let stopping = tokio::spawn({
        let engine = engine.clone();
        async move { engine.shutdown().await }
    });
    release.notify_one();
    let report = tokio::time::timeout(DEADLINE, stopping)
        .await
        .expect("shutdown returns once the node is done, not after shutdown_timeout")
        .unwrap();
    // The node is released right after shutdown is asked for: it finishes while shutdown drains
    // (drained 1) or, when the release wins the race, just before (drained 0). Either way it is
    // not cancelled and given back (released 0), and shutdown does not wait for its 300 s
    // timeout.
    assert!(report.drained <= 1, "one node was in flight: {report:?}");
    assert_eq!(
        report.released, 0,
        "the in-flight node was not cancelled: {report:?}"
    );
    let record = engine.get_execution(id).await.unwrap().unwrap();
    assert_eq!(record.status, ExecutionStatus::Completed);
}

async fn workers_started_again_after_a_shutdown_run_at_once(b: Backend) {
    let calls = Calls::default();
    let engine = engine_with(b, pass_registry(&calls), slow_config()).await;
    engine.start_workers(2).unwrap();
    engine
        .register_workflow(graph("again", &["a"], &[]))
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, engine.shutdown())
        .await
        .expect("prompt shutdown");
    engine.start_workers(2).unwrap();
    let record = tokio::time::timeout(DEADLINE, finish(&engine, "again"))
        .await
        .expect("the new workers claim at once");
    assert_eq!(record.status, ExecutionStatus::Completed);
    tokio::time::timeout(DEADLINE, engine.shutdown())
        .await
        .expect("prompt shutdown");
}
