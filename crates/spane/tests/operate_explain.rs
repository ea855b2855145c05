//! "Why is it stuck?": one scenario per reason, on every backend. Each asserts the reason and
//! its details (never the wording).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use spane::core::explain::{Explanation, Reason};
use spane::prelude::*;
use tokio::sync::Notify;

/// Explains `id` until `check` accepts the explanation (the state it waits for may take a
/// moment to be reached), within the deadline.
async fn explain_until(
    engine: &WorkflowEngine,
    id: ExecutionId,
    what: &str,
    check: impl Fn(&Explanation) -> bool,
) -> Explanation {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let e = engine.explain(id).await.expect("explain");
        if check(&e) {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not before the deadline; last explanation: {e:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reason<'a>(e: &'a Explanation, node: &str) -> &'a Reason {
    &e.node(node)
        .unwrap_or_else(|| panic!("node {node} is not explained: {e:#?}"))
        .reason
}

/// `gate` waits until the test releases it.
fn gated(calls: &Calls, gate: Arc<Notify>) -> NodeRegistry {
    let mut r = pass_registry(calls);
    r.register(
        "gate",
        executor_fn(move |ctx| {
            let gate = gate.clone();
            async move {
                tokio::select! {
                    _ = gate.notified() => Ok(NodeOutput::new(json!({"gate": ctx.node_id}))),
                    _ = ctx.cancellation.cancelled() => Err(NodeError::fatal("cancelled")),
                }
            }
        }),
    );
    r
}

fn gated_chain(id: &str) -> WorkflowDefinition {
    WorkflowDefinition::new(id, id)
        .node(NodeDefinition::new("a", "gate"))
        .node(NodeDefinition::new("b", "pass"))
        .edge("a", "b")
}

async fn running_on_a_live_worker_and_children_wait_for_parents(b: Backend) {
    let gate = Arc::new(Notify::new());
    let engine = engine(b, gated(&Calls::default(), gate.clone()), 2).await;
    engine
        .register_workflow(gated_chain("chain"))
        .await
        .unwrap();
    let id = engine.enqueue_workflow("chain", json!({})).await.unwrap();
    let e = explain_until(&engine, id, "a runs on a known live worker", |e| {
        matches!(
            e.node("a").map(|n| &n.reason),
            Some(Reason::Running {
                worker: Some(_),
                worker_alive: Some(true),
                ..
            })
        )
    })
    .await;
    let Reason::Running {
        attempt,
        since,
        lease_until,
        ..
    } = reason(&e, "a")
    else {
        unreachable!()
    };
    assert_eq!(*attempt, 1);
    assert!(since.is_some());
    assert!(*lease_until > now_ms());
    let Reason::WaitingForParents { parents } = reason(&e, "b") else {
        panic!("b: {e:#?}")
    };
    assert_eq!(parents.len(), 1);
    assert_eq!(parents[0].node_id, "a");
    assert_eq!(parents[0].status, Some(NodeStatus::Running));
    assert_eq!(e.status, ExecutionStatus::Running);
    gate.notify_one();
    engine.wait_for_execution(id, DEADLINE).await.unwrap();
    let done = engine.explain(id).await.unwrap();
    assert!(done.nodes.is_empty());
    assert_eq!(done.status, ExecutionStatus::Completed);
    engine.shutdown().await;
}

fn now_ms() -> i64 {
    spane::core::now_millis()
}

async fn ready_but_no_worker(b: Backend) {
    let calls = Calls::default();
    let engine = engine_with(b, pass_registry(&calls), spane::EngineConfig::default()).await;
    engine
        .register_workflow(graph("lonely", &["a", "b"], &[("a", "b")]))
        .await
        .unwrap();
    let id = engine.enqueue_workflow("lonely", json!({})).await.unwrap();
    let e = engine.explain(id).await.unwrap();
    let Reason::Queued {
        ahead,
        queue_depth,
        needs_executor,
        live_workers,
        workers_with_executor,
        ready_since,
        ..
    } = reason(&e, "a")
    else {
        panic!("{e:#?}")
    };
    assert_eq!(*ahead, Some(0));
    assert_eq!(*queue_depth, 1);
    assert!(*needs_executor);
    assert_eq!(*live_workers, Some(0));
    assert_eq!(*workers_with_executor, Some(0));
    assert!(ready_since.is_some());
    assert_eq!(e.headline.as_deref(), Some("a"));
    engine.shutdown().await;
}

async fn held_by_pause(b: Backend) {
    let engine = engine_with(
        b,
        pass_registry(&Calls::default()),
        spane::EngineConfig::default(),
    )
    .await;
    engine
        .register_workflow(graph("paused", &["a"], &[]))
        .await
        .unwrap();
    let id = engine.enqueue_workflow("paused", json!({})).await.unwrap();
    engine.pause_execution(id).await.unwrap();
    let e = engine.explain(id).await.unwrap();
    assert_eq!(reason(&e, "a"), &Reason::Paused);
    assert_eq!(e.status, ExecutionStatus::Paused);
    engine.shutdown().await;
}

async fn waiting_for_a_delay(b: Backend) {
    let engine = engine(b, pass_registry(&Calls::default()), 2).await;
    let wf = WorkflowDefinition::new("slow", "slow")
        .node(NodeDefinition::new("wait", "delay").with_config(json!({"durationSeconds": 60})));
    engine.register_workflow(wf).await.unwrap();
    let id = engine.enqueue_workflow("slow", json!({})).await.unwrap();
    let e = explain_until(&engine, id, "the delay starts", |e| {
        matches!(
            e.node("wait").map(|n| &n.reason),
            Some(Reason::Delay { .. })
        )
    })
    .await;
    let Reason::Delay { until } = reason(&e, "wait") else {
        unreachable!()
    };
    assert!(*until > now_ms() + 50_000, "{until}");
    engine.shutdown().await;
}

async fn waiting_to_retry(b: Backend) {
    let mut r = NodeRegistry::new();
    r.register(
        "flaky",
        executor_fn(|_| async { Err(NodeError::retryable("upstream 503")) }),
    );
    let engine = engine(b, r, 2).await;
    let wf = WorkflowDefinition::new("retrying", "retrying")
        .node(NodeDefinition::new("call", "flaky").with_config(
        json!({"retryPolicy": {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 60000}}}),
    ));
    engine.register_workflow(wf).await.unwrap();
    let id = engine
        .enqueue_workflow("retrying", json!({}))
        .await
        .unwrap();
    let e = explain_until(&engine, id, "the retry is scheduled", |e| {
        matches!(
            e.node("call").map(|n| &n.reason),
            Some(Reason::RetryBackoff { .. })
        )
    })
    .await;
    let Reason::RetryBackoff {
        attempt,
        error,
        until,
    } = reason(&e, "call")
    else {
        unreachable!()
    };
    assert_eq!(*attempt, 1);
    assert_eq!(error.as_deref(), Some("upstream 503"));
    assert!(until.is_some_and(|u| u > now_ms() + 50_000));
    engine.shutdown().await;
}

async fn waiting_for_a_rate_limit_slot(b: Backend) {
    let calls = Calls::default();
    let mut r = pass_registry(&calls);
    let c = calls.clone();
    r.register(
        "limited",
        executor_fn(move |ctx| {
            let c = c.clone();
            async move {
                c.hit(&ctx.node_id);
                Ok(NodeOutput::new(json!(1)))
            }
        }),
    );
    r.register_rate_limit("limited", 1, Duration::from_secs(120));
    let engine = engine(b, r, 2).await;
    let wf = WorkflowDefinition::new("limits", "limits")
        .node(NodeDefinition::new("x", "limited"))
        .node(NodeDefinition::new("y", "limited"));
    engine.register_workflow(wf).await.unwrap();
    let id = engine.enqueue_workflow("limits", json!({})).await.unwrap();
    let e = explain_until(&engine, id, "one node waits for its slot", |e| {
        e.nodes
            .iter()
            .any(|n| matches!(n.reason, Reason::RateLimited { .. }))
    })
    .await;
    let waiting = e
        .nodes
        .iter()
        .find(|n| matches!(n.reason, Reason::RateLimited { .. }))
        .unwrap();
    let Reason::RateLimited { until } = waiting.reason else {
        unreachable!()
    };
    assert!(until > now_ms() + 60_000, "{until}");
    assert_eq!(calls.total(), 1);
    engine.shutdown().await;
}

async fn waiting_for_an_open_breaker(b: Backend) {
    let mut r = NodeRegistry::new();
    r.register(
        "api",
        executor_fn(|_| async { Err(NodeError::retryable("connection refused")) }),
    );
    r.register_external("api", |c| c["host"].as_str().map(str::to_owned));
    let engine = engine(b, r, 2).await;
    let wf = WorkflowDefinition::new("breaker", "breaker").node(
        NodeDefinition::new("call", "api").with_config(json!({
            "host": "pay.example",
            "retryPolicy": {"maxAttempts": 5, "backoff": {"type": "fixed", "delay": 60000}},
            "circuitBreaker": {"failureThreshold": 1, "successThreshold": 1, "timeout": 120000}
        })),
    );
    engine.register_workflow(wf).await.unwrap();
    let id = engine.enqueue_workflow("breaker", json!({})).await.unwrap();
    let e = explain_until(&engine, id, "the breaker holds the node", |e| {
        matches!(
            e.node("call").map(|n| &n.reason),
            Some(Reason::CircuitOpen { .. })
        )
    })
    .await;
    let Reason::CircuitOpen {
        breaker,
        reopens_at,
        until,
    } = reason(&e, "call")
    else {
        unreachable!()
    };
    assert_eq!(breaker, "api:pay.example");
    assert!(*reopens_at > now_ms() + 60_000);
    assert!(until.is_some());
    engine.shutdown().await;
}

async fn in_the_dead_letter_queue(b: Backend) {
    let mut r = pass_registry(&Calls::default());
    r.register(
        "broken",
        executor_fn(|_| async { Err(NodeError::fatal("bad credentials")) }),
    );
    let engine = engine(b, r, 2).await;
    let wf = WorkflowDefinition::new("dead", "dead")
        .node(NodeDefinition::new("a", "broken"))
        .node(NodeDefinition::new("b", "pass"))
        .edge("a", "b");
    engine.register_workflow(wf).await.unwrap();
    let record = finish(&engine, "dead").await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    let e = engine.explain(record.execution_id).await.unwrap();
    let Reason::DeadLettered { item } = reason(&e, "a") else {
        panic!("{e:#?}")
    };
    assert_eq!(item.error, "bad credentials");
    assert_eq!(item.attempts, 1);
    assert!(!item.stalled);
    assert!(
        matches!(reason(&e, "b"), Reason::WaitingForParents { parents } if parents[0].node_id == "a")
    );
    assert_eq!(e.headline.as_deref(), Some("a"));
    engine.shutdown().await;
}

async fn waiting_for_a_child_execution(b: Backend) {
    let gate = Arc::new(Notify::new());
    let engine = engine(b, gated(&Calls::default(), gate.clone()), 4).await;
    engine
        .register_workflow(gated_chain("child"))
        .await
        .unwrap();
    let parent = WorkflowDefinition::new("parent", "parent")
        .node(
            NodeDefinition::new("call", "sub-workflow").with_config(json!({"workflowId": "child"})),
        )
        .node(NodeDefinition::new("after", "pass"))
        .edge("call", "after");
    engine.register_workflow(parent).await.unwrap();
    let id = engine.enqueue_workflow("parent", json!({})).await.unwrap();
    let e = explain_until(&engine, id, "the child runs its gate", |e| {
        matches!(
            e.node("call").map(|n| &n.reason),
            Some(Reason::WaitingForChild { explanation: Some(child), .. })
                if matches!(child.node("a").map(|n| &n.reason), Some(Reason::Running { .. }))
        )
    })
    .await;
    let Reason::WaitingForChild { child, explanation } = reason(&e, "call") else {
        unreachable!()
    };
    let inner = explanation.as_ref().unwrap();
    assert_eq!(inner.execution_id, *child);
    assert_eq!(inner.workflow_id, "child");
    assert!(matches!(
        reason(inner, "b"),
        Reason::WaitingForParents { .. }
    ));
    assert_eq!(e.headline.as_deref(), Some("call"));
    gate.notify_one();
    engine.wait_for_execution(id, DEADLINE).await.unwrap();
    engine.shutdown().await;
}

async fn unknown_execution_is_a_named_error(b: Backend) {
    let engine = engine_with(b, NodeRegistry::new(), spane::EngineConfig::default()).await;
    let missing = ExecutionId::new();
    match engine.explain(missing).await {
        Err(spane::Error::ExecutionNotFound(id)) => assert_eq!(id, missing),
        other => panic!("{other:?}"),
    }
    engine.shutdown().await;
}

/// A worker that claimed `a` and vanished without a word: once its lease passes, `a` is
/// explained as lease-expired, naming that worker; a live worker then takes it over.
async fn a_lease_that_expired_with_its_worker_gone(b: Backend) {
    const LEASE: Duration = Duration::from_millis(300);
    let calls = Calls::default();
    let builder = WorkflowEngine::builder().registry(pass_registry(&calls));
    let engine = match b {
        Backend::Embedded => {
            let bus = Arc::new(spane::events::LocalBus::new(1024));
            let queue = spane::queue::MemoryQueue::with_config(
                bus.clone(),
                spane::queue::MemoryQueueConfig::default().lease(LEASE),
            );
            builder.event_bus(bus).queue(Arc::new(queue)).build()
        }
        Backend::Redis => builder
            .redis(redis_config().lease(LEASE))
            .await
            .expect("Redis")
            .build(),
    };
    engine
        .register_workflow(graph("ghosted", &["a", "b"], &[("a", "b")]))
        .await
        .unwrap();
    let id = engine.enqueue_workflow("ghosted", json!({})).await.unwrap();
    let ghost = spane::queue::backend::WorkerId::new();
    let claimed = engine
        .queue()
        .claim(&ghost, 1, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the ghost claims a");
    let e = explain_until(&engine, id, "a's lease expired", |e| {
        matches!(
            e.node("a").map(|n| &n.reason),
            Some(Reason::LeaseExpired { .. })
        )
    })
    .await;
    let Reason::LeaseExpired {
        attempt,
        worker,
        lease_until,
        worker_alive,
    } = reason(&e, "a")
    else {
        unreachable!()
    };
    assert_eq!(*attempt, 1);
    match b {
        Backend::Embedded => assert_eq!(worker.as_deref(), Some(ghost.as_str())),
        // The claim script does not record its worker; a worker's heartbeats name what it
        // holds, and the ghost never beat (README, "why is it stuck", partial).
        Backend::Redis => assert_eq!(worker.as_deref(), None),
    }
    assert!(*lease_until <= now_ms());
    assert_ne!(*worker_alive, Some(true), "the ghost never beat");
    assert_eq!(e.headline.as_deref(), Some("a"));
    engine.start_workers(1).unwrap();
    let done = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    engine.shutdown().await;
}

on_every_backend!(
    running_on_a_live_worker_and_children_wait_for_parents,
    ready_but_no_worker,
    held_by_pause,
    waiting_for_a_delay,
    waiting_to_retry,
    waiting_for_a_rate_limit_slot,
    waiting_for_an_open_breaker,
    in_the_dead_letter_queue,
    waiting_for_a_child_execution,
    unknown_execution_is_a_named_error,
    a_lease_that_expired_with_its_worker_gone,
);
