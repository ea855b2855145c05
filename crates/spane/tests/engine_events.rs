//! Subscribing with event ids through the engine: resume after an id on every backend, and the
//! refusals that say events would be missing instead of skipping them.

mod common;

use std::sync::Arc;

use common::*;
use futures::StreamExt;
use serde_json::json;
use spane::events::{EventError, LocalBus};
use spane::prelude::*;
use spane::{EnqueueOptions, SequencedEvent, SequencedStream};

on_every_backend!(a_subscriber_resumes_after_the_last_event_it_handled);

async fn journaled(b: Backend, calls: &Calls) -> WorkflowEngine {
    let config = spane::EngineConfig::default().claim_wait(std::time::Duration::from_millis(200));
    let engine = match b {
        Backend::Embedded => WorkflowEngine::builder()
            .registry(pass_registry(calls))
            .event_bus(Arc::new(LocalBus::with_journal(1024, 1024)))
            .config(config)
            .build(),
        Backend::Redis => engine_with(b, pass_registry(calls), config).await,
    };
    engine.start_workers(2).unwrap();
    engine
}

/// Reads events until the execution's `completed`.
async fn until_completed(events: &mut SequencedStream) -> Vec<SequencedEvent> {
    let mut seen = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(e) = events.next().await {
            let e = e.expect("no gap in this test");
            let done = matches!(&e.event, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Completed);
            seen.push(e);
            if done {
                return;
            }
        }
        panic!("the subscription ended");
    })
    .await
    .expect("the execution completes before the deadline");
    seen
}

async fn a_subscriber_resumes_after_the_last_event_it_handled(b: Backend) {
    let calls = Calls::default();
    let engine = journaled(b, &calls).await;
    engine
        .register_workflow(graph("chain3", &["a", "b", "c"], &[("a", "b"), ("b", "c")]))
        .await
        .unwrap();
    let id = ExecutionId::new();
    let filter = EventFilter::Execution(id);
    let mut live = engine.subscribe_after(filter, None).await.unwrap();
    engine
        .enqueue_workflow_with(
            "chain3",
            json!({}),
            EnqueueOptions::default().execution_id(id),
        )
        .await
        .unwrap();
    let all = until_completed(&mut live).await;
    assert!(
        matches!(&all[0].event, EngineEvent::Workflow(w) if w.status == WorkflowEventStatus::Started),
        "started first"
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");

    // A subscriber that handled the first three events comes back: it gets the rest, once.
    let mut resumed = engine
        .subscribe_after(filter, Some(all[2].id))
        .await
        .unwrap();
    let rest = until_completed(&mut resumed).await;
    assert_eq!(rest, all[3..].to_vec());

    // An id this bus never gave cannot be resumed after: said, not skipped.
    let foreign = "1-1.0".parse().unwrap();
    match engine.subscribe_after(filter, Some(foreign)).await {
        Err(spane::Error::Events(EventError::CannotResume { after, .. })) => {
            assert_eq!(after, foreign)
        }
        Err(other) => panic!("expected CannotResume, got {other}"),
        Ok(_) => panic!("expected CannotResume, got a subscription"),
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_the_engine_was_built_with_is_reachable() {
    let store = Arc::new(spane::store::MemoryStore::new());
    let engine = WorkflowEngine::builder()
        .registry(pass_registry(&Calls::default()))
        .store(store.clone())
        .build();
    engine.start_workers(1).unwrap();
    let record = run(&engine, graph("kept", &["a"], &[]), json!({})).await;
    let from_engine = engine
        .store()
        .get_execution(record.execution_id)
        .await
        .unwrap()
        .expect("history written to the engine's store");
    assert_eq!(from_engine.status, ExecutionStatus::Completed);
    use spane::store::ExecutionStore;
    assert_eq!(
        store.get_execution(record.execution_id).await.unwrap(),
        Some(from_engine),
        "the very store passed to the builder"
    );
    engine.shutdown().await;
}
