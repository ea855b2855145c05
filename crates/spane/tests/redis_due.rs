//! Delayed work on Redis (a retry's backoff, a `retry_after`, a delay node) runs once it is due
//! even when nothing else would wake the workers: here they claim with a 30 s wait and look for
//! stalled jobs once a minute, so a job left for "the next poll" would miss the test's deadline.
//! How soon after its due time a job starts is measured by the bench, never asserted here.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use spane::prelude::*;
use spane::queue::backend::{NodeCommit, StartExecution, WorkerId};
use spane::queue::{ExecutionQueue, RedisQueue};

/// What the workers of these tests wait for at most, between claims or for stalled jobs: longer
/// than [`DEADLINE`], so only a wake at the due time gets delayed work done in time.
const PATIENCE: Duration = Duration::from_secs(30);

/// The delays and backoffs of these tests.
const DUE_IN: Duration = Duration::from_millis(50);

/// The least time between an attempt's start and the next one's: the delay, less a millisecond
/// for Redis's clock, which counts whole milliseconds.
const AT_LEAST: Duration = Duration::from_millis(49);

fn patient_config() -> spane::queue::RedisConfig {
    redis_config().reclaim_every(2 * PATIENCE)
}

async fn patient_engine(registry: NodeRegistry) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .registry(registry)
        .config(
            spane::EngineConfig::default()
                .claim_wait(PATIENCE)
                .shutdown_timeout(Duration::from_secs(5)),
        )
        .redis(patient_config())
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
        .build();
    engine.start_workers(4).expect("workers start");
    engine
}

/// When each node's executor was called, in call order.
#[derive(Default, Clone)]
struct Starts(Arc<Mutex<Vec<(String, Instant)>>>);

impl Starts {
    fn record(&self, node: &str) {
        self.0
            .lock()
            .unwrap()
            .push((node.to_owned(), Instant::now()));
    }

    fn of(&self, node: &str) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, t)| *t)
            .collect()
    }
}

/// `pass` (returns its input), `flaky` (fails retryably on its first two attempts) and
/// `throttled` (asks to be run again after [`DUE_IN`] on its first call), each recording its
/// calls.
fn registry(starts: &Starts) -> NodeRegistry {
    let mut r = NodeRegistry::new();
    let s = starts.clone();
    r.register(
        "pass",
        executor_fn(move |ctx| {
            s.record(&ctx.node_id);
            async move { Ok(NodeOutput::new(ctx.input_data)) }
        }),
    );
    let s = starts.clone();
    r.register(
        "flaky",
        executor_fn(move |ctx| {
            s.record(&ctx.node_id);
            async move {
                if ctx.attempt < 3 {
                    Err(NodeError::retryable("connection reset"))
                } else {
                    Ok(NodeOutput::new(json!({ "attempt": ctx.attempt })))
                }
            }
        }),
    );
    let s = starts.clone();
    r.register(
        "throttled",
        executor_fn(move |ctx| {
            let first = s.of(&ctx.node_id).is_empty();
            s.record(&ctx.node_id);
            async move {
                if first {
                    Err(NodeError::retry_after("429 Too Many Requests", DUE_IN))
                } else {
                    Ok(NodeOutput::new(json!({ "attempt": ctx.attempt })))
                }
            }
        }),
    );
    r
}

/// Asserts that `later` started at least [`AT_LEAST`] after `earlier`.
fn waited(earlier: Instant, later: Instant, what: &str) {
    let gap = later.duration_since(earlier);
    assert!(
        gap >= AT_LEAST,
        "{what} ran {gap:?} after the previous attempt, before it was due"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_a_backoff_runs_again_when_due_and_the_execution_completes() {
    let starts = Starts::default();
    let engine = patient_engine(registry(&starts)).await;
    let backoff = json!({ "type": "fixed", "delay": DUE_IN.as_millis() as u64, "jitter": 0 });
    let wf = WorkflowDefinition::new("due-retry", "due-retry")
        .node(NodeDefinition::new("start", "pass"))
        .node(
            NodeDefinition::new("flaky", "flaky")
                .with_config(json!({ "retryPolicy": { "maxAttempts": 3, "backoff": backoff } })),
        )
        .node(NodeDefinition::new("end", "pass"))
        .edge("start", "flaky")
        .edge("flaky", "end");
    let rec = run(&engine, wf, json!({ "order": 7 })).await;

    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(rec.node_results["flaky"].attempts, 3);
    assert_eq!(rec.output("flaky"), Some(&json!({ "attempt": 3 })));
    assert_eq!(rec.output("end"), Some(&json!({ "attempt": 3 })));
    let flaky = starts.of("flaky");
    assert_eq!(flaky.len(), 3, "three attempts, each run once");
    waited(flaky[0], flaky[1], "the second attempt");
    waited(flaky[1], flaky[2], "the third attempt");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_node_runs_again_after_its_retry_after_without_using_an_attempt() {
    let starts = Starts::default();
    let engine = patient_engine(registry(&starts)).await;
    let wf = WorkflowDefinition::new("due-throttled", "due-throttled").node(
        NodeDefinition::new("t", "throttled")
            .with_config(json!({ "retryPolicy": { "maxAttempts": 1 } })),
    );
    let rec = run(&engine, wf, json!({})).await;

    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(rec.output("t"), Some(&json!({ "attempt": 1 })));
    let calls = starts.of("t");
    assert_eq!(calls.len(), 2);
    waited(calls[0], calls[1], "the call after the retry_after");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_node_holds_its_child_until_due_and_the_execution_completes() {
    let starts = Starts::default();
    let engine = patient_engine(registry(&starts)).await;
    let wf = WorkflowDefinition::new("due-delay", "due-delay")
        .node(NodeDefinition::new("start", "pass"))
        .node(
            NodeDefinition::new("wait", "delay")
                .with_config(json!({ "duration": DUE_IN.as_millis() as u64 })),
        )
        .node(NodeDefinition::new("end", "pass"))
        .edge("start", "wait")
        .edge("wait", "end");
    let rec = run(&engine, wf, json!({ "order": 8 })).await;

    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(rec.output("end"), Some(&json!({ "order": 8 })));
    let (start, end) = (starts.of("start"), starts.of("end"));
    assert_eq!((start.len(), end.len()), (1, 1));
    waited(start[0], end[0], "the delay node's child");
    engine.shutdown().await;
}

/// A queue-level view of the same promise: a claim call already waiting when another process
/// schedules a retry sooner than anything it knew of returns that retry once due, within its
/// one call, rather than empty-handed at the end of its wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_claim_returns_a_retry_scheduled_while_it_waits() {
    let q = RedisQueue::connect(patient_config())
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()));
    let wf = Arc::new(
        WorkflowDefinition::new("due-queue", "due-queue")
            .node(NodeDefinition::new("a", "x"))
            .compile(&spane::core::AnyNodeType)
            .unwrap(),
    );
    let worker = WorkerId::new();
    let mut jobs = Vec::new();
    for _ in 0..2 {
        q.start_execution(StartExecution::new(
            ExecutionId::new(),
            wf.clone(),
            1,
            json!({}),
        ))
        .await
        .unwrap();
        jobs.extend(q.claim(&worker, 1, DEADLINE).await.unwrap());
    }
    assert_eq!(jobs.len(), 2);
    let retry = |delay| NodeCommit::Retry {
        error: "later".to_owned(),
        delay,
        consume_attempt: false,
    };
    // Due in an hour: what the waiting claim knows of when it starts waiting.
    q.commit(&jobs[0], retry(Duration::from_secs(3600)))
        .await
        .unwrap();

    let trips = q.counters().unwrap().stats().round_trips;
    let waiter = {
        let (q, worker) = (q.clone(), worker.clone());
        tokio::spawn(async move { q.claim(&worker, 1, PATIENCE).await })
    };
    // Until the waiting claim has made its two calls (the claim, then the wait), so that the
    // retry below is most likely scheduled while it waits (if not, it must be handed out all
    // the same).
    // The counter is in this process: yield to the waiting task until it has moved, no timer.
    tokio::time::timeout(DEADLINE, async {
        while q.counters().unwrap().stats().round_trips < trips + 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the claim started waiting");
    let scheduled = Instant::now();
    q.commit(&jobs[1], retry(DUE_IN)).await.unwrap();

    let claimed = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the waiting claim returns before the deadline")
        .unwrap()
        .unwrap();
    assert_eq!(claimed.len(), 1, "the retry, within the one claim call");
    assert_eq!(claimed[0].execution_id, jobs[1].execution_id);
    assert!(
        scheduled.elapsed() >= AT_LEAST,
        "handed out before it was due"
    );
    q.delete_all_keys().await.unwrap();
}
