//! The worker runtime records its metrics: executions finished by status, node attempts by
//! type and outcome, executor durations, retries and the dead-letter queue size.
//!
//! The recorder is a `DebuggingRecorder` set as this thread's local recorder; the test runs on
//! a current-thread runtime, so every task the worker spawns records into it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use spane_core::{
    EngineEvent, EventSink, ExecutionId, ExecutionStatus, NodeDefinition, NodeError, NodeOutput,
    NodeRegistry, WorkflowDefinition, WorkflowEventStatus, executor_fn,
};
use spane_queue::backend::StartExecution;
use spane_queue::{ExecutionQueue, MemoryQueue};
use spane_store::MemoryStore;
use spane_worker::metrics as names;
use spane_worker::{Definitions, NodeProcessor, WorkerConfig, WorkerManager};

const DEADLINE: Duration = Duration::from_secs(20);

/// Retries every 10 ms, up to `max_attempts`.
fn retry_policy(max_attempts: u32) -> serde_json::Value {
    json!({ "retryPolicy": {
        "maxAttempts": max_attempts,
        "backoff": { "type": "fixed", "delay": 10 }
    }})
}

fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(
        "ok",
        executor_fn(|_ctx| async move { Ok(NodeOutput::new(json!("ok"))) }),
    );
    // Fails its first attempt (retryable), then succeeds.
    let calls = Arc::new(AtomicU32::new(0));
    r.register(
        "flaky",
        executor_fn(move |_ctx| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(NodeError::retryable("first attempt fails"))
                } else {
                    Ok(NodeOutput::new(json!("recovered")))
                }
            }
        }),
    );
    r.register(
        "broken",
        executor_fn(|_ctx| async move { Err(NodeError::retryable("always down")) }),
    );
    r
}

fn workflows() -> Vec<WorkflowDefinition> {
    vec![
        // flaky: retry, completed; wait: delayed, completed; done: completed.
        WorkflowDefinition::new("recovers", "recovers")
            .node(NodeDefinition::new("flaky", "flaky").with_config(retry_policy(3)))
            .node(NodeDefinition::new("wait", "delay").with_config(json!({ "duration": 10 })))
            .node(NodeDefinition::new("done", "ok"))
            .edge("flaky", "wait")
            .edge("wait", "done"),
        // broken: retry, failed (attempts exhausted) -> the execution fails, one DLQ item.
        WorkflowDefinition::new("fails", "fails")
            .node(NodeDefinition::new("broken", "broken").with_config(retry_policy(2))),
        // broken: continued (continueOnFail, one attempt); after: completed.
        WorkflowDefinition::new("continues", "continues")
            .node(
                NodeDefinition::new("broken", "broken")
                    .with_config(json!({ "continueOnFail": true })),
            )
            .node(NodeDefinition::new("after", "ok"))
            .edge("broken", "after"),
    ]
}

/// Forwards the ids of executions that ended (their terminal workflow event).
struct Ends(tokio::sync::mpsc::UnboundedSender<ExecutionId>);

impl EventSink for Ends {
    fn emit(&self, events: Vec<EngineEvent>) {
        for e in events {
            if let EngineEvent::Workflow(w) = e
                && matches!(
                    w.status,
                    WorkflowEventStatus::Completed
                        | WorkflowEventStatus::Failed
                        | WorkflowEventStatus::Cancelled
                )
            {
                let _ = self.0.send(w.execution_id);
            }
        }
    }

    fn wants_node_events(&self) -> bool {
        false
    }
}

/// Waits for the end event of `id`, then reads its status.
async fn wait_until_done(
    queue: &MemoryQueue,
    ends: &mut tokio::sync::mpsc::UnboundedReceiver<ExecutionId>,
    id: ExecutionId,
) -> ExecutionStatus {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ended = tokio::time::timeout_at(deadline, ends.recv())
            .await
            .unwrap_or_else(|_| panic!("execution {id} did not end before the deadline"))
            .expect("the queue keeps its event sink");
        if ended == id {
            return queue
                .execution(id)
                .await
                .unwrap()
                .expect("execution known")
                .status;
        }
    }
}

/// Every metric of the snapshot: (kind, name, sorted labels) -> value.
fn values(snapshotter: &Snapshotter) -> HashMap<(MetricKind, String, Vec<String>), DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            ((kind, key.name().to_owned(), labels), value)
        })
        .collect()
}

fn counter(
    all: &HashMap<(MetricKind, String, Vec<String>), DebugValue>,
    name: &str,
    labels: &[&str],
) -> u64 {
    let key = (
        MetricKind::Counter,
        name.to_owned(),
        labels.iter().map(|l| (*l).to_owned()).collect(),
    );
    match all.get(&key) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} {labels:?} is not a counter: {other:?}"),
    }
}

fn series<'a>(
    all: &'a HashMap<(MetricKind, String, Vec<String>), DebugValue>,
    kind: MetricKind,
    name: &str,
) -> Vec<(&'a Vec<String>, &'a DebugValue)> {
    let mut out: Vec<_> = all
        .iter()
        .filter(|((k, n, _), _)| *k == kind && n == name)
        .map(|((_, _, labels), v)| (labels, v))
        .collect();
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

#[tokio::test]
async fn worker_records_finished_executions_node_outcomes_retries_durations_and_dlq_size() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let registry = Arc::new(registry());
    let (ends_tx, mut ends) = tokio::sync::mpsc::unbounded_channel();
    let queue = Arc::new(MemoryQueue::new(Arc::new(Ends(ends_tx))));
    let dyn_queue: Arc<dyn ExecutionQueue> = queue.clone();
    let store = Arc::new(MemoryStore::new());
    let definitions = Arc::new(Definitions::new(
        registry.clone(),
        store.clone(),
        dyn_queue.clone(),
    ));
    let mut compiled = Vec::new();
    for wf in workflows() {
        let c = Arc::new(wf.compile(registry.as_ref()).expect("valid workflow"));
        definitions.insert(1, c.clone());
        compiled.push(c);
    }
    let processor = Arc::new(NodeProcessor::new(
        dyn_queue.clone(),
        store.clone(),
        definitions,
    ));
    let config = WorkerConfig::default()
        .concurrency(4)
        .claim_wait(Duration::from_millis(50));
    let manager = WorkerManager::start(dyn_queue.clone(), processor.clone(), config.clone());

    // One execution of each workflow, one after the other.
    let mut statuses = Vec::new();
    for workflow in compiled {
        let id = ExecutionId::new();
        queue
            .start_execution(StartExecution::new(id, workflow, 1, json!({})))
            .await
            .unwrap();
        statuses.push(wait_until_done(&queue, &mut ends, id).await);
    }
    assert_eq!(
        statuses,
        [
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Completed
        ]
    );
    manager.shutdown(Duration::from_secs(5)).await;

    let all = values(&snapshotter);
    let finished = names::EXECUTIONS_FINISHED;
    assert_eq!(counter(&all, finished, &["status=completed"]), 2);
    assert_eq!(counter(&all, finished, &["status=failed"]), 1);
    assert_eq!(series(&all, MetricKind::Counter, finished).len(), 2);

    let nodes = names::NODE_EXECUTIONS;
    let expected: &[(&str, &str, u64)] = &[
        ("broken", "continued", 1),
        ("broken", "failed", 1),
        ("broken", "retry", 1),
        ("delay", "completed", 1),
        ("delay", "delayed", 1),
        ("flaky", "completed", 1),
        ("flaky", "retry", 1),
        ("ok", "completed", 2),
    ];
    for (node_type, outcome, n) in expected {
        let labels = [
            format!("node_type={node_type}"),
            format!("outcome={outcome}"),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert_eq!(counter(&all, nodes, &labels), *n, "{node_type} {outcome}");
    }
    assert_eq!(
        series(&all, MetricKind::Counter, nodes).len(),
        expected.len(),
        "no other node outcome: {:?}",
        series(&all, MetricKind::Counter, nodes)
    );

    let retries = names::NODE_RETRIES;
    assert_eq!(counter(&all, retries, &["node_type=flaky"]), 1);
    assert_eq!(counter(&all, retries, &["node_type=broken"]), 1);
    assert_eq!(series(&all, MetricKind::Counter, retries).len(), 2);

    // One duration per executor call; delay nodes call no executor.
    let durations: Vec<(String, usize)> = series(&all, MetricKind::Histogram, names::NODE_DURATION)
        .into_iter()
        .map(|(labels, v)| match v {
            DebugValue::Histogram(samples) => {
                assert!(samples.iter().all(|s| s.0 >= 0.0 && s.0 < 10.0));
                (labels.join(","), samples.len())
            }
            other => panic!("not a histogram: {other:?}"),
        })
        .collect();
    assert_eq!(
        durations,
        [
            ("node_type=broken".to_owned(), 3),
            ("node_type=flaky".to_owned(), 2),
            ("node_type=ok".to_owned(), 2),
        ]
    );

    // One queue wait per claimed attempt: every executor call, plus the delay node's two
    // claims (start of the wait, and pass-through once it elapsed).
    let waits: Vec<(String, usize)> = series(&all, MetricKind::Histogram, names::QUEUE_WAIT)
        .into_iter()
        .map(|(labels, v)| match v {
            DebugValue::Histogram(samples) => {
                assert!(samples.iter().all(|s| s.0 >= 0.0 && s.0 < 10.0));
                (labels.join(","), samples.len())
            }
            other => panic!("not a histogram: {other:?}"),
        })
        .collect();
    assert_eq!(
        waits,
        [
            ("node_type=broken".to_owned(), 3),
            ("node_type=delay".to_owned(), 2),
            ("node_type=flaky".to_owned(), 2),
            ("node_type=ok".to_owned(), 2),
        ]
    );

    // The engine counts started executions; this test starts them on the queue directly.
    assert_eq!(counter(&all, names::EXECUTIONS_STARTED, &[]), 0);

    // A manager reads the dead-letter queue size when it starts, then every DLQ_REFRESH.
    let manager = WorkerManager::start(dyn_queue, processor, config);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let all = values(&snapshotter);
        let dlq = all.get(&(MetricKind::Gauge, names::DLQ_SIZE.to_owned(), Vec::new()));
        if let Some(DebugValue::Gauge(v)) = dlq
            && v.0 == 1.0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dlq size gauge is {dlq:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    manager.shutdown(Duration::from_secs(5)).await;
}
