//! Write-behind history: executions that finish while PostgreSQL refuses connections reach it,
//! complete and as committed, once it answers again; what the writer holds back to gather a
//! batch (its linger) is written when the engine shuts down, not lost or waited for.
//!
//! The outage is a TCP proxy between the engine's store and the shared server: cutting it stops
//! listening and drops the open connections (the port refuses), restoring it listens again on
//! the same port. The test gets a schema of its own, dropped afterwards.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use spane::prelude::*;
use spane::store::{ExecutionStore, SqlStore, SqlStoreOptions};
use spane_testkit::postgres::{database_url, with_schema};
use spane_testkit::proxy::TcpProxy;

const DEADLINE: Duration = Duration::from_secs(60);

fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `user@host:port` and `db` of the server's url.
fn split_url() -> (String, String, String) {
    let url = database_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let (user, rest) = rest.split_once('@').unwrap_or(("", rest));
    let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
    (user.to_owned(), host.to_owned(), db.to_owned())
}

/// A TCP proxy to PostgreSQL that the test cuts and restores, and its URL.
async fn proxy() -> (TcpProxy, String) {
    let (user, host, db) = split_url();
    let proxy = TcpProxy::start(host).await.expect("proxy listens");
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    let url = format!("postgres://{user}127.0.0.1:{}/{db}", proxy.port());
    (proxy, url)
}

/// `pass` nodes that wait for the gate to open.
fn gated_registry(gate: tokio::sync::watch::Receiver<bool>) -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    registry.register(
        "pass",
        executor_fn(move |ctx| {
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok(NodeOutput::new(
                    json!({ "node": ctx.node_id, "zero": 0, "no": false, "empty": "" }),
                ))
            }
        }),
    );
    registry
}

/// The history in `schema`, on the server itself (no proxy).
async fn store_in(schema: &str) -> Arc<SqlStore> {
    Arc::new(
        SqlStore::connect(
            &database_url(),
            SqlStoreOptions::default().schema(schema.to_owned()),
        )
        .await
        .expect("connect to PostgreSQL"),
    )
}

/// An engine on Redis (a key prefix of its own) whose history goes to `store`, written behind.
async fn redis_engine(
    registry: NodeRegistry,
    store: Arc<SqlStore>,
    config: spane::EngineConfig,
) -> WorkflowEngine {
    let prefix = format!(
        "spane-test-{}",
        ExecutionId::new().to_string().to_lowercase()
    );
    WorkflowEngine::builder()
        .registry(registry)
        .store(store)
        .config(config)
        .redis(spane::queue::RedisConfig::new(redis_url()).prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
        .build()
}

async fn scenario(schema: String) {
    let (mut proxy, proxied) = proxy().await;
    let store = SqlStore::connect(
        &proxied,
        SqlStoreOptions::default()
            .schema(schema.clone())
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(1)),
    )
    .await
    .expect("connect to PostgreSQL through the proxy");
    // Reads the history directly, not through the proxy.
    let direct = SqlStore::connect(
        &database_url(),
        SqlStoreOptions::default()
            .schema(schema.clone())
            .run_migrations(false),
    )
    .await
    .unwrap();

    let (open, gate) = tokio::sync::watch::channel(false);
    let engine = redis_engine(
        gated_registry(gate),
        Arc::new(store),
        spane::EngineConfig::default(),
    )
    .await;
    engine.start_workers(8).unwrap();
    let mut wf = WorkflowDefinition::new("outage", "outage");
    for node in ["a", "b", "c"] {
        wf = wf.node(NodeDefinition::new(node, "pass"));
    }
    wf = wf.edge("a", "b").edge("a", "c");
    engine.register_workflow(wf).await.unwrap();

    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(
            engine
                .enqueue_workflow("outage", json!({"i": i, "n": 0, "flag": false, "s": ""}))
                .await
                .unwrap(),
        );
    }

    // The executions run and finish while PostgreSQL refuses connections.
    proxy.cut().await;
    open.send(true).unwrap();
    let mut live = Vec::new();
    for id in &ids {
        let record = engine.wait_for_execution(*id, DEADLINE).await.unwrap();
        assert_eq!(record.status, ExecutionStatus::Completed);
        live.push(record);
    }

    // Back: the backlog lands in full, while the engine runs.
    proxy.restore().await.expect("proxy listens again");
    let landed = tokio::time::timeout(DEADLINE, async {
        loop {
            let counts = direct
                .history()
                .unwrap()
                .count_by_status(None)
                .await
                .unwrap();
            if counts.get(&ExecutionStatus::Completed).copied() == Some(ids.len() as u64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(landed.is_ok(), "history did not catch up after the outage");
    for record in &live {
        let mut stored = direct
            .get_execution(record.execution_id)
            .await
            .unwrap()
            .expect("in the history");
        // `enqueue_workflow` saves the execution with its own clock before Redis stamps it, and
        // history keeps the first `created_at`: the two may differ by the enqueue's duration.
        stored.created_at = record.created_at;
        assert_eq!(&stored, record, "history holds what was committed");
    }
    engine.shutdown().await;
    let _ = direct.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_backlog_from_a_postgres_outage_lands_in_full() {
    with_schema(scenario).await;
}

/// With a linger far longer than the test, the writer holds what it read: shutting the engine
/// down writes it at once, complete.
async fn linger_scenario(schema: String) {
    let store = store_in(&schema).await;
    let (_open, gate) = tokio::sync::watch::channel(true);
    let engine = redis_engine(
        gated_registry(gate),
        store.clone(),
        spane::EngineConfig::default().history_linger(Duration::from_secs(3600)),
    )
    .await;
    engine.start_workers(4).unwrap();
    let wf = WorkflowDefinition::new("linger", "linger")
        .node(NodeDefinition::new("a", "pass"))
        .node(NodeDefinition::new("b", "pass"))
        .edge("a", "b");
    engine.register_workflow(wf).await.unwrap();
    let mut live = Vec::new();
    for i in 0..20 {
        let id = engine
            .enqueue_workflow("linger", json!({ "i": i }))
            .await
            .unwrap();
        live.push(engine.wait_for_execution(id, DEADLINE).await.unwrap());
    }
    let stopped = tokio::time::timeout(DEADLINE, engine.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown waited for the history linger");
    for record in &live {
        assert_eq!(record.status, ExecutionStatus::Completed);
        let mut stored = store
            .get_execution(record.execution_id)
            .await
            .unwrap()
            .expect("written at shutdown");
        stored.created_at = record.created_at;
        assert_eq!(&stored, record, "history holds what was committed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_the_history_a_long_linger_holds() {
    with_schema(linger_scenario).await;
}

/// A running execution's progress reaches the history while it runs (within the running
/// interval), not only when it ends.
async fn running_scenario(schema: String) {
    let store = store_in(&schema).await;
    let (open, gate) = tokio::sync::watch::channel(false);
    let mut registry = gated_registry(gate);
    registry.register(
        "quick",
        executor_fn(|_ctx| async move { Ok(NodeOutput::new(json!("done"))) }),
    );
    let engine = redis_engine(
        registry,
        store.clone(),
        spane::EngineConfig::default().history_running_interval(Duration::from_millis(200)),
    )
    .await;
    engine.start_workers(2).unwrap();
    let wf = WorkflowDefinition::new("running", "running")
        .node(NodeDefinition::new("first", "quick"))
        .node(NodeDefinition::new("second", "pass"))
        .edge("first", "second");
    engine.register_workflow(wf).await.unwrap();
    let id = engine.enqueue_workflow("running", json!({})).await.unwrap();
    let seen = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(stored) = store.get_execution(id).await.unwrap()
                && stored
                    .node_results
                    .get("first")
                    .is_some_and(|r| r.status == NodeStatus::Completed)
            {
                return stored;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the first node's result reached the history while the execution ran");
    assert_eq!(seen.status, ExecutionStatus::Running);
    assert_eq!(seen.output("first"), Some(&json!("done")));
    open.send(true).unwrap();
    let done = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_execution_reaches_the_history_while_it_runs() {
    with_schema(running_scenario).await;
}

/// A pause reaches the history (it brings the execution to rest, so it is written within the
/// linger), and so does the resumed execution's end.
async fn pause_scenario(schema: String) {
    let store = store_in(&schema).await;
    let (open, gate) = tokio::sync::watch::channel(false);
    let engine = redis_engine(
        gated_registry(gate),
        store.clone(),
        spane::EngineConfig::default(),
    )
    .await;
    engine.start_workers(2).unwrap();
    let wf = WorkflowDefinition::new("pausing", "pausing")
        .node(NodeDefinition::new("a", "pass"))
        .node(NodeDefinition::new("b", "pass"))
        .edge("a", "b");
    engine.register_workflow(wf).await.unwrap();
    let id = engine.enqueue_workflow("pausing", json!({})).await.unwrap();
    assert_eq!(
        engine.pause_execution(id).await.unwrap(),
        ExecutionStatus::Paused
    );
    let history = store.history().expect("SQL keeps history");
    let listed = tokio::time::timeout(DEADLINE, async {
        loop {
            let paused = history
                .list_executions(&spane::store::ExecutionQuery {
                    status: Some(ExecutionStatus::Paused),
                    ..Default::default()
                })
                .await
                .unwrap();
            if paused.iter().any(|r| r.execution_id == id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(listed.is_ok(), "the paused execution is listed as paused");
    engine.resume_execution(id).await.unwrap();
    open.send(true).unwrap();
    let done = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    engine.shutdown().await;
    let stored = store.get_execution(id).await.unwrap().expect("in history");
    assert_eq!(stored.status, ExecutionStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_execution_is_listed_as_paused_in_the_history() {
    with_schema(pause_scenario).await;
}
