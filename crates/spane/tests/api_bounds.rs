//! Compile-time checks of what users rely on when they share the engine across tasks: the
//! engine, its builder, the error types and the futures of the engine's methods are `Send`
//! (and `Sync` where they are shared by reference), so they can be held across `.await` in a
//! `tokio::spawn`ed task or stored in an axum state. A regression fails to compile.

use std::time::Duration;

use serde_json::json;
use spane::prelude::*;
use spane::{EngineBuilder, EngineConfig, Error, EventStream};

fn send_sync<T: Send + Sync + 'static>() {}

fn send<T: Send>(_: &T) {}

#[test]
fn engine_builder_and_errors_are_send_and_sync() {
    send_sync::<WorkflowEngine>();
    send_sync::<EngineConfig>();
    send_sync::<Error>();
    send_sync::<spane::queue::QueueError>();
    send_sync::<spane::store::StoreError>();
    send_sync::<spane::events::EventError>();
    send_sync::<spane::triggers::TriggerError>();
    send_sync::<spane::worker::WorkerError>();
    send_sync::<spane::core::ValidationErrors>();
    send_sync::<spane::core::ErrorSource>();
    send_sync::<ExecutionRecord>();
    send_sync::<NodeRegistry>();
    fn send_only<T: Send + 'static>() {}
    send_only::<EngineBuilder>();
    send_only::<EventStream>();
}

#[tokio::test]
async fn futures_of_the_engine_are_send() {
    let engine = WorkflowEngine::embedded(NodeRegistry::new());
    let id = ExecutionId::new();
    send(&engine.register_workflow(WorkflowDefinition::new("w", "W")));
    send(&engine.enqueue_workflow("w", json!({})));
    send(&engine.get_execution(id));
    send(&engine.wait_for_execution(id, Duration::from_secs(1)));
    send(&engine.pause_execution(id));
    send(&engine.resume_execution(id));
    send(&engine.cancel_execution(id));
    send(&engine.subscribe(spane::EventFilter::All));
    send(&engine.dead_letters(0, 10));
    send(&engine.explain(id));
    send(&engine.shutdown());
    // Errors are `std::error::Error + Send + Sync + 'static`: they go into `anyhow` and
    // `Box<dyn Error + Send + Sync>` as they are.
    let boxed: Box<dyn std::error::Error + Send + Sync> =
        Box::new(Error::Unsupported { what: "nothing" });
    assert!(!boxed.to_string().is_empty());
}
