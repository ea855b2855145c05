//! Enqueueing with a chosen execution id and with idempotency keys, on every backend.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::json;
use spane::prelude::*;
use spane::queue::QueueError;
use spane::{EnqueueOptions, Error};

on_every_backend!(
    a_subscriber_that_chose_the_id_sees_started_first,
    the_same_key_returns_the_same_execution,
    concurrent_enqueues_with_one_key_start_one_execution,
    a_chosen_id_that_exists_is_refused,
    a_key_whose_first_caller_died_still_starts_its_execution,
    bad_keys_are_refused,
);

/// Two engines on one backend: for Redis, two clients of one prefix (as two processes would
/// be); embedded, two handles of one engine.
async fn two_engines(b: Backend, calls: &Calls) -> (WorkflowEngine, WorkflowEngine) {
    match b {
        Backend::Embedded => {
            let e = engine(b, pass_registry(calls), 4).await;
            (e.clone(), e)
        }
        Backend::Redis => {
            let config = redis_config();
            let mut out = Vec::new();
            for _ in 0..2 {
                let e = WorkflowEngine::builder()
                    .registry(pass_registry(calls))
                    .redis(config.clone())
                    .await
                    .expect("Redis is needed for this test")
                    .build();
                e.start_workers(4).unwrap();
                out.push(e);
            }
            let b = out.pop().unwrap();
            (out.pop().unwrap(), b)
        }
    }
}

async fn a_subscriber_that_chose_the_id_sees_started_first(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 2).await;
    engine
        .register_workflow(graph("chain", &["a", "b"], &[("a", "b")]))
        .await
        .unwrap();
    let id = ExecutionId::new();
    let mut events = engine
        .subscribe(EventFilter::Execution(id))
        .await
        .expect("subscribed");
    let got = engine
        .enqueue_workflow_with(
            "chain",
            json!({}),
            EnqueueOptions::default().execution_id(id),
        )
        .await
        .unwrap();
    assert_eq!(got, id, "the execution has the chosen id");
    let mut seen = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(event) = events.next().await {
            let event = event.expect("no lag in this test");
            let done = matches!(&event, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Completed);
            seen.push(event);
            if done {
                break;
            }
        }
    })
    .await
    .expect("the execution completes before the deadline");
    assert!(
        matches!(&seen[0], EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Started),
        "the first event is started: {:?}",
        seen[0]
    );
    let completed_nodes = seen
        .iter()
        .filter(|e| matches!(e, EngineEvent::Node(n) if n.status == NodeEventStatus::Completed))
        .count();
    assert_eq!(completed_nodes, 2, "every node's events were seen");
    engine.shutdown().await;
}

async fn the_same_key_returns_the_same_execution(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 2).await;
    engine
        .register_workflow(graph("once", &["a"], &[]))
        .await
        .unwrap();
    let keyed = || EnqueueOptions::default().idempotency_key("order-1042");
    let first = engine
        .enqueue_workflow_with("once", json!({"n": 1}), keyed())
        .await
        .unwrap();
    let done = engine.wait_for_execution(first, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    // Again, after it finished, with another input and another chosen id: the first one.
    let again = engine
        .enqueue_workflow_with(
            "once",
            json!({"n": 2}),
            keyed().execution_id(ExecutionId::new()),
        )
        .await
        .unwrap();
    assert_eq!(again, first, "the same key gives the first execution");
    let other = engine
        .enqueue_workflow_with(
            "once",
            json!({}),
            EnqueueOptions::default().idempotency_key("order-1043"),
        )
        .await
        .unwrap();
    assert_ne!(other, first, "another key starts another execution");
    engine.wait_for_execution(other, DEADLINE).await.unwrap();
    assert_eq!(calls.count("a"), 2, "one run per key");
    let record = engine.get_execution(first).await.unwrap().unwrap();
    assert_eq!(
        record.initial_data,
        json!({"n": 1}),
        "the first call's input stands"
    );
    engine.shutdown().await;
}

async fn concurrent_enqueues_with_one_key_start_one_execution(b: Backend) {
    let calls = Calls::default();
    let (one, two) = two_engines(b, &calls).await;
    one.register_workflow(graph("race", &["a"], &[]))
        .await
        .unwrap();
    for round in 0..5 {
        let key = format!("race-{round}");
        let enqueues = (0..8).map(|i| {
            let engine = if i % 2 == 0 { one.clone() } else { two.clone() };
            let key = key.clone();
            tokio::spawn(async move {
                engine
                    .enqueue_workflow_with(
                        "race",
                        json!({ "caller": i }),
                        EnqueueOptions::default().idempotency_key(key),
                    )
                    .await
            })
        });
        let ids: Vec<ExecutionId> = futures::future::join_all(enqueues)
            .await
            .into_iter()
            .map(|r| r.expect("task").expect("enqueued"))
            .collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "every caller got the same execution: {ids:?}"
        );
        let done = one.wait_for_execution(ids[0], DEADLINE).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed);
    }
    assert_eq!(
        calls.count("a"),
        5,
        "one execution per key, not one per caller"
    );
    one.shutdown().await;
    two.shutdown().await;
}

async fn a_chosen_id_that_exists_is_refused(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 2).await;
    engine
        .register_workflow(graph("dup", &["a"], &[]))
        .await
        .unwrap();
    let id = ExecutionId::new();
    let with_id = || EnqueueOptions::default().execution_id(id);
    engine
        .enqueue_workflow_with("dup", json!({"first": true}), with_id())
        .await
        .unwrap();
    engine.wait_for_execution(id, DEADLINE).await.unwrap();
    let again = engine
        .enqueue_workflow_with("dup", json!({}), with_id())
        .await;
    assert!(
        matches!(again, Err(Error::Queue(QueueError::DuplicateExecution(d))) if d == id),
        "{again:?}"
    );
    // With a fresh key the id is refused too, and the key is not kept for it.
    let keyed = engine
        .enqueue_workflow_with("dup", json!({}), with_id().idempotency_key("k-dup"))
        .await;
    assert!(
        matches!(keyed, Err(Error::Queue(QueueError::DuplicateExecution(d))) if d == id),
        "{keyed:?}"
    );
    let fresh = engine
        .enqueue_workflow_with(
            "dup",
            json!({}),
            EnqueueOptions::default().idempotency_key("k-dup"),
        )
        .await
        .unwrap();
    assert_ne!(fresh, id, "the refused start left the key free");
    engine.wait_for_execution(fresh, DEADLINE).await.unwrap();
    let record = engine.get_execution(id).await.unwrap().unwrap();
    assert_eq!(record.initial_data, json!({"first": true}), "untouched");
    assert_eq!(calls.count("a"), 2);
    engine.shutdown().await;
}

async fn a_key_whose_first_caller_died_still_starts_its_execution(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 2).await;
    engine
        .register_workflow(graph("orphan", &["a"], &[]))
        .await
        .unwrap();
    // A caller reserved the key and died before it started the execution.
    let reserved = ExecutionId::new();
    let keys = engine.queue().idempotency_keys().expect("keys kept");
    assert_eq!(keys.reserve("k-orphan", reserved).await.unwrap(), None);
    let id = engine
        .enqueue_workflow_with(
            "orphan",
            json!({}),
            EnqueueOptions::default().idempotency_key("k-orphan"),
        )
        .await
        .unwrap();
    assert_eq!(
        id, reserved,
        "the key's execution, created by the next caller"
    );
    let done = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(calls.count("a"), 1);
    engine.shutdown().await;
}

async fn bad_keys_are_refused(b: Backend) {
    let engine = engine(b, pass_registry(&Calls::default()), 1).await;
    engine
        .register_workflow(graph("keys", &["a"], &[]))
        .await
        .unwrap();
    for key in [String::new(), "x".repeat(513), "a\nb".to_owned()] {
        let r = engine
            .enqueue_workflow_with(
                "keys",
                json!({}),
                EnqueueOptions::default().idempotency_key(key.clone()),
            )
            .await;
        assert!(
            matches!(r, Err(Error::InvalidIdempotencyKey { .. })),
            "{key:?}: {r:?}"
        );
    }
    engine.shutdown().await;
}
