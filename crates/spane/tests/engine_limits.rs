//! Circuit breakers, rate limits and CPU-heavy isolation, on every backend.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use spane::core::BreakerStatus;
use spane::prelude::*;

fn api_registry(down: Arc<AtomicBool>, calls: Arc<AtomicU32>) -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register_external("flaky-api", |c| c["host"].as_str().map(str::to_owned));
    r.register(
        "flaky-api",
        executor_fn(move |_ctx| {
            let (down, calls) = (down.clone(), calls.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if down.load(Ordering::SeqCst) {
                    Err(NodeError::retryable("503 from upstream"))
                } else {
                    Ok(NodeOutput::new(json!("ok")))
                }
            }
        }),
    );
    r
}

fn api_workflow(id: &str) -> WorkflowDefinition {
    WorkflowDefinition::new(id, id).node(NodeDefinition::new("call", "flaky-api").with_config(
        json!({
            "host": "h1",
            "circuitBreaker": {"failureThreshold": 2, "successThreshold": 1, "timeout": 150}
        }),
    ))
}

async fn breaker_opens_fails_fast_half_opens_and_closes(b: Backend) {
    let (down, calls) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU32::new(0)));
    let engine = engine(b, api_registry(down.clone(), calls.clone()), 2).await;
    engine.register_workflow(api_workflow("api")).await.unwrap();
    for _ in 0..2 {
        let id = engine.enqueue_workflow("api", json!({})).await.unwrap();
        assert_eq!(
            engine
                .wait_for_execution(id, DEADLINE)
                .await
                .unwrap()
                .status,
            ExecutionStatus::Failed
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let breakers = engine.circuit_breakers().await.unwrap();
    assert_eq!(breakers.len(), 1);
    assert_eq!(breakers[0].key, "flaky-api:h1");
    assert_eq!(breakers[0].state.status, BreakerStatus::Open);

    // Open: the attempt fails without calling the executor.
    let id = engine.enqueue_workflow("api", json!({})).await.unwrap();
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert!(
        rec.node_results["call"]
            .error
            .as_deref()
            .unwrap()
            .contains("circuit breaker flaky-api:h1 is open")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the executor was not called"
    );

    // The upstream recovers; once the open timeout has passed a probe goes through and closes it.
    down.store(false, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let id = engine.enqueue_workflow("api", json!({})).await.unwrap();
        if engine
            .wait_for_execution(id, DEADLINE)
            .await
            .unwrap()
            .status
            == ExecutionStatus::Completed
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no probe before the deadline"
        );
    }
    let breakers = engine.circuit_breakers().await.unwrap();
    assert_eq!(breakers[0].state.status, BreakerStatus::Closed);

    // Reset forgets an open breaker.
    down.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let id = engine.enqueue_workflow("api", json!({})).await.unwrap();
        engine.wait_for_execution(id, DEADLINE).await.unwrap();
    }
    assert_eq!(
        engine.circuit_breakers().await.unwrap()[0].state.status,
        BreakerStatus::Open
    );
    assert!(engine.reset_circuit_breaker("flaky-api:h1").await.unwrap());
    down.store(false, Ordering::SeqCst);
    let id = engine.enqueue_workflow("api", json!({})).await.unwrap();
    assert_eq!(
        engine
            .wait_for_execution(id, DEADLINE)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Completed
    );
    engine.shutdown().await;
}

async fn rate_limits_hold_every_window_to_its_maximum(b: Backend) {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut r = NodeRegistry::new();
    let s = starts.clone();
    r.register(
        "limited",
        executor_fn(move |_ctx| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(spane::core::now_millis());
                Ok(NodeOutput::new(json!(null)))
            }
        }),
    );
    let per = Duration::from_millis(200);
    r.register_rate_limit("limited", 3, per);
    let engine = engine(b, r, 8).await;
    engine
        .register_workflow(
            WorkflowDefinition::new("rl", "rl").node(NodeDefinition::new("n", "limited")),
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(engine.enqueue_workflow("rl", json!({})).await.unwrap());
    }
    for id in ids {
        assert_eq!(
            engine
                .wait_for_execution(id, DEADLINE)
                .await
                .unwrap()
                .status,
            ExecutionStatus::Completed
        );
    }
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 12);
    let mut per_window = std::collections::BTreeMap::new();
    for t in &starts {
        *per_window.entry(t / per.as_millis() as i64).or_insert(0) += 1;
    }
    assert!(
        per_window.values().all(|&n| n <= 3),
        "windows: {per_window:?}"
    );
    assert!(
        per_window.len() >= 4,
        "12 runs at 3 per window need 4 windows: {per_window:?}"
    );
    engine.shutdown().await;
}

async fn the_global_rate_limit_applies_to_every_node(b: Backend) {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut r = NodeRegistry::new();
    let s = starts.clone();
    r.register(
        "any",
        executor_fn(move |_ctx| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(spane::core::now_millis());
                Ok(NodeOutput::new(json!(null)))
            }
        }),
    );
    let per = Duration::from_millis(200);
    let engine = engine_with(
        b,
        r,
        spane::EngineConfig {
            claim_wait: Duration::from_millis(200),
            rate_limit: Some(spane::core::RateLimit { max: 4, per }),
            ..spane::EngineConfig::default()
        },
    )
    .await;
    engine.start_workers(8).unwrap();
    let wf = graph("g", &[], &[])
        .node(NodeDefinition::new("a", "any"))
        .node(NodeDefinition::new("b", "any"))
        .node(NodeDefinition::new("c", "any"))
        .node(NodeDefinition::new("d", "any"));
    let rec = run(&engine, wf, json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    let rec2 = engine.enqueue_workflow("g", json!({})).await.unwrap();
    engine.wait_for_execution(rec2, DEADLINE).await.unwrap();
    let starts = starts.lock().unwrap().clone();
    let mut per_window = std::collections::BTreeMap::new();
    for t in &starts {
        *per_window.entry(t / per.as_millis() as i64).or_insert(0) += 1;
    }
    assert_eq!(starts.len(), 8);
    assert!(
        per_window.values().all(|&n| n <= 4),
        "windows: {per_window:?}"
    );
    engine.shutdown().await;
}

async fn cpu_heavy_executors_run_on_their_own_pool(b: Backend) {
    let threads = Arc::new(Mutex::new(Vec::new()));
    let mut r = NodeRegistry::new();
    let t = threads.clone();
    r.register(
        "crunch",
        executor_fn(move |_ctx| {
            let t = t.clone();
            async move {
                t.lock()
                    .unwrap()
                    .push(std::thread::current().name().unwrap_or("").to_owned());
                Ok(NodeOutput::new(json!("crunched")))
            }
        }),
    );
    r.mark_cpu_heavy("crunch");
    let engine = engine(b, r, 2).await;
    let wf = WorkflowDefinition::new("cpu", "cpu").node(NodeDefinition::new("c", "crunch"));
    let rec = run(&engine, wf, json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(*threads.lock().unwrap(), ["spane-cpu"]);
    engine.shutdown().await;
}

on_every_backend!(
    breaker_opens_fails_fast_half_opens_and_closes,
    rate_limits_hold_every_window_to_its_maximum,
    the_global_rate_limit_applies_to_every_node,
    cpu_heavy_executors_run_on_their_own_pool,
);
