//! Settings of the Redis backend that protect data: it refuses a Redis that may evict keys,
//! finished executions expire after their retention, and the event stream stays capped.

// The tests report what happened (timings, re-runs, warnings) on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::time::Duration;

use common::*;
use fred::prelude::{KeysInterface, StreamsInterface};
use serde_json::json;
use spane::prelude::*;
use spane::queue::{QueueError, RedisConfig, RedisQueue};
use spane_testkit::process::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_when_redis_may_evict_keys() {
    let server = RedisServer::start(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"])
        .expect("a redis-server of our own");
    match RedisQueue::connect(RedisConfig::new(server.url())).await {
        Err(QueueError::Misconfigured { reason }) => assert!(
            reason.contains("allkeys-lru") && reason.contains("noeviction"),
            "the message must name the policy found and the one required: {reason}"
        ),
        other => panic!("expected QueueError::Misconfigured, got {other:?}"),
    }
    let queue = RedisQueue::connect(RedisConfig::new(server.url()).allow_eviction(true))
        .await
        .expect("connects when eviction is explicitly allowed");
    drop(queue);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_executions_expire_and_the_event_stream_is_capped() {
    // Commits are batched (several nodes' events per stream entry): enough executions to append
    // well over 4 × CAP entries.
    const EXECUTIONS: usize = 200;
    const CAP: u64 = 50;
    let url = redis_url();
    let prefix = unique_prefix("retention");
    let _keys = Keyspace::new(&url, &prefix);
    let mut registry = NodeRegistry::new();
    registry.register(
        "pass",
        executor_fn(|ctx| async move {
            Ok(NodeOutput::new(
                json!({ "node": ctx.node_id, "input": ctx.input_data }),
            ))
        }),
    );
    let engine = WorkflowEngine::builder()
        .registry(registry)
        .config(engine_config())
        .redis(
            RedisConfig::new(&url)
                .prefix(&prefix)
                // Long enough that every execution is still there when its waiter first looks
                // (the waiters start once all 200 are enqueued), short enough to watch expire.
                .retention(Duration::from_secs(3))
                .events_cap(CAP),
        )
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is needed for this test: {e}"))
        .build();
    engine.start_workers(4).expect("workers start");
    engine
        .register_workflow(chain("chain", 5))
        .await
        .expect("valid workflow");
    let ids = enqueue_many(&engine, "chain", EXECUTIONS).await;
    let records = wait_all(&engine, &ids, Duration::from_secs(30)).await;
    assert!(
        records
            .iter()
            .all(|r| r.status == ExecutionStatus::Completed),
        "{records:?}"
    );

    // Each execution's hash expires after the retention (3 s)...
    let client = connect(&url).await.expect("Redis");
    let keys: Vec<String> = ids.iter().map(|id| execution_key(&prefix, *id)).collect();
    poll_until(
        "every execution hash to expire",
        Duration::from_secs(15),
        || {
            let (client, keys) = (client.clone(), keys.clone());
            async move {
                let left: i64 = client.exists(keys).await.ok()?;
                (left == 0).then_some(())
            }
        },
    )
    .await;
    // ... and the engine never answers with a stale, unfinished state: with the default store
    // of a Redis engine (no history yet) the execution is gone; a history store would have it
    // completed.
    let mut from_history = 0;
    for id in &ids {
        if let Some(record) = engine.get_execution(*id).await.expect("readable") {
            assert_eq!(record.status, ExecutionStatus::Completed, "{record:?}");
            from_history += 1;
        }
    }

    // The stream was trimmed to about the cap (MAXLEN ~ trims whole nodes of 100 entries).
    let stream = events_key(&prefix);
    let length: i64 = client.xlen(&stream).await.expect("XLEN");
    let (_, added, _) = stream_totals(&client, &stream).await;
    assert!(
        length > 0 && length < 200,
        "stream length {length} (cap {CAP}, {added} entries added)"
    );
    assert!(
        added > 4 * CAP as i64,
        "the run appended only {added} entries: the cap was not exercised"
    );
    engine.shutdown().await;
    eprintln!(
        "retention: all {EXECUTIONS} execution hashes expired; {from_history} still readable \
         through the engine's store; stream length {length} after {added} entries added with cap {CAP}"
    );
}
