//! The Redis event stream: bounded by age as well as by count, and read by the history writers
//! from its first entry. Against the Redis of `REDIS_URL` (or 127.0.0.1:6379); every test has
//! its own key prefix.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use serde_json::json;
use spane_core::{AnyNodeType, CompiledWorkflow, ExecutionId, NodeDefinition, WorkflowDefinition};
use spane_queue::backend::StartExecution;
use spane_queue::{ExecutionQueue, RedisConfig, RedisQueue};

fn url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn prefix(test: &str) -> String {
    format!(
        "spane-events-{test}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

async fn queue(config: RedisConfig) -> RedisQueue {
    RedisQueue::connect(config)
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", url()))
}

async fn client() -> Client {
    let client = Client::new(
        Config::from_url(&url()).expect("Redis URL"),
        None,
        None,
        None,
    );
    client.init().await.expect("Redis reachable");
    client
}

fn workflow() -> Arc<CompiledWorkflow> {
    let wf = WorkflowDefinition::new("events", "events").node(NodeDefinition::new("a", "x"));
    Arc::new(wf.compile(&AnyNodeType).expect("valid workflow"))
}

/// Starts one single-node execution: one append to the event stream.
async fn start(q: &RedisQueue, workflow: &Arc<CompiledWorkflow>) -> ExecutionId {
    let id = ExecutionId::new();
    q.start_execution(StartExecution::new(id, workflow.clone(), 1, json!({})))
        .await
        .expect("execution started");
    id
}

/// Redis's clock in ms (the clock stream ids are made of).
async fn redis_now_ms(client: &Client) -> u64 {
    let (secs, micros): (u64, u64) = client
        .custom(fred::cmd!("TIME"), Vec::<String>::new())
        .await
        .expect("TIME");
    secs * 1000 + micros / 1000
}

/// The millisecond part of a stream id.
fn id_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("stream id {id:?}"))
}

/// The ids of every entry of `stream`, oldest first.
async fn stream_ids(client: &Client, stream: &str) -> Vec<String> {
    let entries: Vec<(String, std::collections::HashMap<String, String>)> =
        client.xrange(stream, "-", "+", None).await.expect("XRANGE");
    entries.into_iter().map(|(id, _)| id).collect()
}

async fn node_max_entries(client: &Client) -> usize {
    let reply: Vec<String> = client
        .config_get("stream-node-max-entries")
        .await
        .expect("CONFIG GET");
    reply
        .get(1)
        .and_then(|v| v.parse().ok())
        .expect("stream-node-max-entries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_drops_entries_older_than_the_max_age() {
    const OLD: usize = 400;
    let max_age = Duration::from_millis(300);
    let prefix = prefix("age");
    // A cap far above what the test appends: only the age can trim.
    let q = queue(
        RedisConfig::new(url())
            .prefix(&prefix)
            .events_cap(1_000_000)
            .events_max_age(max_age),
    )
    .await;
    let client = client().await;
    let stream = q.event_streams().remove(0);
    let wf = workflow();
    for _ in 0..OLD {
        start(&q, &wf).await;
    }
    let old = stream_ids(&client, &stream).await;
    let newest_old = id_ms(old.last().expect("events appended"));

    // Wait (on Redis's clock, with a deadline) until every entry appended so far is older than
    // the max age, then append once more: that append trims them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redis_now_ms(&client).await <= newest_old + max_age.as_millis() as u64 + 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis's clock did not pass the max age"
        );
        tokio::task::yield_now().await;
    }
    start(&q, &wf).await;

    let left = stream_ids(&client, &stream).await;
    let old_left = left.iter().filter(|id| id_ms(id) <= newest_old).count();
    // Trimming is approximate (whole stream nodes): at most one node of old entries stays.
    let node = node_max_entries(&client).await;
    assert!(
        old_left <= node && old_left < OLD,
        "{old_left} of {OLD} entries older than the max age are still in the stream \
         ({} appended before the wait, {} now; stream-node-max-entries {node})",
        old.len(),
        left.len()
    );
    assert!(
        left.iter().any(|id| id_ms(id) > newest_old),
        "the new entry is in the stream: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_keeps_its_count_cap_with_the_age_bound() {
    const APPENDS: usize = 400;
    let prefix = prefix("cap");
    let q = queue(
        RedisConfig::new(url())
            .prefix(&prefix)
            .events_cap(10)
            .events_max_age(Duration::from_secs(3600)),
    )
    .await;
    let client = client().await;
    let stream = q.event_streams().remove(0);
    let wf = workflow();
    for _ in 0..APPENDS {
        start(&q, &wf).await;
    }
    let length: usize = client.xlen(&stream).await.expect("XLEN");
    let node = node_max_entries(&client).await;
    assert!(
        length <= 10 + node && length < APPENDS,
        "stream length {length} after {APPENDS} appends with a cap of 10"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_before_any_history_writer_reach_the_history_feed() {
    let q = queue(RedisConfig::new(url()).prefix(prefix("history"))).await;
    let wf = workflow();
    // Executions started while no history writer has ever read the stream.
    let mut before = Vec::new();
    for _ in 0..3 {
        before.push(start(&q, &wf).await);
    }

    // The first writer's first reads see them.
    let feed = q.history_feed().expect("Redis has a history feed");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !before.iter().all(|id| seen.contains(id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "executions started before the first writer never reached the feed: \
             started {before:?}, fed {seen:?}"
        );
        let batch = feed
            .history_batch("writer-1", 100, Duration::ZERO, Duration::from_secs(30))
            .await
            .expect("history batch");
        if batch.entries.is_empty() {
            // Nothing more will come: what is missing now was skipped.
            break;
        }
        seen.extend(batch.executions());
        feed.history_ack(&batch.entry_ids()).await.expect("ack");
    }
    for id in &before {
        assert!(
            seen.contains(id),
            "execution {id} started before the first history writer is missing from the feed \
             (fed {seen:?})"
        );
    }

    // A second queue client (another process) connecting later keeps the group as it is: what
    // was acknowledged is not handed out again.
    let again = queue(RedisConfig::new(url()).prefix(q.config().prefix_str())).await;
    let batch = again
        .history_feed()
        .expect("history feed")
        .history_batch("writer-2", 100, Duration::ZERO, Duration::from_secs(30))
        .await
        .expect("history batch");
    assert!(batch.entries.is_empty(), "re-delivered: {batch:?}");
}
