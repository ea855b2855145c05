//! An embedded engine whose store is a SQLite file keeps its definitions and history across
//! restarts of the application.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use spane::prelude::*;
use spane::store::{SqlStore, SqlStoreOptions};

fn temp_sqlite() -> (std::path::PathBuf, String) {
    let path = std::env::temp_dir().join(format!("{}.sqlite", unique_prefix()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    (path, url)
}

async fn engine_on(url: &str, calls: &Calls) -> WorkflowEngine {
    let store = SqlStore::connect(url, SqlStoreOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    let engine = WorkflowEngine::builder()
        .registry(pass_registry(calls))
        .store(Arc::new(store))
        .build();
    engine.start_workers(4).unwrap();
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_engine_on_a_sqlite_file_keeps_its_history_across_restarts() {
    let (path, url) = temp_sqlite();
    let calls = Calls::default();
    let wf = graph("kept", &["a", "b", "c"], &[("a", "b"), ("a", "c")]);

    let first = engine_on(&url, &calls).await;
    assert_eq!(first.register_workflow(wf.clone()).await.unwrap(), 1);
    let id = first
        .enqueue_workflow("kept", json!({"n": 0, "flag": false, "s": ""}))
        .await
        .unwrap();
    let live = first.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(live.status, ExecutionStatus::Completed);
    first.shutdown().await;
    drop(first);

    // A new engine (a restarted application) on the same file.
    let second = engine_on(&url, &calls).await;
    let kept = second
        .get_execution(id)
        .await
        .unwrap()
        .expect("the execution is in the SQLite history");
    assert_eq!(kept.status, ExecutionStatus::Completed);
    assert_eq!(
        kept.initial_data,
        json!({"n": 0, "flag": false, "s": ""}),
        "values kept exactly"
    );
    for node in ["a", "b", "c"] {
        assert_eq!(
            kept.node_results[node].status,
            NodeStatus::Completed,
            "{node}"
        );
        assert_eq!(kept.output(node), live.output(node), "{node}");
    }
    assert_eq!(
        second.register_workflow(wf).await.unwrap(),
        1,
        "the version is remembered"
    );
    let again = second.enqueue_workflow("kept", json!({})).await.unwrap();
    assert_eq!(
        second
            .wait_for_execution(again, DEADLINE)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Completed
    );
    second.shutdown().await;
    drop(second);
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_output_appears_whole_in_the_sql_history() {
    use spane::store::ExecutionStore;

    let (path, url) = temp_sqlite();
    let store = Arc::new(
        SqlStore::connect(&url, SqlStoreOptions::default())
            .await
            .unwrap(),
    );
    let mut r = NodeRegistry::new();
    r.register(
        "big",
        executor_fn(|_ctx| async move {
            Ok(NodeOutput::new(json!({ "blob": "y".repeat(200 * 1024) })))
        }),
    );
    let engine = WorkflowEngine::builder()
        .registry(r)
        .store(store.clone())
        .build();
    engine.start_workers(2).unwrap();
    let wf = WorkflowDefinition::new("big", "big").node(NodeDefinition::new("b", "big"));
    let rec = run(&engine, wf, json!({})).await;
    engine.shutdown().await;
    let row = store
        .get_execution(rec.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.output("b").unwrap()["blob"].as_str().unwrap().len(),
        200 * 1024
    );
    drop(engine);
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_started_on_v1_finishes_on_v1_while_v2_is_registered() {
    let (path, url) = temp_sqlite();
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut r = NodeRegistry::new();
    let g = gate.clone();
    r.register(
        "gate",
        executor_fn(move |_ctx| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok(NodeOutput::new(json!("root")))
            }
        }),
    );
    r.register(
        "pass",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(json!(ctx.node_id))) }),
    );
    let store = Arc::new(
        SqlStore::connect(&url, SqlStoreOptions::default())
            .await
            .unwrap(),
    );
    let engine = WorkflowEngine::builder().registry(r).store(store).build();
    engine.start_workers(2).unwrap();
    let v1 = WorkflowDefinition::new("pinned", "pinned")
        .node(NodeDefinition::new("root", "gate"))
        .node(NodeDefinition::new("old", "pass"))
        .edge("root", "old");
    let v2 = WorkflowDefinition::new("pinned", "pinned")
        .node(NodeDefinition::new("root", "gate"))
        .node(NodeDefinition::new("new", "pass"))
        .edge("root", "new");
    assert_eq!(engine.register_workflow(v1.clone()).await.unwrap(), 1);
    assert_eq!(
        engine.register_workflow(v1).await.unwrap(),
        1,
        "unchanged keeps v1"
    );
    let id = engine.enqueue_workflow("pinned", json!({})).await.unwrap();
    assert_eq!(engine.register_workflow(v2).await.unwrap(), 2);
    gate.notify_one();
    let rec = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(
        (rec.status, rec.workflow_version),
        (ExecutionStatus::Completed, 1)
    );
    assert!(rec.node_results.contains_key("old") && !rec.node_results.contains_key("new"));
    engine.shutdown().await;
    drop(engine);
    let _ = std::fs::remove_file(path);
}
