//! Faults of real processes on the Redis backend: a worker killed mid-run, a worker stopped past
//! its lease and resumed, Redis itself restarted. In every case each execution completes and
//! each node commits exactly once.

// The tests report what happened (timings, re-runs, warnings) on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use fred::prelude::{Client, ListInterface, SortedSetsInterface};
use serde_json::json;
use spane::ExecutionStatus;
use spane::prelude::*;
use spane::queue::RedisConfig;
use spane_testkit::process::RedisServer;
use tokio::time::Instant;

/// Length of the chain workflow.
const CHAIN: usize = 5;

/// Asserts that nothing is left in the queues of `prefix`: no lease, no ready or delayed job,
/// no dead letter.
async fn assert_queues_empty(client: &Client, prefix: &str) {
    let shard = format!("{prefix}:{{0}}:");
    let leases: i64 = client.zcard(format!("{shard}leases")).await.expect("ZCARD");
    let delayed: i64 = client
        .zcard(format!("{shard}delayed"))
        .await
        .expect("ZCARD");
    let dlq: i64 = client.zcard(format!("{shard}dlq")).await.expect("ZCARD");
    let ready: Vec<String> = client
        .lrange(format!("{shard}ready"), 0, -1)
        .await
        .expect("LRANGE");
    let jobs: Vec<&String> = ready.iter().filter(|m| *m != "tick").collect();
    assert!(
        leases == 0 && delayed == 0 && dlq == 0 && jobs.is_empty(),
        "left in the queues: {leases} leases, {delayed} delayed, {dlq} dead letters, ready {jobs:?}"
    );
}

/// Checks that every execution completed with every node, and that the event stream has
/// exactly one `completed` event per node and per execution. Returns the tally.
async fn assert_exactly_once(
    client: &Client,
    prefix: &str,
    ids: &[ExecutionId],
    records: &[ExecutionRecord],
    nodes: &[String],
) -> Tally {
    for r in records {
        assert_eq!(r.status, ExecutionStatus::Completed, "{r:?}");
        for node in nodes {
            let result = r
                .node_results
                .get(node)
                .unwrap_or_else(|| panic!("{} has no result for {node}", r.execution_id));
            assert_eq!(
                result.status,
                NodeStatus::Completed,
                "{} {node}",
                r.execution_id
            );
        }
    }
    let stream = events_key(prefix);
    let (length, added, max_deleted) = stream_totals(client, &stream).await;
    assert!(
        length == added && max_deleted == "0-0",
        "the event stream was trimmed: length {length}, added {added}, max deleted {max_deleted}"
    );
    let tally = Tally::of(&read_events(client, &stream).await);
    for id in ids {
        for node in nodes {
            assert_eq!(
                tally.node(*id, node, "completed"),
                1,
                "completed events of {id} {node}"
            );
            assert_eq!(
                tally.node(*id, node, "failed"),
                0,
                "failed events of {id} {node}"
            );
        }
        assert_eq!(
            tally.workflow(*id, "completed"),
            1,
            "completed events of {id}"
        );
        assert_eq!(tally.workflow(*id, "failed"), 0, "failed events of {id}");
    }
    assert_eq!(
        tally.total("node:progress/completed"),
        ids.len() * nodes.len()
    );
    tally
}

/// Nodes (`<execution>:<node>`) whose executor ran more than once.
fn reinvoked(calls: &HashMap<String, i64>) -> Vec<(&String, &i64)> {
    let mut out: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing() {
    const EXECUTIONS: usize = 60;
    let url = redis_url();
    let prefix = unique_prefix("sigkill");
    let _keys = Keyspace::new(&url, &prefix);
    let options = WorkerOptions {
        concurrency: 8,
        lease_ms: 1000,
        work_ms: 150,
        events_cap: None,
    };
    let mut a = Worker::start(&url, &prefix, "A", &options);
    let b = Worker::start(&url, &prefix, "B", &options);
    let engine = client_engine(RedisConfig::new(&url).prefix(&prefix)).await;
    engine
        .register_workflow(chain("chain", CHAIN))
        .await
        .expect("valid workflow");
    let ids = enqueue_many(&engine, "chain", EXECUTIONS).await;
    let client = connect(&url).await.expect("Redis");

    // Some way into the run, with nodes running in A: kill it without warning.
    poll_until(
        "worker A running nodes, 20 started",
        Duration::from_secs(30),
        || async {
            let w = per_worker(&client, &prefix).await;
            let (started, done) = (w.get("A").copied(), w.get("A:finished").copied());
            let (started, done) = (started.unwrap_or(0), done.unwrap_or(0));
            (started >= 20 && started > done).then_some(())
        },
    )
    .await;
    a.sigkill();
    let killed = Instant::now();
    // A is dead: what it started and never finished was in flight when it died.
    let at_kill = per_worker(&client, &prefix).await;
    let a_started = at_kill.get("A").copied().unwrap_or(0);
    let a_unfinished = a_started - at_kill.get("A:finished").copied().unwrap_or(0);

    let records = wait_all(&engine, &ids, Duration::from_secs(60)).await;
    let finished_after_kill = killed.elapsed();
    let tally = assert_exactly_once(&client, &prefix, &ids, &records, &chain_nodes(CHAIN)).await;
    assert_queues_empty(&client, &prefix).await;

    // Every node A left unfinished ran again in B (a node's attempts never overlap in one
    // worker, so these are distinct nodes); nothing else needed a second run.
    let calls = invocations(&client, &prefix).await;
    let again = reinvoked(&calls);
    assert!(
        a_unfinished >= 1,
        "A had no node in flight when it was killed: the kill proved nothing ({at_kill:?})"
    );
    assert!(
        again.len() as i64 >= a_unfinished,
        "{a_unfinished} nodes were in flight in A, only {} ran again: {again:?}",
        again.len()
    );
    let reattempted = records
        .iter()
        .flat_map(|r| r.node_results.values())
        .filter(|n| n.attempts > 1)
        .count();
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for r in &records {
        for node in r.node_results.keys() {
            *by_worker.entry(by(r, node)).or_default() += 1;
        }
    }
    eprintln!(
        "sigkill: A killed after starting {a_started} nodes, {a_unfinished} in flight; all \
         {EXECUTIONS} executions done {finished_after_kill:?} later; nodes run again: {} \
         ({again:?}); results with attempts > 1: {reattempted}; committed by {by_worker:?}; \
         events {:?}; B warnings: {} reclaimed, {} stale commits",
        again.len(),
        tally.totals,
        b.stderr_count("reclaimed jobs"),
        b.stderr_count("stale commit refused"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_past_lease_then_sigcont_the_stale_commit_is_refused() {
    let url = redis_url();
    let prefix = unique_prefix("sigstop");
    let _keys = Keyspace::new(&url, &prefix);
    let a = Worker::start(
        &url,
        &prefix,
        "A",
        &WorkerOptions {
            concurrency: 1,
            lease_ms: 500,
            work_ms: 2000,
            events_cap: None,
        },
    );
    let engine = client_engine(RedisConfig::new(&url).prefix(&prefix)).await;
    engine
        .register_workflow(chain("single", 1))
        .await
        .expect("valid workflow");
    let id = engine
        .enqueue_workflow("single", json!({ "x": 1 }))
        .await
        .expect("enqueued");
    let client = connect(&url).await.expect("Redis");
    let field = format!("{id}:n0");
    let invocations_of = |client: Client, field: String| {
        let prefix = prefix.clone();
        async move {
            invocations(&client, &prefix)
                .await
                .get(&field)
                .copied()
                .unwrap_or(0)
        }
    };

    // A runs the node (2 s of work); freeze it mid-work, before it can renew its lease again.
    poll_until("A's executor to start", Duration::from_secs(20), || {
        let probe = invocations_of(client.clone(), field.clone());
        async move { (probe.await >= 1).then_some(()) }
    })
    .await;
    a.signal("STOP");
    let stopped = Instant::now();

    // B reclaims the node once A's lease expires, and completes it.
    let b = Worker::start(
        &url,
        &prefix,
        "B",
        &WorkerOptions {
            concurrency: 2,
            lease_ms: 500,
            work_ms: 0,
            events_cap: None,
        },
    );
    let record = wait_all(&engine, &[id], Duration::from_secs(30))
        .await
        .remove(0);
    let completed_after = stopped.elapsed();
    assert_eq!(record.status, ExecutionStatus::Completed, "{record:?}");
    assert_eq!(by(&record, "n0"), "B", "{record:?}");

    // A wakes up, its executor returns, and its commit is refused as stale.
    a.signal("CONT");
    poll_until(
        "A to finish its executor and have its commit refused",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            let (prefix, field) = (prefix.clone(), field.clone());
            let refused = a.stderr_count("stale commit refused");
            async move {
                let done = finished(&client, &prefix)
                    .await
                    .get(&field)
                    .copied()
                    .unwrap_or(0);
                (done >= 2 && refused >= 1).then_some(())
            }
        },
    )
    .await;

    // Nothing changed: B's result stands, and the node completed once.
    let after = engine
        .get_execution(id)
        .await
        .expect("readable")
        .expect("still held by the queue");
    assert_eq!(after, record, "the stale commit changed the execution");
    let tally = Tally::of(&read_events(&client, &events_key(&prefix)).await);
    assert_eq!(tally.node(id, "n0", "completed"), 1, "{:?}", tally.totals);
    assert_eq!(tally.node(id, "n0", "running"), 2, "{:?}", tally.totals);
    assert_eq!(tally.workflow(id, "completed"), 1, "{:?}", tally.totals);
    assert_eq!(invocations_of(client.clone(), field.clone()).await, 2);
    assert_queues_empty(&client, &prefix).await;
    eprintln!(
        "sigstop: B completed the node {completed_after:?} after A was stopped (attempt {}); \
         A's warnings after SIGCONT: {:?}; B's: {:?}",
        record.node_results["n0"].attempts,
        a.stderr_lines(),
        b.stderr_lines(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_run_every_execution_completes() {
    const EXECUTIONS: usize = 100;
    const LEASE_MS: u64 = 2000;
    const OUTAGE: Duration = Duration::from_millis(LEASE_MS + 500);
    // Declared first, so dropped last: the workers die before their Redis.
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"])
        .expect("a redis-server of our own");
    let url = server.url();
    let prefix = unique_prefix("restart");
    let options = WorkerOptions {
        concurrency: 4,
        lease_ms: LEASE_MS,
        work_ms: 30,
        events_cap: None,
    };
    let a = Worker::start(&url, &prefix, "A", &options);
    let b = Worker::start(&url, &prefix, "B", &options);
    let engine = client_engine(RedisConfig::new(&url).prefix(&prefix)).await;
    engine
        .register_workflow(chain("chain", CHAIN))
        .await
        .expect("valid workflow");
    let ids = enqueue_many(&engine, "chain", EXECUTIONS).await;
    let client = connect(&url).await.expect("Redis");

    // A fifth of the nodes have run: kill Redis (SIGKILL; with appendfsync always every
    // acknowledged write is in the AOF), keep it down for longer than a lease, and start it
    // again on the same port and directory.
    let done_before = poll_until("100 nodes to run", Duration::from_secs(30), || async {
        let done = finished(&client, &prefix).await.len();
        (done >= 100).then_some(done)
    })
    .await;
    assert!(
        done_before < EXECUTIONS * CHAIN,
        "the run ended before Redis could be restarted"
    );
    let down = Instant::now();
    server.kill().expect("killed");
    // The outage itself (not a synchronisation): longer than a lease, so that the leases of
    // the nodes in flight expire while Redis is away and are reclaimed when it is back.
    tokio::time::sleep(OUTAGE).await;
    server
        .restart()
        .unwrap_or_else(|e| panic!("redis-server restart: {e}"));
    let downtime = down.elapsed();

    // Workers and this engine reconnect by themselves.
    let records = wait_all(&engine, &ids, Duration::from_secs(60)).await;
    let all_done = down.elapsed();
    let nodes = chain_nodes(CHAIN);
    let tally = assert_exactly_once(&client, &prefix, &ids, &records, &nodes).await;
    assert_queues_empty(&client, &prefix).await;
    let calls = invocations(&client, &prefix).await;
    // A count of 2 is a second run when the node was claimed twice (two `running` events);
    // otherwise the counter's HINCRBY was resent by the client after the connection broke.
    let again: Vec<String> = reinvoked(&calls)
        .into_iter()
        .map(|(key, n)| {
            let (exec, node) = key.split_once(':').expect("<execution>:<node>");
            let exec: ExecutionId = exec.parse().expect("execution id");
            let claims = tally.node(exec, node, "running");
            format!("{key}: {n} calls, {claims} claims")
        })
        .collect();
    eprintln!(
        "restart: Redis killed after {done_before} nodes ran, back after {downtime:?}; all \
         {EXECUTIONS} executions done {all_done:?} after the kill; nodes counted more than \
         once: {} ({again:?}); events {:?}; warnings A {:?}; B {:?}",
        again.len(),
        tally.totals,
        a.stderr_lines(),
        b.stderr_lines(),
    );
}
