//! Several worker processes share one Redis: every transition happens exactly once.
//!
//! The workers are real processes (`spane-test-worker`); this process only registers the
//! workflow, enqueues and observes, through an engine of its own that runs no workers.

// The tests report what happened (timings, re-runs, warnings) on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use fred::prelude::HashesInterface;
use spane::ExecutionStatus;
use spane::queue::RedisConfig;

/// Parallel branches of the fan-out.
const WIDTH: usize = 50;
/// Executions enqueued.
const EXECUTIONS: usize = 1000;
/// A cap far above what the run appends, so that the stream keeps every event.
const EVENTS_CAP: u64 = 5_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_1000_fan_out_executions_exactly_once() {
    let url = redis_url();
    let prefix = unique_prefix("fanout");
    let _keys = Keyspace::new(&url, &prefix);
    let started = std::time::Instant::now();

    let options = WorkerOptions {
        concurrency: 32,
        lease_ms: 30_000,
        work_ms: 0,
        events_cap: Some(EVENTS_CAP),
    };
    let mut a = Worker::start(&url, &prefix, "A", &options);
    let mut b = Worker::start(&url, &prefix, "B", &options);

    let engine = client_engine(
        RedisConfig::new(&url)
            .prefix(&prefix)
            .events_cap(EVENTS_CAP),
    )
    .await;
    engine
        .register_workflow(fan_out("fan", WIDTH))
        .await
        .expect("valid workflow");
    let ids = enqueue_many(&engine, "fan", EXECUTIONS).await;
    let enqueued = started.elapsed();
    // Watch the workers' counters first (one HLEN a poll): the engine's event reader starts
    // with the first wait below, so this process does not decode the run's events meanwhile
    // and leaves the CPU to the workers.
    let client = connect(&url).await.expect("Redis");
    let nodes = WIDTH + 2;
    let counted = format!("{prefix}:test:finished");
    poll_until(
        "every node's executor to return",
        Duration::from_secs(60),
        || async {
            let n: i64 = client.hlen(&counted).await.ok()?;
            (n as usize >= EXECUTIONS * nodes).then_some(())
        },
    )
    .await;
    let executed = started.elapsed();
    let records = wait_all(&engine, &ids, Duration::from_secs(30)).await;
    let ran = started.elapsed();

    // Every execution completed with every node's result, and the join saw all branches.
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for r in &records {
        assert_eq!(r.status, ExecutionStatus::Completed, "{r:?}");
        assert_eq!(r.node_results.len(), nodes, "{}", r.execution_id);
        let join_input = &r.output("join").expect("join output")["input"];
        assert_eq!(
            join_input.as_object().map(|o| o.len()),
            Some(WIDTH),
            "join input of {}: {join_input}",
            r.execution_id
        );
        for (node, result) in &r.node_results {
            assert_eq!(result.attempts, 1, "{} {node}", r.execution_id);
            *by_worker.entry(by(r, node)).or_default() += 1;
        }
    }
    assert_eq!(by_worker.values().sum::<usize>(), EXECUTIONS * nodes);
    assert!(
        by_worker.get("A").copied().unwrap_or(0) > 0
            && by_worker.get("B").copied().unwrap_or(0) > 0,
        "both processes must have run nodes: {by_worker:?}"
    );

    // The event stream holds every event: nothing was trimmed.
    let stream = events_key(&prefix);
    let (length, added, max_deleted) = stream_totals(&client, &stream).await;
    assert!(
        length == added && max_deleted == "0-0",
        "the event stream was trimmed: length {length}, entries added {added}, max deleted {max_deleted}"
    );
    let events = read_events(&client, &stream).await;
    let tally = Tally::of(&events);
    let read = started.elapsed();

    // Exactly one `completed` per node, one `completed` per execution, nothing failed.
    let node_ids: Vec<String> = records[0].node_results.keys().cloned().collect();
    for id in &ids {
        for node in &node_ids {
            assert_eq!(
                tally.node(*id, node, "completed"),
                1,
                "completed events of {id} {node}"
            );
            assert_eq!(
                tally.node(*id, node, "running"),
                1,
                "running events of {id} {node}"
            );
        }
        assert_eq!(
            tally.workflow(*id, "completed"),
            1,
            "completed events of {id}"
        );
        assert_eq!(tally.workflow(*id, "started"), 1, "started events of {id}");
    }
    assert_eq!(tally.total("node:progress/completed"), EXECUTIONS * nodes);
    assert_eq!(tally.total("workflow:status/completed"), EXECUTIONS);
    assert_eq!(
        tally.total("node:progress/failed") + tally.total("node:progress/retrying"),
        0,
        "{:?}",
        tally.totals
    );

    // Each executor ran once per node: no lease expired, nothing was retried.
    let calls = invocations(&client, &prefix).await;
    assert_eq!(calls.len(), EXECUTIONS * nodes, "nodes with an invocation");
    let repeated: Vec<_> = calls.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "nodes invoked more than once: {repeated:?}"
    );
    let per = per_worker(&client, &prefix).await;

    // Both workers shut down gracefully.
    let checked = started.elapsed();
    let (status_a, said_a) = a.terminate(Duration::from_secs(15));
    let (status_b, said_b) = b.terminate(Duration::from_secs(15));
    assert!(
        status_a.success() && status_b.success(),
        "{status_a} {status_b}"
    );
    eprintln!(
        "fan-out: {EXECUTIONS} executions x {nodes} nodes; enqueued in {enqueued:?}, every node run after {executed:?}, all \
         completed after {ran:?}, events read after {read:?}, checked after {checked:?}; \
         stream {length} entries, {} events {:?}; nodes by worker {by_worker:?}; counters {per:?}; \
         shutdown A {said_a:?} B {said_b:?}",
        events.len(),
        tally.totals
    );
}
