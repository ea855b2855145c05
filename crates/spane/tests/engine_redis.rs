//! Behaviour specific to several engines sharing one Redis.

mod common;

use common::*;
use serde_json::json;
use spane::prelude::*;

async fn redis_engine(prefix: &str, registry: NodeRegistry) -> WorkflowEngine {
    WorkflowEngine::builder()
        .registry(registry)
        .redis(spane::queue::RedisConfig::new(redis_url()).prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_sharing_a_prefix_agree_on_versions_and_run_each_others_executions() {
    let prefix = unique_prefix();
    let calls = Calls::default();
    let a = redis_engine(&prefix, pass_registry(&calls)).await;
    let b = redis_engine(&prefix, pass_registry(&calls)).await;

    let v1 = graph("shared", &["x"], &[]);
    let v2 = graph("shared", &["x", "y"], &[("x", "y")]);
    assert_eq!(a.register_workflow(v1.clone()).await.unwrap(), 1);
    assert_eq!(
        b.register_workflow(v2.clone()).await.unwrap(),
        2,
        "b sees a's version"
    );
    assert_eq!(
        b.register_workflow(v2.clone()).await.unwrap(),
        2,
        "unchanged keeps its version"
    );
    assert_eq!(
        a.register_workflow(v1).await.unwrap(),
        3,
        "a change back is a new version"
    );
    assert_eq!(
        b.get_workflow("shared").await.unwrap().unwrap().nodes.len(),
        1,
        "both read the latest"
    );

    // Only `a` runs workers; `b` enqueues v3 and reads the result.
    a.start_workers(4).unwrap();
    let id = b
        .enqueue_workflow("shared", json!({"from": "b"}))
        .await
        .unwrap();
    let rec = b.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(rec.workflow_version, 3);
    assert_eq!(rec.output("x").unwrap()["input"], json!({"from": "b"}));
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_circuit_breaker() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let prefix = unique_prefix();
    let registry = |calls: Arc<AtomicU32>| {
        let mut r = NodeRegistry::new();
        r.register(
            "http",
            executor_fn(move |_ctx| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(NodeError::retryable("connection refused"))
                }
            }),
        );
        r
    };
    let (a_calls, b_calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let a = redis_engine(&prefix, registry(a_calls.clone())).await;
    let b = redis_engine(&prefix, registry(b_calls.clone())).await;
    let wf = WorkflowDefinition::new("call", "call").node(
        NodeDefinition::new("get", "http").with_config(json!({
            "url": "https://api.example.com/items",
            "circuitBreaker": {"failureThreshold": 2, "timeout": 60000}
        })),
    );
    a.register_workflow(wf).await.unwrap();

    a.start_workers(2).unwrap();
    for _ in 0..2 {
        let id = a.enqueue_workflow("call", json!({})).await.unwrap();
        a.wait_for_execution(id, DEADLINE).await.unwrap();
    }
    a.shutdown().await;
    assert_eq!(a_calls.load(Ordering::SeqCst), 2);

    // Worker `b` never saw a failure, but the breaker it reads is the one `a` opened.
    b.start_workers(2).unwrap();
    let id = b.enqueue_workflow("call", json!({})).await.unwrap();
    let rec = b.wait_for_execution(id, DEADLINE).await.unwrap();
    assert!(
        rec.node_results["get"]
            .error
            .as_deref()
            .unwrap()
            .contains("circuit breaker http:api.example.com is open")
    );
    assert_eq!(b_calls.load(Ordering::SeqCst), 0);
    let seen_by_b = b.circuit_breakers().await.unwrap();
    assert_eq!(seen_by_b[0].key, "http:api.example.com");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_sees_exactly_the_event_sequence_of_a_chain() {
    use futures::StreamExt;
    use spane::core::{NodeEventStatus, WorkflowEventStatus};

    let prefix = unique_prefix();
    let calls = Calls::default();
    let runner = redis_engine(&prefix, pass_registry(&calls)).await;
    let observer = redis_engine(&prefix, pass_registry(&calls)).await;
    runner
        .register_workflow(graph(
            "chain3",
            &["n1", "n2", "n3"],
            &[("n1", "n2"), ("n2", "n3")],
        ))
        .await
        .unwrap();
    let mut events = observer.subscribe(EventFilter::All).await.unwrap();
    runner.start_workers(4).unwrap();
    let id = runner.enqueue_workflow("chain3", json!({})).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(DEADLINE, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(e.execution_id(), id);
        let done =
            matches!(&e, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Completed);
        seen.push(match e {
            EngineEvent::Workflow(w) => format!("workflow:{:?}", w.status),
            EngineEvent::Node(n) => format!("{}:{:?}", n.node_id, n.status),
            other => format!("{other:?}"),
        });
        if done {
            break;
        }
    }
    let expected = [
        format!("workflow:{:?}", WorkflowEventStatus::Started),
        format!("n1:{:?}", NodeEventStatus::Running),
        format!("n1:{:?}", NodeEventStatus::Completed),
        format!("n2:{:?}", NodeEventStatus::Running),
        format!("n2:{:?}", NodeEventStatus::Completed),
        format!("n3:{:?}", NodeEventStatus::Running),
        format!("n3:{:?}", NodeEventStatus::Completed),
        format!("workflow:{:?}", WorkflowEventStatus::Completed),
    ];
    assert_eq!(seen, expected);
    // Nothing more arrives for this execution.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), events.next())
            .await
            .is_err()
    );
    // n2 and n3 are handed to the worker that committed their parent (handoff): each run is
    // one attempt and one claim all the same.
    let record = observer.wait_for_execution(id, DEADLINE).await.unwrap();
    for node in ["n1", "n2", "n3"] {
        let r = &record.node_results[node];
        assert_eq!(
            (r.attempts, r.claims),
            (1, 1),
            "{node}: attempts and claims"
        );
    }
    runner.shutdown().await;
}
