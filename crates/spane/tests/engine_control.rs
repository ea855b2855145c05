//! Pause, resume and cancel, on every backend.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;
use spane::core::WorkflowEventStatus;
use spane::prelude::*;
use tokio::sync::Notify;

/// `gate` waits for the notify (or cancellation, which it records); `pass` passes data.
fn gated_registry(calls: &Calls, gate: Arc<Notify>, saw_cancel: Arc<AtomicBool>) -> NodeRegistry {
    let mut r = pass_registry(calls);
    let c = calls.clone();
    r.register(
        "gate",
        executor_fn(move |ctx| {
            let (c, gate, saw) = (c.clone(), gate.clone(), saw_cancel.clone());
            async move {
                c.hit(&ctx.node_id);
                tokio::select! {
                    _ = gate.notified() => Ok(NodeOutput::new(json!({"gate": ctx.node_id}))),
                    _ = ctx.cancellation.cancelled() => {
                        saw.store(true, Ordering::SeqCst);
                        Err(NodeError::fatal("cancelled"))
                    }
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
        .node(NodeDefinition::new("c", "pass"))
        .edge("a", "b")
        .edge("b", "c")
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not before the deadline"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn workflow_events(
    events: &mut spane::EventStream,
    id: ExecutionId,
) -> Vec<WorkflowEventStatus> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::ZERO, events.next()).await {
        if let EngineEvent::Workflow(w) = e
            && w.execution_id == id
        {
            out.push(w.status);
        }
    }
    out
}

async fn pause_holds_unstarted_nodes_and_resume_runs_them(b: Backend) {
    let calls = Calls::default();
    let gate = Arc::new(Notify::new());
    let engine = engine(b, gated_registry(&calls, gate.clone(), Arc::default()), 4).await;
    engine
        .register_workflow(gated_chain("pausable"))
        .await
        .unwrap();
    engine
        .register_workflow(graph("sentinel", &["s"], &[]))
        .await
        .unwrap();
    let mut events = engine.subscribe(EventFilter::All).await.unwrap();
    let id = engine
        .enqueue_workflow("pausable", json!({}))
        .await
        .unwrap();
    wait_until("a runs", async || calls.count("a") == 1).await;

    assert_eq!(
        engine.pause_execution(id).await.unwrap(),
        ExecutionStatus::Paused
    );
    assert_eq!(
        engine.pause_execution(id).await.unwrap(),
        ExecutionStatus::Paused,
        "harmless twice"
    );
    gate.notify_one();
    // `a` finishes and is recorded while paused; its child is held.
    wait_until("a is recorded", async || {
        let rec = engine.get_execution(id).await.unwrap().unwrap();
        rec.node_results
            .get("a")
            .is_some_and(|r| r.status == NodeStatus::Completed)
    })
    .await;
    // Nothing of this execution starts for a second...
    let mut mine = engine.subscribe(EventFilter::Execution(id)).await.unwrap();
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(next) = tokio::time::timeout_at(quiet_until, mine.next()).await {
        if let Some(Ok(EngineEvent::Node(n))) = next {
            assert_ne!(
                n.status,
                spane::core::NodeEventStatus::Running,
                "{} started while paused",
                n.node_id
            );
        }
    }
    // ...and a later execution completing shows the queue moved past anything that could have run.
    let s = engine
        .enqueue_workflow("sentinel", json!({}))
        .await
        .unwrap();
    engine.wait_for_execution(s, DEADLINE).await.unwrap();
    assert_eq!(calls.count("b"), 0, "nothing new starts while paused");
    let rec = engine.get_execution(id).await.unwrap().unwrap();
    assert_eq!(rec.status, ExecutionStatus::Paused);

    assert_eq!(
        engine.resume_execution(id).await.unwrap(),
        ExecutionStatus::Running
    );
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!((calls.count("b"), calls.count("c")), (1, 1));
    assert_eq!(
        workflow_events(&mut events, id).await,
        [
            WorkflowEventStatus::Started,
            WorkflowEventStatus::Paused,
            WorkflowEventStatus::Resumed,
            WorkflowEventStatus::Completed
        ],
        "one event per transition"
    );
    engine.shutdown().await;
}

async fn a_delay_that_elapses_during_pause_waits_for_resume(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 2).await;
    let wf = WorkflowDefinition::new("paused-delay", "paused-delay")
        .node(NodeDefinition::new("a", "pass"))
        .node(NodeDefinition::new("wait", "delay").with_config(json!({"duration": 100})))
        .node(NodeDefinition::new("b", "pass"))
        .edge("a", "wait")
        .edge("wait", "b");
    engine.register_workflow(wf).await.unwrap();
    let id = engine
        .enqueue_workflow("paused-delay", json!({}))
        .await
        .unwrap();
    wait_until("the delay starts", async || {
        let rec = engine.get_execution(id).await.unwrap().unwrap();
        rec.node_results
            .get("wait")
            .is_some_and(|r| r.status == NodeStatus::Delayed)
    })
    .await;
    engine.pause_execution(id).await.unwrap();
    // The delay elapses, its job comes due and is held instead of run.
    wait_until("the elapsed delay is held", async || {
        let rec = engine.get_execution(id).await.unwrap().unwrap();
        rec.node_results
            .get("wait")
            .is_some_and(|r| r.status == NodeStatus::Pending)
    })
    .await;
    assert_eq!(calls.count("b"), 0);
    engine.resume_execution(id).await.unwrap();
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.count("b"), 1);
    engine.shutdown().await;
}

async fn cancel_signals_running_executors_and_nothing_else_runs(b: Backend) {
    let calls = Calls::default();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let engine = engine(
        b,
        gated_registry(&calls, Arc::new(Notify::new()), saw_cancel.clone()),
        4,
    )
    .await;
    engine
        .register_workflow(gated_chain("cancellable"))
        .await
        .unwrap();
    let mut events = engine.subscribe(EventFilter::All).await.unwrap();
    let id = engine
        .enqueue_workflow("cancellable", json!({}))
        .await
        .unwrap();
    wait_until("a runs", async || calls.count("a") == 1).await;

    assert_eq!(
        engine.cancel_execution(id).await.unwrap(),
        ExecutionStatus::Cancelled
    );
    wait_until("the executor sees the cancellation", async || {
        saw_cancel.load(Ordering::SeqCst)
    })
    .await;
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Cancelled);
    assert_eq!(
        engine.cancel_execution(id).await.unwrap(),
        ExecutionStatus::Cancelled,
        "harmless twice"
    );
    assert!(matches!(
        engine.resume_execution(id).await,
        Err(spane::Error::Queue(spane::queue::QueueError::NotAllowed {
            action: "resume",
            status: ExecutionStatus::Cancelled,
            ..
        }))
    ));
    assert!(matches!(
        engine.pause_execution(id).await,
        Err(spane::Error::Queue(spane::queue::QueueError::NotAllowed {
            action: "pause",
            ..
        }))
    ));
    wait_until("a's end is recorded", async || {
        let rec = engine.get_execution(id).await.unwrap().unwrap();
        rec.node_results
            .get("a")
            .is_some_and(|r| r.status == NodeStatus::Failed)
    })
    .await;
    assert_eq!(calls.count("b"), 0);
    assert_eq!(
        workflow_events(&mut events, id).await,
        [WorkflowEventStatus::Started, WorkflowEventStatus::Cancelled]
    );
    assert_eq!(
        engine.dead_letter_count().await.unwrap(),
        0,
        "a cancelled node is no dead letter"
    );
    engine.shutdown().await;
}

async fn bulk_control_and_finished_executions(b: Backend) {
    let calls = Calls::default();
    let gate = Arc::new(Notify::new());
    let engine = engine(b, gated_registry(&calls, gate.clone(), Arc::default()), 8).await;
    engine.register_workflow(gated_chain("bulk")).await.unwrap();
    engine
        .register_workflow(graph("quick", &["q"], &[]))
        .await
        .unwrap();
    let done = engine.enqueue_workflow("quick", json!({})).await.unwrap();
    engine.wait_for_execution(done, DEADLINE).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(engine.enqueue_workflow("bulk", json!({})).await.unwrap());
    }
    let statuses: Vec<_> = engine
        .pause_executions(&ids)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(statuses, [ExecutionStatus::Paused; 3]);
    let cancelled = engine.cancel_executions(&[ids[0], done]).await;
    assert_eq!(*cancelled[0].as_ref().unwrap(), ExecutionStatus::Cancelled);
    assert!(
        matches!(
            &cancelled[1],
            Err(spane::Error::Queue(spane::queue::QueueError::NotAllowed {
                status: ExecutionStatus::Completed,
                ..
            }))
        ),
        "a completed execution cannot be cancelled"
    );
    let resumed = engine.resume_executions(&ids[1..]).await;
    assert!(
        resumed
            .iter()
            .all(|r| matches!(r, Ok(ExecutionStatus::Running)))
    );
    for _ in 0..3 {
        gate.notify_one();
    }
    for id in &ids[1..] {
        wait_until("the gate releases", async || {
            let rec = engine.get_execution(*id).await.unwrap().unwrap();
            if rec.status.is_terminal() {
                return true;
            }
            gate.notify_one();
            false
        })
        .await;
        assert_eq!(
            engine
                .wait_for_execution(*id, DEADLINE)
                .await
                .unwrap()
                .status,
            ExecutionStatus::Completed
        );
    }
    assert!(matches!(
        engine.pause_execution(ExecutionId::new()).await,
        Err(spane::Error::Queue(
            spane::queue::QueueError::ExecutionNotFound(_)
        ))
    ));
    engine.shutdown().await;
}

on_every_backend!(
    pause_holds_unstarted_nodes_and_resume_runs_them,
    a_delay_that_elapses_during_pause_waits_for_resume,
    cancel_signals_running_executors_and_nothing_else_runs,
    bulk_control_and_finished_executions,
);

async fn an_execution_past_its_deadline_fails_and_its_executors_are_cancelled(b: Backend) {
    let calls = Calls::default();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let engine = engine(
        b,
        gated_registry(&calls, Arc::new(Notify::new()), saw_cancel.clone()),
        4,
    )
    .await;
    engine
        .register_workflow(gated_chain("deadline"))
        .await
        .unwrap();
    let mut events = engine.subscribe(EventFilter::All).await.unwrap();
    let id = engine
        .enqueue_workflow_with(
            "deadline",
            json!({}),
            spane::EnqueueOptions::default().deadline(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    // `a` waits forever on its gate; the deadline ends the execution.
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert_eq!(rec.error.as_deref(), Some("execution deadline exceeded"));
    wait_until("the executor sees the cancellation", async || {
        saw_cancel.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(calls.count("b"), 0);
    let statuses = workflow_events(&mut events, id).await;
    assert_eq!(
        statuses,
        [WorkflowEventStatus::Started, WorkflowEventStatus::Failed]
    );

    // An execution that ends in time is not touched by its deadline.
    engine
        .register_workflow(graph("quick", &["q"], &[]))
        .await
        .unwrap();
    let quick = engine
        .enqueue_workflow_with(
            "quick",
            json!({}),
            spane::EnqueueOptions::default().deadline(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert_eq!(
        engine
            .wait_for_execution(quick, DEADLINE)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Completed
    );
    engine.shutdown().await;
}

on_every_backend!(an_execution_past_its_deadline_fails_and_its_executors_are_cancelled);
