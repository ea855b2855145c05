//! # SPANE
//!
//! A DAG workflow orchestration engine: describe a workflow as a graph of typed nodes (JSON in
//! the original SPANE format, or Rust builders), register an executor per node type, and the
//! engine runs every node as a job — in parallel where the graph allows — with joins,
//! conditional branches, skip propagation, retries and live events.
//!
//! This crate is the facade: [`WorkflowEngine`] and its builder, re-exports of the layers
//! ([`core`], [`queue`], [`store`], [`events`], [`triggers`], [`worker`]) and a [`prelude`].
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use serde_json::json;
//! use spane::prelude::*;
//!
//! let mut registry = NodeRegistry::new();
//! registry.register("greet", executor_fn(|ctx| async move {
//!     let name = ctx.input_data["name"].as_str().unwrap_or("world").to_owned();
//!     Ok(NodeOutput::new(json!({ "greeting": format!("hello, {name}") })))
//! }));
//! let engine = WorkflowEngine::embedded(registry);
//! let wf: WorkflowDefinition = serde_json::from_value(json!({
//!     "id": "hello", "name": "Hello",
//!     "nodes": [{ "id": "greet", "type": "greet", "config": {}, "inputs": [], "outputs": [] }]
//! })).unwrap();
//! engine.register_workflow(wf).await.unwrap();
//! engine.start_workers(2).unwrap();
//! let id = engine.enqueue_workflow("hello", json!({ "name": "Ada" })).await.unwrap();
//! let record = engine.wait_for_execution(id, Duration::from_secs(10)).await.unwrap();
//! assert_eq!(record.output("greet"), Some(&json!({ "greeting": "hello, Ada" })));
//! engine.shutdown().await;
//! # });
//! ```
//!
//! ## Feature flags
//!
//! - `tls-rustls` (off by default) — `rediss://` URLs: TLS to Redis with rustls for the queue,
//!   the event bus and the trigger store. Give a private CA with
//!   [`RedisConfig::tls_root_pem`](queue::RedisConfig::tls_root_pem) or a
//!   [`RedisEndpoint`](queue::RedisEndpoint).

mod engine;
mod error;
mod operate;
#[cfg(feature = "redis")]
mod redis_store;
// The engine's trigger API; `triggers` is the re-export of spane-triggers below.
#[path = "triggers.rs"]
mod engine_triggers;
mod waiters;

pub use engine::{
    EngineBuilder, EngineConfig, EnqueueOptions, HistoryMode, MAX_IDEMPOTENCY_KEY_LEN,
    WorkflowEngine,
};
pub use error::Error;
pub use operate::{Rerun, RerunOptions};
#[cfg(feature = "redis")]
pub use redis_store::RedisDefinitionStore;

pub use spane_core as core;
pub use spane_events as events;
pub use spane_queue as queue;
pub use spane_store as store;
pub use spane_triggers as triggers;
pub use spane_worker as worker;

pub use spane_core::{
    EngineEvent, ExecutionContext, ExecutionId, ExecutionRecord, ExecutionStatus, NodeDefinition,
    NodeError, NodeEvent, NodeEventStatus, NodeExecutor, NodeOutput, NodeRegistry, NodeResult,
    NodeStatus, WorkflowDefinition, WorkflowEvent, WorkflowEventStatus, async_trait, executor_fn,
};
pub use spane_events::{EventFilter, EventId, EventStream, SequencedEvent, SequencedStream};
pub use spane_worker::ShutdownReport;

/// The names most programs need: `use spane::prelude::*;`.
pub mod prelude {
    pub use crate::{
        EngineEvent, EventFilter, ExecutionContext, ExecutionId, ExecutionRecord, ExecutionStatus,
        NodeDefinition, NodeError, NodeEvent, NodeEventStatus, NodeExecutor, NodeOutput,
        NodeRegistry, NodeStatus, WorkflowDefinition, WorkflowEngine, WorkflowEvent,
        WorkflowEventStatus, async_trait, executor_fn,
    };
}
