//! Runtime behaviour: real concurrency, events, delay nodes, version pinning, shutdown, API
//! errors.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;
use spane::core::{NodeEventStatus, WorkflowEventStatus};
use spane::prelude::*;
use tokio::sync::Notify;

async fn fifty_slow_nodes_overlap_with_concurrency_fifty(b: Backend) {
    let overlap = Overlap::default();
    let mut r = NodeRegistry::new();
    let o = overlap.clone();
    r.register(
        "work",
        executor_fn(move |_ctx| {
            let o = o.clone();
            async move {
                o.enter();
                // Simulated I/O of the node itself, not test synchronisation.
                tokio::time::sleep(Duration::from_millis(100)).await;
                o.exit();
                Ok(NodeOutput::new(json!(1)))
            }
        }),
    );
    let engine = engine(b, r, 50).await;
    let mut wf = WorkflowDefinition::new("wide", "wide")
        .node(NodeDefinition::new("start", "work"))
        .node(NodeDefinition::new("join", "work"));
    for i in 0..50 {
        wf = wf.node(NodeDefinition::new(format!("m{i}"), "work"));
    }
    for i in 0..50 {
        let m = format!("m{i}");
        wf = wf.edge("start", &m).edge(&m, "join");
    }
    let rec = run(&engine, wf, json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert!(
        overlap.max() >= 10,
        "at most {} executors ran at once",
        overlap.max()
    );
    engine.shutdown().await;
}

async fn one_event_per_transition_in_causal_order(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 4).await;
    let wf = graph(
        "events",
        &["a", "b", "c", "d"],
        &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
    );
    engine.register_workflow(wf).await.unwrap();
    let mut all = engine.subscribe(EventFilter::All).await.unwrap();
    let id = engine.enqueue_workflow("events", json!({})).await.unwrap();
    let mut events = Vec::new();
    loop {
        let e = tokio::time::timeout(DEADLINE, all.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let done =
            matches!(&e, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Completed);
        events.push(e);
        if done {
            break;
        }
    }
    let pos = |node: &str, status: NodeEventStatus| {
        let hits: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, EngineEvent::Node(n) if n.node_id == node && n.status == status))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(hits.len(), 1, "{node} {status:?}: {hits:?}");
        hits[0]
    };
    let started = events
        .iter()
        .filter(
            |e| matches!(e, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Started),
        )
        .count();
    assert_eq!(started, 1);
    assert!(
        matches!(&events[0], EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Started)
    );
    assert_eq!(
        events.len(),
        1 + 4 * 2 + 1,
        "started, running+completed per node, completed"
    );
    for n in ["a", "b", "c", "d"] {
        assert!(pos(n, NodeEventStatus::Running) < pos(n, NodeEventStatus::Completed));
    }
    for (parent, child) in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")] {
        assert!(pos(parent, NodeEventStatus::Completed) < pos(child, NodeEventStatus::Running));
    }
    // Wire names are the original's.
    let wire = serde_json::to_value(&events[1]).unwrap();
    assert_eq!(wire["type"], json!("node:progress"));
    assert_eq!(wire["executionId"], json!(id.to_string()));
    assert_eq!(wire["nodeId"], json!("a"));
    assert_eq!(wire["status"], json!("running"));
    engine.shutdown().await;
}

async fn filtered_subscription_sees_only_its_execution(b: Backend) {
    let gate = Arc::new(Notify::new());
    let mut r = NodeRegistry::new();
    let g = gate.clone();
    r.register(
        "gate",
        executor_fn(move |ctx| {
            let g = g.clone();
            async move {
                if ctx.input_data == json!("wait") {
                    g.notified().await;
                }
                Ok(NodeOutput::new(json!(null)))
            }
        }),
    );
    let engine = engine(b, r, 4).await;
    engine
        .register_workflow(
            WorkflowDefinition::new("single", "single").node(NodeDefinition::new("x", "gate")),
        )
        .await
        .unwrap();
    let waiting = engine
        .enqueue_workflow("single", json!("wait"))
        .await
        .unwrap();
    let mut filtered = engine
        .subscribe(EventFilter::Execution(waiting))
        .await
        .unwrap();
    let other = engine
        .enqueue_workflow("single", json!("go"))
        .await
        .unwrap();
    engine.wait_for_execution(other, DEADLINE).await.unwrap();
    gate.notify_one();
    loop {
        let e = tokio::time::timeout(DEADLINE, filtered.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            e.execution_id(),
            waiting,
            "an event of another execution leaked: {e:?}"
        );
        if matches!(&e, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Completed) {
            break;
        }
    }
    engine.shutdown().await;
}

async fn delay_node_waits_then_passes_its_input_through(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 2).await;
    let wf = WorkflowDefinition::new("delayed", "delayed")
        .node(NodeDefinition::new("a", "pass"))
        .node(NodeDefinition::new("wait", "delay").with_config(json!({"durationSeconds": 0.5})))
        .node(NodeDefinition::new("b", "pass"))
        .edge("a", "wait")
        .edge("wait", "b");
    engine.register_workflow(wf).await.unwrap();
    let mut events = engine.subscribe(EventFilter::All).await.unwrap();
    let id = engine
        .enqueue_workflow("delayed", json!({"k": 1}))
        .await
        .unwrap();
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(
        rec.output("wait"),
        rec.output("a"),
        "a delay passes its parent's data"
    );
    let (mut delayed, mut began, mut child_started) = (None, None, None);
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::ZERO, events.next()).await {
        if let EngineEvent::Node(n) = e {
            match (n.node_id.as_str(), n.status) {
                ("wait", NodeEventStatus::Delayed) => {
                    delayed = n.next_delay_ms;
                    began = Some(n.timestamp);
                }
                ("b", NodeEventStatus::Running) => child_started = Some(n.timestamp),
                _ => {}
            }
        }
    }
    assert_eq!(delayed, Some(500));
    let waited = child_started.unwrap() - began.unwrap();
    assert!(
        waited >= 500,
        "the child started {waited} ms after the delay began"
    );
    assert_eq!(
        rec.output("b").unwrap()["input"],
        *rec.output("a").unwrap(),
        "the child gets the delay's parent data"
    );
    engine.shutdown().await;
}

async fn a_running_execution_keeps_its_definition_version(b: Backend) {
    let gate = Arc::new(Notify::new());
    let mut r = NodeRegistry::new();
    let g = gate.clone();
    r.register(
        "gate",
        executor_fn(move |_ctx| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok(NodeOutput::new(json!("v1 root")))
            }
        }),
    );
    r.register(
        "pass",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(json!({"ran": ctx.node_id}))) }),
    );
    let engine = engine(b, r, 2).await;
    let v1 = WorkflowDefinition::new("pinned", "pinned")
        .node(NodeDefinition::new("root", "gate"))
        .node(NodeDefinition::new("old-child", "pass"))
        .edge("root", "old-child");
    assert_eq!(engine.register_workflow(v1.clone()).await.unwrap(), 1);
    assert_eq!(
        engine.register_workflow(v1).await.unwrap(),
        1,
        "unchanged keeps its version"
    );
    let id = engine.enqueue_workflow("pinned", json!({})).await.unwrap();

    let v2 = WorkflowDefinition::new("pinned", "pinned")
        .node(NodeDefinition::new("root", "gate"))
        .node(NodeDefinition::new("new-child", "pass"))
        .edge("root", "new-child");
    assert_eq!(engine.register_workflow(v2).await.unwrap(), 2);
    gate.notify_one();

    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(rec.workflow_version, 1);
    assert!(rec.node_results.contains_key("old-child"));
    assert!(!rec.node_results.contains_key("new-child"));
    let latest = engine.get_workflow("pinned").await.unwrap().unwrap();
    assert_eq!(latest.nodes[1].id, "new-child");
    engine.shutdown().await;
}

async fn shutdown_gives_unfinished_jobs_back_and_another_worker_finishes_them(b: Backend) {
    let attempts = Arc::new(AtomicU32::new(0));
    let started = Arc::new(Notify::new());
    let mut r = NodeRegistry::new();
    let (a, s) = (attempts.clone(), started.clone());
    r.register(
        "stubborn",
        executor_fn(move |ctx| {
            let (a, s) = (a.clone(), s.clone());
            async move {
                if a.fetch_add(1, Ordering::SeqCst) == 0 {
                    s.notify_one();
                    // First run: never finishes on its own.
                    std::future::pending::<()>().await;
                }
                Ok(NodeOutput::new(json!({"attempt": ctx.attempt})))
            }
        }),
    );
    let engine = engine_with(
        b,
        r,
        spane::EngineConfig::default()
            .claim_wait(Duration::from_millis(100))
            .shutdown_timeout(Duration::from_millis(100)),
    )
    .await;
    engine.start_workers(2).unwrap();
    engine
        .register_workflow(
            WorkflowDefinition::new("drain", "drain").node(NodeDefinition::new("s", "stubborn")),
        )
        .await
        .unwrap();
    let id = engine.enqueue_workflow("drain", json!({})).await.unwrap();
    tokio::time::timeout(DEADLINE, started.notified())
        .await
        .unwrap();

    let report = engine.shutdown().await;
    assert_eq!(report.released, 1);
    assert_eq!(
        engine.get_execution(id).await.unwrap().unwrap().status,
        ExecutionStatus::Running
    );

    engine.start_workers(2).unwrap();
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(
        rec.output("s"),
        Some(&json!({"attempt": 1})),
        "a released job keeps its attempt"
    );
    engine.shutdown().await;
}

async fn api_errors_name_what_is_wrong(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 1).await;

    let err = engine
        .enqueue_workflow("nope", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, spane::Error::WorkflowNotFound { ref id } if id == "nope"));

    let bad = WorkflowDefinition::new("bad", "bad")
        .node(NodeDefinition::new("ok", "pass"))
        .node(NodeDefinition::new("mystery", "not-registered"))
        .edge("ok", "mystery");
    let err = engine.register_workflow(bad).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("\"mystery\"") && text.contains("not-registered"),
        "{text}"
    );
    assert!(
        engine.get_workflow("bad").await.unwrap().is_none(),
        "nothing saved"
    );

    let missing = ExecutionId::new();
    assert!(engine.get_execution(missing).await.unwrap().is_none());
    assert!(matches!(
        engine.wait_for_execution(missing, Duration::from_millis(10)).await,
        Err(spane::Error::ExecutionNotFound(id)) if id == missing
    ));

    // A wait that ends before the execution reports the status it saw.
    let gate = Arc::new(Notify::new());
    let mut r = NodeRegistry::new();
    let g = gate.clone();
    r.register(
        "gate",
        executor_fn(move |_| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok(NodeOutput::new(json!(null)))
            }
        }),
    );
    let gated = common::engine(b, r, 1).await;
    gated
        .register_workflow(WorkflowDefinition::new("g", "g").node(NodeDefinition::new("n", "gate")))
        .await
        .unwrap();
    let id = gated.enqueue_workflow("g", json!({})).await.unwrap();
    assert!(matches!(
        gated
            .wait_for_execution(id, Duration::from_millis(50))
            .await,
        Err(spane::Error::Timeout {
            status: ExecutionStatus::Running,
            ..
        })
    ));
    gate.notify_one();
    assert_eq!(
        gated.wait_for_execution(id, DEADLINE).await.unwrap().status,
        ExecutionStatus::Completed
    );
    gated.shutdown().await;
    engine.shutdown().await;
}

on_every_backend!(
    fifty_slow_nodes_overlap_with_concurrency_fifty,
    one_event_per_transition_in_causal_order,
    filtered_subscription_sees_only_its_execution,
    delay_node_waits_then_passes_its_input_through,
    a_running_execution_keeps_its_definition_version,
    shutdown_gives_unfinished_jobs_back_and_another_worker_finishes_them,
    api_errors_name_what_is_wrong,
);
