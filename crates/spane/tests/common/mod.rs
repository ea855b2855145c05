//! Shared helpers for the engine tests. Every scenario builds its engine through [`engine`],
//! so the same scenarios run on every backend as backends are added.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use spane::prelude::*;

/// How long a scenario may take before the test fails (never a sleep: a deadline).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The backends every scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-memory queue, store and bus.
    Embedded,
    /// Redis queue and bus (each test its own key prefix).
    Redis,
}

/// The Redis the tests use: `REDIS_URL` / `SPANE_REDIS_URL`, or the standard local port.
pub fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!(
        "spane-test-{}",
        ExecutionId::new().to_string().to_lowercase()
    )
}

/// The test settings of the Redis backend: short lease and retention, fast reclaim.
pub fn redis_config() -> spane::queue::RedisConfig {
    spane::queue::RedisConfig::new(redis_url())
        .prefix(unique_prefix())
        .retention(Duration::from_secs(120))
}

/// An engine on `backend` with `registry` and `config`, workers not started.
pub async fn engine_with(
    backend: Backend,
    registry: NodeRegistry,
    config: spane::EngineConfig,
) -> WorkflowEngine {
    let builder = WorkflowEngine::builder().registry(registry).config(config);
    match backend {
        Backend::Embedded => builder.build(),
        Backend::Redis => builder
            .redis(redis_config())
            .await
            .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
            .build(),
    }
}

/// An engine on `backend` with `registry`, workers started.
pub async fn engine(
    backend: Backend,
    registry: NodeRegistry,
    concurrency: usize,
) -> WorkflowEngine {
    let engine = engine_with(
        backend,
        registry,
        spane::EngineConfig::default()
            .claim_wait(Duration::from_millis(200))
            .shutdown_timeout(Duration::from_secs(5)),
    )
    .await;
    engine.start_workers(concurrency).expect("workers start");
    engine
}

/// Instantiates each scenario `fn name(b: Backend)` as `name::embedded` and `name::redis`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name(super::Backend::Embedded).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$name(super::Backend::Redis).await
                }
            }
        )*
    };
}

/// Counts calls per node id.
#[derive(Default, Clone)]
pub struct Calls(Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

impl Calls {
    pub fn hit(&self, node: &str) {
        *self.0.lock().unwrap().entry(node.to_owned()).or_default() += 1;
    }
    pub fn count(&self, node: &str) -> usize {
        self.0.lock().unwrap().get(node).copied().unwrap_or(0)
    }
    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

/// A registry with `pass` (returns its input plus its node id in a `path` list, counting calls).
pub fn pass_registry(calls: &Calls) -> NodeRegistry {
    let mut r = NodeRegistry::new();
    let c = calls.clone();
    r.register(
        "pass",
        executor_fn(move |ctx| {
            let c = c.clone();
            async move {
                c.hit(&ctx.node_id);
                Ok(NodeOutput::new(
                    json!({ "node": ctx.node_id, "input": ctx.input_data }),
                ))
            }
        }),
    );
    r
}

/// A workflow of `pass` nodes with the given edges.
pub fn graph(id: &str, nodes: &[&str], edges: &[(&str, &str)]) -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new(id, id);
    for n in nodes {
        wf = wf.node(NodeDefinition::new(*n, "pass"));
    }
    for (a, b) in edges {
        wf = wf.edge(a, b);
    }
    wf
}

/// Registers, enqueues and waits for the end.
pub async fn run(engine: &WorkflowEngine, wf: WorkflowDefinition, input: Value) -> ExecutionRecord {
    let id = wf.id.clone();
    engine.register_workflow(wf).await.expect("valid workflow");
    let exec = engine.enqueue_workflow(&id, input).await.expect("enqueued");
    engine
        .wait_for_execution(exec, DEADLINE)
        .await
        .expect("execution ends before the deadline")
}

/// Enqueues `workflow` with empty input and waits for the end.
pub async fn finish(engine: &WorkflowEngine, workflow: &str) -> ExecutionRecord {
    let id = engine
        .enqueue_workflow(workflow, json!({}))
        .await
        .expect("enqueued");
    engine
        .wait_for_execution(id, DEADLINE)
        .await
        .expect("execution ends before the deadline")
}

/// Tracks how many executors run at once.
#[derive(Default, Clone)]
pub struct Overlap {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Overlap {
    pub fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    pub fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}
