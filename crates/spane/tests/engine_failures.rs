//! Failures: failing for good, retries, continueOnFail, panics, timeouts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use futures::StreamExt;
use serde_json::json;
use spane::core::{NodeEventStatus, WorkflowEventStatus};
use spane::prelude::*;
use tokio::sync::Notify;

async fn failure_fails_once_lets_the_running_sibling_finish_and_starts_nothing_new(b: Backend) {
    let calls = Calls::default();
    let release_slow = Arc::new(Notify::new());
    let slow_started = Arc::new(Notify::new());
    let mut r = pass_registry(&calls);
    // `boom` fails only once `slow` runs, whichever of the two a worker takes first.
    let started = slow_started.clone();
    r.register(
        "boom",
        executor_fn(move |_ctx| {
            let started = started.clone();
            async move {
                started.notified().await;
                Err(NodeError::fatal("card declined"))
            }
        }),
    );
    let (c, gate, started) = (calls.clone(), release_slow.clone(), slow_started.clone());
    r.register(
        "slow",
        executor_fn(move |ctx| {
            let (c, gate, started) = (c.clone(), gate.clone(), started.clone());
            async move {
                c.hit(&ctx.node_id);
                started.notify_one();
                gate.notified().await;
                Ok(NodeOutput::new(json!("slow done")))
            }
        }),
    );
    let engine = engine(b, r, 4).await;
    let wf = WorkflowDefinition::new("fail-once", "fail once")
        .node(NodeDefinition::new("root", "pass"))
        .node(NodeDefinition::new("boom", "boom"))
        .node(NodeDefinition::new("slow", "slow"))
        .node(NodeDefinition::new("after-slow", "pass"))
        .node(NodeDefinition::new("after-boom", "pass"))
        .edge("root", "boom")
        .edge("root", "slow")
        .edge("slow", "after-slow")
        .edge("boom", "after-boom");
    engine.register_workflow(wf).await.unwrap();
    engine
        .register_workflow(graph("sentinel", &["s"], &[]))
        .await
        .unwrap();

    let mut events = engine.subscribe(EventFilter::All).await.unwrap();
    let id = engine
        .enqueue_workflow("fail-once", json!({}))
        .await
        .unwrap();

    // Wait for the execution to fail while `slow` is still running, then let `slow` finish.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let e = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("workflow failed event before the deadline")
            .unwrap()
            .unwrap();
        let failed =
            matches!(&e, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Failed);
        seen.push(e);
        if failed {
            break;
        }
    }
    assert_eq!(
        calls.count("slow"),
        1,
        "slow was running when the execution failed"
    );
    release_slow.notify_one();

    // A later, independent execution completing proves the queue moved past anything that
    // the slow node's commit could have enqueued (the ready queue is FIFO).
    let slow_done = loop {
        let e = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if matches!(&e, EngineEvent::Node(n) if n.node_id == "slow" && n.status == NodeEventStatus::Completed)
        {
            break e;
        }
        seen.push(e);
    };
    seen.push(slow_done);
    let sentinel = engine
        .enqueue_workflow("sentinel", json!({}))
        .await
        .unwrap();
    engine.wait_for_execution(sentinel, DEADLINE).await.unwrap();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(std::time::Duration::ZERO, events.next()).await
    {
        seen.push(e);
    }

    let rec = engine.get_execution(id).await.unwrap().unwrap();
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert!(rec.error.as_deref().unwrap().contains("card declined"));
    assert_eq!(
        rec.node_results["slow"].status,
        NodeStatus::Completed,
        "the sibling is recorded"
    );
    assert!(
        !rec.node_results.contains_key("after-slow"),
        "nothing new starts"
    );
    assert!(!rec.node_results.contains_key("after-boom"));
    assert_eq!(calls.count("after-slow"), 0);
    let failed_events = seen
        .iter()
        .filter(|e| matches!(e, EngineEvent::Workflow(w) if w.execution_id == id && w.status == WorkflowEventStatus::Failed))
        .count();
    assert_eq!(failed_events, 1, "the execution fails exactly once");
    assert!(!seen.iter().any(|e| matches!(e, EngineEvent::Workflow(w) if w.execution_id == id && w.status == WorkflowEventStatus::Completed)));
    engine.shutdown().await;
}

fn flaky_registry(
    fail_times: u32,
    error: fn(String) -> NodeError,
) -> (NodeRegistry, Arc<AtomicU32>) {
    let attempts = Arc::new(AtomicU32::new(0));
    let mut r = NodeRegistry::new();
    let a = attempts.clone();
    r.register(
        "flaky",
        executor_fn(move |ctx| {
            let a = a.clone();
            async move {
                let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= fail_times {
                    Err(error(format!("failure {n}")))
                } else {
                    Ok(NodeOutput::new(
                        json!({ "succeededOn": n, "attempt": ctx.attempt }),
                    ))
                }
            }
        }),
    );
    r.register(
        "pass",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
    );
    (r, attempts)
}

fn flaky_workflow(id: &str, retry: serde_json::Value) -> WorkflowDefinition {
    WorkflowDefinition::new(id, id)
        .node(NodeDefinition::new("flaky", "flaky").with_config(json!({ "retryPolicy": retry })))
        .node(NodeDefinition::new("after", "pass"))
        .edge("flaky", "after")
}

async fn root_failing_twice_then_succeeding_completes_with_three_attempts(b: Backend) {
    let (r, attempts) = flaky_registry(2, NodeError::retryable);
    let engine = engine(b, r, 2).await;
    let retry = json!({"maxAttempts": 3, "backoff": {"type": "exponential", "delay": 5}});
    let mut events = engine.subscribe(EventFilter::All).await.unwrap();
    let rec = run(&engine, flaky_workflow("retry-ok", retry), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    let mut retrying = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(std::time::Duration::ZERO, events.next()).await
    {
        if let EngineEvent::Node(n) = e
            && n.status == NodeEventStatus::Retrying
        {
            retrying.push((n.node_id, n.attempt, n.next_delay_ms, n.error));
        }
    }
    assert_eq!(
        retrying,
        [
            (
                "flaky".to_owned(),
                Some(1),
                Some(5),
                Some("failure 1".to_owned())
            ),
            (
                "flaky".to_owned(),
                Some(2),
                Some(10),
                Some("failure 2".to_owned())
            ),
        ],
        "one retrying event per failed attempt, with the exponential backoff"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(rec.node_results["flaky"].attempts, 3);
    assert_eq!(
        rec.output("after"),
        Some(&json!({ "succeededOn": 3, "attempt": 3 })),
        "the context carries the attempt number"
    );
    engine.shutdown().await;
}

async fn retries_exhausted_fail_the_execution_with_the_last_error(b: Backend) {
    let (r, attempts) = flaky_registry(2, NodeError::retryable);
    let engine = engine(b, r, 2).await;
    let retry = json!({"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 5}});
    let rec = run(&engine, flaky_workflow("retry-exhausted", retry), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        rec.node_results["flaky"].error.as_deref(),
        Some("failure 2")
    );
    assert!(
        rec.error.unwrap().contains("\"flaky\""),
        "the execution error names the node"
    );
    engine.shutdown().await;
}

async fn non_retryable_error_skips_remaining_attempts(b: Backend) {
    let (r, attempts) = flaky_registry(5, NodeError::fatal);
    let engine = engine(b, r, 2).await;
    let retry = json!({"maxAttempts": 5, "backoff": {"delay": 5}});
    let rec = run(&engine, flaky_workflow("fatal", retry), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    engine.shutdown().await;
}

async fn continue_on_fail_runs_the_children_with_an_error_object(b: Backend) {
    let (r, _) = flaky_registry(9, NodeError::fatal);
    let engine = engine(b, r, 2).await;
    let retry = json!({"maxAttempts": 1, "continueOnFail": true});
    let rec = run(&engine, flaky_workflow("continue", retry), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    let flaky = &rec.node_results["flaky"];
    assert_eq!(flaky.status, NodeStatus::Failed);
    assert!(flaky.continued);
    let after = rec.output("after").unwrap();
    assert_eq!(after["error"], json!("failure 1"));
    assert_eq!(after["failed"], json!(true));
    assert_eq!(after["nodeId"], json!("flaky"));
    engine.shutdown().await;
}

async fn a_panicking_executor_fails_its_attempt_and_the_worker_keeps_going(b: Backend) {
    let attempts = Arc::new(AtomicU32::new(0));
    let mut r = NodeRegistry::new();
    let a = attempts.clone();
    r.register(
        "panicky",
        executor_fn(move |_ctx| {
            let a = a.clone();
            async move {
                if a.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("executor bug");
                }
                Ok(NodeOutput::new(json!("recovered")))
            }
        }),
    );
    let engine = engine(b, r, 1).await;
    let retry = json!({"retryPolicy": {"maxAttempts": 2, "backoff": {"delay": 1}}});
    let wf = WorkflowDefinition::new("panic", "panic")
        .node(NodeDefinition::new("p", "panicky").with_config(retry));
    let rec = run(&engine, wf.clone(), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(rec.node_results["p"].attempts, 2);

    // Without retries the panic fails the execution with a message that says so.
    attempts.store(0, Ordering::SeqCst);
    let mut once = wf;
    once.id = "panic-once".into();
    once.nodes[0].config = json!({});
    let rec = run(&engine, once, json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Failed);
    let err = rec.node_results["p"].error.clone().unwrap();
    assert!(
        err.contains("panicked") && err.contains("executor bug"),
        "{err}"
    );
    engine.shutdown().await;
}

async fn a_node_over_its_timeout_fails_as_timed_out(b: Backend) {
    let mut r = NodeRegistry::new();
    r.register(
        "hang",
        executor_fn(|ctx| async move {
            ctx.cancellation.cancelled().await;
            Ok(NodeOutput::new(json!("never")))
        }),
    );
    let engine = engine(b, r, 1).await;
    let wf = WorkflowDefinition::new("timeout", "timeout")
        .node(NodeDefinition::new("h", "hang").with_config(json!({"timeout": 50})));
    let rec = run(&engine, wf, json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert!(
        rec.node_results["h"]
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 50 ms")
    );
    engine.shutdown().await;
}

on_every_backend!(
    failure_fails_once_lets_the_running_sibling_finish_and_starts_nothing_new,
    root_failing_twice_then_succeeding_completes_with_three_attempts,
    retries_exhausted_fail_the_execution_with_the_last_error,
    non_retryable_error_skips_remaining_attempts,
    continue_on_fail_runs_the_children_with_an_error_object,
    a_panicking_executor_fails_its_attempt_and_the_worker_keeps_going,
    a_node_over_its_timeout_fails_as_timed_out,
);

async fn exhausted_node_lands_in_the_dlq_and_a_retry_completes_the_execution(b: Backend) {
    let (r, attempts) = flaky_registry(2, NodeError::retryable);
    let engine = engine(b, r, 2).await;
    let retry = json!({"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 5}});
    let rec = run(&engine, flaky_workflow("dlq", retry), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    assert_eq!(engine.dead_letter_count().await.unwrap(), 1);
    let items = engine.dead_letters(0, 10).await.unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.execution_id, rec.execution_id);
    assert_eq!(item.node_id, "flaky");
    assert_eq!(item.workflow_id, "dlq");
    assert_eq!(item.attempts, 2);
    assert_eq!(item.error, "failure 2");
    assert_eq!(item.reason, spane::queue::DeadLetterReason::Failed);
    assert!(item.failed_at > 0);
    assert_eq!(
        engine
            .dead_letter(rec.execution_id, "flaky")
            .await
            .unwrap()
            .as_ref(),
        Some(item)
    );
    assert!(
        engine.dead_letters(1, 10).await.unwrap().is_empty(),
        "pagination"
    );

    // The third call succeeds: the retried node runs with fresh attempts and the execution,
    // including the child that never started, completes.
    assert!(
        engine
            .retry_dead_letter(rec.execution_id, "flaky")
            .await
            .unwrap()
    );
    let done = engine
        .wait_for_execution(rec.execution_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{done:?}");
    assert_eq!(
        done.output("after"),
        Some(&json!({ "succeededOn": 3, "attempt": 1 })),
        "a retried dead letter starts with fresh attempts"
    );
    assert_eq!(engine.dead_letter_count().await.unwrap(), 0);
    assert!(
        !engine
            .retry_dead_letter(rec.execution_id, "flaky")
            .await
            .unwrap()
    );
    engine.shutdown().await;
}

async fn purging_the_dlq_leaves_executions_failed(b: Backend) {
    let (r, _) = flaky_registry(9, NodeError::fatal);
    let engine = engine(b, r, 2).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let rec = run(
            &engine,
            flaky_workflow(&format!("purge-{i}"), json!({"maxAttempts": 1})),
            json!({}),
        )
        .await;
        assert_eq!(rec.status, ExecutionStatus::Failed);
        ids.push(rec.execution_id);
    }
    assert_eq!(engine.dead_letter_count().await.unwrap(), 3);
    let page: Vec<_> = engine
        .dead_letters(0, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.execution_id)
        .collect();
    assert_eq!(page, ids[..2], "oldest first");
    assert_eq!(
        engine.retry_execution_dead_letters(ids[2]).await.unwrap(),
        1
    );
    // It fails again (fatal every time) and is back in the queue.
    let again = engine.wait_for_execution(ids[2], DEADLINE).await.unwrap();
    assert_eq!(again.status, ExecutionStatus::Failed);
    assert_eq!(engine.dead_letter_count().await.unwrap(), 3);
    assert_eq!(engine.purge_dead_letters().await.unwrap(), 3);
    assert_eq!(engine.dead_letter_count().await.unwrap(), 0);
    assert_eq!(
        engine.get_execution(ids[0]).await.unwrap().unwrap().status,
        ExecutionStatus::Failed
    );
    engine.shutdown().await;
}

async fn dead_letters_are_listed_per_execution(b: Backend) {
    let (r, _) = flaky_registry(9, NodeError::fatal);
    let engine = engine(b, r, 2).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let rec = run(
            &engine,
            flaky_workflow(&format!("per-exec-{i}"), json!({"maxAttempts": 1})),
            json!({}),
        )
        .await;
        assert_eq!(rec.status, ExecutionStatus::Failed);
        ids.push(rec.execution_id);
    }
    for (i, id) in ids.iter().enumerate() {
        let items = engine.execution_dead_letters(*id).await.unwrap();
        assert_eq!(items.len(), 1, "one item for execution {i}");
        assert_eq!(items[0].execution_id, *id);
        assert_eq!(items[0].node_id, "flaky");
        assert_eq!(items[0].workflow_id, format!("per-exec-{i}"));
        assert_eq!(items[0].reason, spane::queue::DeadLetterReason::Failed);
    }
    assert!(
        engine
            .execution_dead_letters(ExecutionId::new())
            .await
            .unwrap()
            .is_empty(),
        "an unknown execution has none"
    );
    engine.purge_dead_letters().await.unwrap();
    assert!(
        engine
            .execution_dead_letters(ids[0])
            .await
            .unwrap()
            .is_empty(),
        "purged"
    );
    engine.shutdown().await;
}

on_every_backend!(
    exhausted_node_lands_in_the_dlq_and_a_retry_completes_the_execution,
    purging_the_dlq_leaves_executions_failed,
    dead_letters_are_listed_per_execution,
);

async fn retry_after_runs_the_node_again_without_consuming_an_attempt(b: Backend) {
    let calls = Arc::new(AtomicU32::new(0));
    let mut r = NodeRegistry::new();
    let c = calls.clone();
    r.register(
        "throttled",
        executor_fn(move |ctx| {
            let c = c.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(NodeError::retry_after(
                        "429 Too Many Requests",
                        std::time::Duration::from_millis(20),
                    ))
                } else {
                    Ok(NodeOutput::new(json!({ "attempt": ctx.attempt })))
                }
            }
        }),
    );
    let engine = engine(b, r, 2).await;
    // One attempt only: the two "come back later" answers must not use it up.
    let wf = WorkflowDefinition::new("throttled", "throttled").node(
        NodeDefinition::new("t", "throttled")
            .with_config(json!({"retryPolicy": {"maxAttempts": 1}})),
    );
    let rec = run(&engine, wf, json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(rec.output("t"), Some(&json!({ "attempt": 1 })));
    engine.shutdown().await;
}

on_every_backend!(retry_after_runs_the_node_again_without_consuming_an_attempt);
