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
            // Open for 1.5 s: long enough that the fail-fast attempt below meets it open on a
            // loaded machine; the recovery loop then waits it out.
            "circuitBreaker": {"failureThreshold": 2, "successThreshold": 1, "timeout": 1500}
        }),
    ))
}

async fn breaker_opens_fails_fast_half_opens_and_closes(b: Backend) {
    let (down, calls) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU32::new(0)));
    let engine = engine(b, api_registry(down.clone(), calls.clone()), 2).await;
    engine.register_workflow(api_workflow("api")).await.unwrap();
    for _ in 0..2 {
        assert_eq!(finish(&engine, "api").await.status, ExecutionStatus::Failed);
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
        // Until the breaker's own open timeout has passed, attempts fail fast: wait for it.
        let breaker = engine.circuit_breakers().await.unwrap()[0].state;
        let reopens = breaker.opened_at + 1500 - spane::core::now_millis();
        if reopens > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(reopens as u64)).await;
        }
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
    assert_eq!(
        finish(&engine, "api").await.status,
        ExecutionStatus::Completed
    );
    engine.shutdown().await;
}

/// The limiter's promise: runs never go faster than its rate. Every run starts at or after the
/// slot it reserved, and slots are `spacing` apart from the first one, so the i-th start
/// (in time order) is at least `i × spacing` after `t0`, the time before the first run asked.
fn assert_never_faster_than(mut starts: Vec<i64>, t0: i64, spacing_ms: f64) {
    starts.sort_unstable();
    for (i, s) in starts.iter().enumerate() {
        let earliest = t0 as f64 + i as f64 * spacing_ms - 1.0;
        assert!(
            *s as f64 >= earliest,
            "run {i} started at +{} ms, before its earliest slot +{earliest:.0} ms: {starts:?}",
            s - t0
        );
    }
}

/// A registry whose `node_type` executor records when each run starts.
fn recording(node_type: &'static str) -> (NodeRegistry, Arc<Mutex<Vec<i64>>>) {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut r = NodeRegistry::new();
    let s = starts.clone();
    r.register(
        node_type,
        executor_fn(move |_ctx| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(spane::core::now_millis());
                Ok(NodeOutput::new(json!(null)))
            }
        }),
    );
    (r, starts)
}

async fn a_per_type_rate_limit_spaces_runs_evenly(b: Backend) {
    let (mut r, starts) = recording("limited");
    let per = Duration::from_millis(200);
    r.register_rate_limit("limited", 3, per);
    let engine = engine(b, r, 8).await;
    engine
        .register_workflow(
            WorkflowDefinition::new("rl", "rl").node(NodeDefinition::new("n", "limited")),
        )
        .await
        .unwrap();
    let t0 = spane::core::now_millis();
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
    // 3 per 200 ms: one slot every 66.7 ms.
    assert_never_faster_than(starts, t0, 200.0 / 3.0);
    engine.shutdown().await;
}

async fn the_global_rate_limit_applies_to_every_node(b: Backend) {
    let (r, starts) = recording("any");
    let per = Duration::from_millis(200);
    let engine = engine_with(
        b,
        r,
        spane::EngineConfig::default()
            .claim_wait(Duration::from_millis(200))
            .rate_limit(spane::core::RateLimit { max: 4, per }),
    )
    .await;
    engine.start_workers(8).unwrap();
    let t0 = spane::core::now_millis();
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
    assert_eq!(starts.len(), 8);
    // 4 per 200 ms across both executions: one slot every 50 ms.
    assert_never_faster_than(starts, t0, 50.0);
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
    a_per_type_rate_limit_spaces_runs_evenly,
    the_global_rate_limit_applies_to_every_node,
    cpu_heavy_executors_run_on_their_own_pool,
);

async fn a_per_type_limit_slows_only_its_type(b: Backend) {
    let finished = Arc::new(Mutex::new(Vec::<(&'static str, i64)>::new()));
    let mut r = NodeRegistry::new();
    for kind in ["limited", "free"] {
        let f = finished.clone();
        r.register(
            kind,
            executor_fn(move |_ctx| {
                let f = f.clone();
                async move {
                    f.lock().unwrap().push((kind, spane::core::now_millis()));
                    Ok(NodeOutput::new(json!(null)))
                }
            }),
        );
    }
    r.register_rate_limit("limited", 20, Duration::from_secs(1));
    let engine = engine(b, r, 16).await;
    for kind in ["limited", "free"] {
        engine
            .register_workflow(
                WorkflowDefinition::new(kind, kind).node(NodeDefinition::new("n", kind)),
            )
            .await
            .unwrap();
    }
    let t0 = spane::core::now_millis();
    let mut ids = Vec::new();
    for i in 0..200 {
        let kind = if i % 2 == 0 { "limited" } else { "free" };
        ids.push(engine.enqueue_workflow(kind, json!({})).await.unwrap());
    }
    for id in ids {
        let rec = engine
            .wait_for_execution(id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(rec.status, ExecutionStatus::Completed);
    }
    let finished = finished.lock().unwrap().clone();
    let last = |kind| {
        finished
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
            .max()
            .unwrap()
    };
    let limited_span = last("limited") - t0;
    // 100 runs at 20 per one-second window span at least 5 windows: more than 4 s.
    assert!(
        limited_span >= 4000,
        "100 limited nodes took only {limited_span} ms"
    );
    // The other type is not held back by the limited one.
    let limited_done_early = finished
        .iter()
        .filter(|(k, t)| *k == "limited" && *t <= last("free"))
        .count();
    assert!(
        limited_done_early < 60,
        "every free node finished while the limited type was still running ({limited_done_early} limited done)"
    );
    engine.shutdown().await;
}

async fn panicking_and_cpu_bound_executors_do_not_hold_up_other_nodes(b: Backend) {
    let busy_done = Arc::new(AtomicBool::new(false));
    let mut r = NodeRegistry::new();
    let done = busy_done.clone();
    r.register(
        "busy",
        executor_fn(move |_ctx| {
            let done = done.clone();
            async move {
                // A CPU-bound loop of 2 s that never yields.
                let until = std::time::Instant::now() + Duration::from_secs(2);
                let mut x = 0u64;
                while std::time::Instant::now() < until {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                done.store(true, Ordering::SeqCst);
                Ok(NodeOutput::new(json!(x % 2)))
            }
        }),
    );
    r.mark_cpu_heavy("busy");
    r.register(
        "boom",
        executor_fn(|_ctx| async move { panic!("executor bug") }),
    );
    r.register(
        "quick",
        executor_fn(|_ctx| async move { Ok(NodeOutput::new(json!("quick"))) }),
    );
    let engine = engine(b, r, 8).await;
    for (id, kind) in [("busy", "busy"), ("boom", "boom"), ("quick", "quick")] {
        engine
            .register_workflow(WorkflowDefinition::new(id, id).node(NodeDefinition::new("n", kind)))
            .await
            .unwrap();
    }
    let busy = engine.enqueue_workflow("busy", json!({})).await.unwrap();
    let boom = engine.enqueue_workflow("boom", json!({})).await.unwrap();
    for _ in 0..10 {
        assert_eq!(
            finish(&engine, "quick").await.status,
            ExecutionStatus::Completed
        );
    }
    assert!(
        !busy_done.load(Ordering::SeqCst),
        "the quick executions finished while the CPU-bound node still ran"
    );
    assert_eq!(
        engine
            .wait_for_execution(boom, DEADLINE)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Failed
    );
    assert_eq!(
        engine
            .wait_for_execution(busy, DEADLINE)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Completed
    );
    engine.shutdown().await;
}

on_every_backend!(
    a_per_type_limit_slows_only_its_type,
    panicking_and_cpu_bound_executors_do_not_hold_up_other_nodes,
);
