//! A sub-workflow's worker process dies between the child's end and the parent's resumption:
//! another process resumes the parent, exactly once.
//!
//! Worker A runs with `--abort-after-first-end`: it aborts the moment its first commit that
//! ends an execution is applied, which is the child's last node, before it resumes the parent.
//! The test checks that the kill landed there (the child ended and waits in the outbox, the
//! parent runs), then starts worker B, whose sweep resumes the parent.

// The test reports what happened on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::time::Duration;

use common::*;
use fred::prelude::{ClientLike, SortedSetsInterface};
use serde_json::json;
use spane::ExecutionStatus;
use spane::prelude::*;
use spane::queue::RedisConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_between_child_end_and_parent_resumption_resumes_once() {
    let url = redis_url();
    let prefix = unique_prefix("subkill");
    let _keys = Keyspace::new(&url, &prefix);
    let options = WorkerOptions {
        concurrency: 1,
        lease_ms: 1000,
        work_ms: 0,
        events_cap: None,
    };
    let engine = client_engine(RedisConfig::new(&url).prefix(&prefix)).await;
    engine
        .register_workflow(chain("payment", 2))
        .await
        .expect("valid child");
    engine
        .register_workflow(
            WorkflowDefinition::new("order", "Order")
                .node(
                    NodeDefinition::new("pay", "sub-workflow")
                        .with_config(json!({"workflowId": "payment"})),
                )
                .node(NodeDefinition::new("after", "pass"))
                .edge("pay", "after"),
        )
        .await
        .expect("valid parent");
    let client = connect(&url).await.expect("Redis");

    let mut a = Worker::start_with(&url, &prefix, "A", &options, &["--abort-after-first-end"]);
    let parent = engine
        .enqueue_workflow("order", json!({"total": 5}))
        .await
        .expect("enqueued");
    let status = a.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "A aborted: {status}");
    assert_eq!(a.stderr_count("aborting after the first execution end"), 1);

    // The kill landed between the two steps: the child ended, the parent still waits.
    let children = engine.child_executions(parent).await.expect("children");
    assert_eq!(children.len(), 1, "{children:?}");
    let child = children[0];
    let child_record = engine.get_execution(child).await.unwrap().expect("child");
    assert_eq!(child_record.status, ExecutionStatus::Completed);
    let ended: Option<f64> = client
        .zscore(format!("{prefix}:{{0}}:ended"), child.to_string())
        .await
        .expect("ZSCORE");
    assert!(ended.is_some(), "the child's end waits in the outbox");
    let waiting = engine.get_execution(parent).await.unwrap().expect("parent");
    assert_eq!(waiting.status, ExecutionStatus::Running);
    assert_eq!(waiting.node_results["pay"].status, NodeStatus::Running);

    // B's sweep resumes the parent, once.
    let b = Worker::start(&url, &prefix, "B", &options);
    let done = wait_all(&engine, &[parent], Duration::from_secs(30))
        .await
        .remove(0);
    assert_eq!(done.status, ExecutionStatus::Completed, "{done:?}");
    assert_eq!(done.node_results["pay"].attempts, 1, "{done:?}");
    assert_eq!(by(&done, "after"), "B");
    let tally = Tally::of(&read_events(&client, &events_key(&prefix)).await);
    assert_eq!(tally.node(parent, "pay", "completed"), 1);
    assert_eq!(tally.node(parent, "after", "completed"), 1);
    assert_eq!(tally.workflow(parent, "completed"), 1);
    assert_eq!(tally.workflow(child, "completed"), 1);
    let calls = invocations(&client, &prefix).await;
    assert_eq!(calls.get(&format!("{parent}:after")).copied(), Some(1));
    assert_eq!(engine.child_executions(parent).await.unwrap(), vec![child]);
    poll_until("the outbox is emptied", Duration::from_secs(10), || {
        let client = client.clone();
        let key = format!("{prefix}:{{0}}:ended");
        async move {
            let left: i64 = client.zcard(key).await.expect("ZCARD");
            (left == 0).then_some(())
        }
    })
    .await;
    eprintln!(
        "subkill: A aborted after the child's end; B resumed the parent once ({} stale commits refused in B)",
        b.stderr_count("stale commit refused")
    );
    let _ = client.quit().await;
}
