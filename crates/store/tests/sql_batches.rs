//! `save_executions` on [`SqlStore`]: a batch lands whole and exact, a replayed batch changes
//! nothing, and a batch refused while the database is unreachable lands once it answers again.
//! PostgreSQL tests get a schema of their own (`spane_test_<ulid>`, dropped afterwards, also when
//! the test fails); the same scenarios run on SQLite.
//!
//! The server comes from `SPANE_DATABASE_URL` or `DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use spane_core::{ExecutionId, ExecutionRecord, ExecutionStatus, NodeResult, NodeStatus};
use spane_store::{HistoryStore, SqlStore, SqlStoreOptions, StoreError};
use spane_testkit::postgres::{database_url, with_schema};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

async fn postgres(url: &str, schema: &str) -> Arc<dyn HistoryStore> {
    Arc::new(
        SqlStore::connect(
            url,
            SqlStoreOptions::default()
                .schema(schema.to_owned())
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(2)),
        )
        .await
        .expect("connect to PostgreSQL"),
    )
}

async fn sqlite() -> Arc<dyn HistoryStore> {
    Arc::new(
        SqlStore::connect("sqlite::memory:", SqlStoreOptions::default())
            .await
            .expect("connect to sqlite::memory:"),
    )
}

const STATUSES: [ExecutionStatus; 5] = [
    ExecutionStatus::Running,
    ExecutionStatus::Paused,
    ExecutionStatus::Completed,
    ExecutionStatus::Failed,
    ExecutionStatus::Cancelled,
];

/// Values that a careless writer turns into NULL or loses.
fn tricky(i: usize) -> Option<Value> {
    match i % 10 {
        0 => None,
        1 => Some(json!(0)),
        2 => Some(json!(false)),
        3 => Some(json!("")),
        4 => Some(Value::Null),
        5 => Some(json!({"z": 1, "a": [0, false, "", null], "m": {"": 0.1}})),
        6 => Some(json!([])),
        7 => Some(json!({})),
        8 => Some(json!({"quotes": "\"'\\ \u{1}\t\u{e9}\u{1F600}", "k\"\\": "{}"})),
        _ => Some(json!(i64::MIN)),
    }
}

/// `n` executions of `nodes` node results each, with every kind of value.
fn batch(n: usize, nodes: usize, parent: Option<ExecutionId>) -> Vec<ExecutionRecord> {
    (0..n)
        .map(|i| {
            let node_results: BTreeMap<String, NodeResult> = (0..nodes)
                .map(|j| {
                    let node_id = format!("node-{j:02}");
                    let result = {
                        let mut built = NodeResult::new(
                            node_id.clone(),
                            [
                                NodeStatus::Completed,
                                NodeStatus::Failed,
                                NodeStatus::Skipped,
                                NodeStatus::Running,
                            ][(i + j) % 4],
                        );
                        built.data = tricky(i + j);
                        built.error =
                            [None, Some(String::new()), Some("boom".to_owned())][j % 3].clone();
                        built.attempts = u32::try_from(j % 3).unwrap();
                        built.claims = u32::try_from(j % 5).unwrap();
                        built.continued = j % 2 == 1;
                        built.started_at = [None, Some(0), Some(1_700_000_000_000)][j % 3];
                        built.finished_at = [Some(0), None, Some(1_700_000_000_123)][(i + j) % 3];
                        built
                    };
                    (node_id, result)
                })
                .collect();
            {
                let mut built = ExecutionRecord::new(
                    ExecutionId::new(),
                    if i % 2 == 0 { "batch-a" } else { "batch-b" }.to_owned(),
                    u32::try_from(i % 3).unwrap(),
                    STATUSES[i % STATUSES.len()],
                    tricky(i).unwrap_or(json!({"n": 0, "flag": false, "s": ""})),
                    i64::try_from(i).unwrap(),
                );
                built.parent_execution_id = parent;
                built.depth = u32::from(parent.is_some());
                built.error = [
                    None,
                    Some(String::new()),
                    Some("failed: \"x\" \\ \u{e9}".to_owned()),
                ][i % 3]
                    .clone();
                built.finished_at = [None, Some(0), Some(42)][i % 3];
                built.node_results = node_results;
                built
            }
        })
        .collect()
}

async fn assert_stored(store: &dyn HistoryStore, expected: &[ExecutionRecord]) {
    for record in expected {
        let stored = store
            .get_execution(record.execution_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("execution {} missing", record.execution_id));
        assert_eq!(&stored, record, "execution {}", record.execution_id);
    }
    let mut counts: HashMap<ExecutionStatus, u64> = HashMap::new();
    for record in expected {
        *counts.entry(record.status).or_default() += 1;
    }
    assert_eq!(store.count_by_status(None).await.unwrap(), counts);
}

/// 600 executions of 12 nodes: more rows than one SQLite statement takes.
async fn a_batch_lands_complete_and_identical(store: Arc<dyn HistoryStore>) {
    let parent = batch(1, 0, None);
    store.save_executions(&parent).await.unwrap();
    let records = batch(600, 12, Some(parent[0].execution_id));
    store.save_executions(&records).await.unwrap();
    assert_stored(store.as_ref(), &[parent.clone(), records.clone()].concat()).await;
    let children = store
        .child_executions(parent[0].execution_id)
        .await
        .unwrap();
    assert_eq!(children.len(), records.len());
    store.save_executions(&[]).await.unwrap();
}

async fn a_replayed_batch_changes_nothing(store: Arc<dyn HistoryStore>) {
    let records = batch(50, 5, None);
    store.save_executions(&records).await.unwrap();
    for _ in 0..2 {
        store.save_executions(&records).await.unwrap();
    }
    assert_stored(store.as_ref(), &records).await;
    for record in &records {
        let nodes: u64 = store
            .count_nodes_by_status(record.execution_id)
            .await
            .unwrap()
            .values()
            .sum();
        assert_eq!(nodes, 5, "one row per node after replays");
    }

    // A later batch (the execution went on) replaces what changed; node results it does not
    // carry and the creation time stay; a record that appears twice counts as its last.
    let mut later = records.clone();
    let mut expected = records.clone();
    for (record, kept) in later.iter_mut().zip(expected.iter_mut()) {
        record.status = ExecutionStatus::Completed;
        record.error = None;
        record.finished_at = Some(7);
        record.created_at += 1_000;
        record.node_results.remove("node-00");
        let node = record.node_results.get_mut("node-01").unwrap();
        node.data = Some(json!(0));
        node.status = NodeStatus::Completed;
        kept.status = ExecutionStatus::Completed;
        kept.error = None;
        kept.finished_at = Some(7);
        kept.node_results.insert("node-01".to_owned(), node.clone());
    }
    let mut first = later[0].clone();
    first.status = ExecutionStatus::Failed;
    let with_repeat = [vec![first], later.clone()].concat();
    store.save_executions(&with_repeat).await.unwrap();
    store.save_executions(&with_repeat).await.unwrap();
    assert_stored(store.as_ref(), &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_lands_complete_and_identical() {
    with_schema(|schema| async move {
        a_batch_lands_complete_and_identical(postgres(&database_url(), &schema).await).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_replayed_batch_changes_nothing() {
    with_schema(|schema| async move {
        a_replayed_batch_changes_nothing(postgres(&database_url(), &schema).await).await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_batch_lands_complete_and_identical() {
    a_batch_lands_complete_and_identical(sqlite().await).await;
}

#[tokio::test]
async fn sqlite_a_replayed_batch_changes_nothing() {
    a_replayed_batch_changes_nothing(sqlite().await).await;
}

/// A TCP proxy to PostgreSQL that can be cut (the port refuses connections, open ones are
/// dropped) and restored on the same port.
struct Proxy {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Self {
            port,
            task: Some(tokio::spawn(forward(listener))),
        }
    }

    fn url(&self) -> String {
        let target = database_url();
        let rest = target.split_once("://").map_or(target.as_str(), |(_, r)| r);
        let (user, at) = rest.split_once('@').unwrap_or(("", rest));
        let db = at.split_once('/').map_or("", |(_, d)| d);
        let user = if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        };
        format!("postgres://{user}127.0.0.1:{}/{db}", self.port)
    }

    /// Stops listening and drops the open connections.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.task = Some(tokio::spawn(forward(listener)));
    }
}

fn upstream() -> String {
    let target = database_url();
    let rest = target.split_once("://").map_or(target.as_str(), |(_, r)| r);
    let at = rest.split_once('@').map_or(rest, |(_, a)| a);
    at.split_once('/').map_or(at, |(h, _)| h).to_owned()
}

/// Accepts and forwards until aborted; aborting drops every forwarded connection with it.
async fn forward(listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream()).await else {
                let _ = client.shutdown().await;
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

/// While the database is unreachable a batch is refused as `Unavailable` (retryable) and
/// nothing of it is half-written; once it answers again the same batch lands whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_refused_during_an_outage_lands_once_it_answers() {
    with_schema(|schema| async move {
        let mut proxy = Proxy::start().await;
        let store = postgres(&proxy.url(), &schema).await;
        let before = batch(20, 4, None);
        store.save_executions(&before).await.unwrap();

        proxy.cut().await;
        let during = batch(200, 6, None);
        let err = store.save_executions(&during).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable { .. }),
            "refused connections are retryable: {err:?}"
        );

        proxy.restore().await;
        // The pool reconnects; the writer's retry is the same call again.
        let mut attempts = 0;
        loop {
            match store.save_executions(&during).await {
                Ok(()) => break,
                Err(StoreError::Unavailable { .. }) if attempts < 100 => {
                    attempts += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_stored(store.as_ref(), &[before, during].concat()).await;
    })
    .await;
}
