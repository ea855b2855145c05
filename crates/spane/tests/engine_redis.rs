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
