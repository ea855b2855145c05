//! A stale commit is counted (`outcome="stale"`) and logged with the job it belongs to, so
//! that the metric can be tied to an execution, a node and an attempt.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use spane_core::{ExecutionId, NoEvents, NodeDefinition, NodeOutput, NodeRegistry};
use spane_core::{WorkflowDefinition, executor_fn};
use spane_queue::backend::{CommitOutcome, NodeCommit, StartExecution, WorkerId};
use spane_queue::{ExecutionQueue, MemoryQueue};
use spane_store::MemoryStore;
use spane_worker::{Definitions, NodeProcessor, metrics as names};
use tokio_util::sync::CancellationToken;

/// Log lines written by the test's subscriber.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_stale_commit_is_counted_and_logged_with_its_job() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let mut registry = NodeRegistry::new();
    registry.register(
        "ok",
        executor_fn(|_ctx| async move { Ok(NodeOutput::new(json!("ok"))) }),
    );
    let registry = Arc::new(registry);
    let queue: Arc<dyn ExecutionQueue> = Arc::new(MemoryQueue::new(Arc::new(NoEvents)));
    let store = Arc::new(MemoryStore::new());
    let definitions = Arc::new(Definitions::new(
        registry.clone(),
        store.clone(),
        queue.clone(),
    ));
    let dag = Arc::new(
        WorkflowDefinition::new("one", "One")
            .node(NodeDefinition::new("only", "ok"))
            .compile(registry.as_ref())
            .unwrap(),
    );
    definitions.insert(1, dag.clone());
    let processor = NodeProcessor::new(queue.clone(), store, definitions);

    let id = ExecutionId::new();
    queue
        .start_execution(StartExecution::new(id, dag, 1, json!({})))
        .await
        .unwrap();
    let worker = WorkerId::new();
    let job = queue
        .claim(&worker, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .pop()
        .expect("the root is ready");
    // Another run's result is committed first (as after a lost lease or a lost reply) ...
    let first = NodeCommit::Completed {
        data: json!("first"),
        next_nodes: None,
    };
    let applied = queue.commit(&job, first).await.unwrap();
    assert!(matches!(applied, CommitOutcome::Applied { .. }));
    // ... so the worker's commit of the same claim is refused.
    processor
        .process_and_claim(&worker, job.clone(), CancellationToken::new(), 0)
        .await;

    let stale = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == names::NODE_EXECUTIONS
                && key.key().labels().any(|l| l.value() == "stale")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            other => panic!("a counter, not {other:?}"),
        })
        .sum::<u64>();
    assert_eq!(stale, 1, "one stale commit counted");

    let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("stale commit refused"))
        .unwrap_or_else(|| panic!("no stale commit line in:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&format!("execution_id={id}")), "{line}");
    assert!(line.contains("node_id=only"), "{line}");
    assert!(line.contains("attempt=1"), "{line}");
}
