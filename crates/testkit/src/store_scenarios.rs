//! The conformance suite of the store traits ([`WorkflowStore`], [`ExecutionStore`],
//! [`WorkflowCatalog`], [`ExecutionHistory`]): the behaviour every store must show, written
//! once and run against each implementation (memory, SQLite, PostgreSQL).
//!
//! A store provides a [`StoreFactory`] that builds a fresh, isolated store per test and
//! removes it afterwards, and instantiates the suite with
//! [`store_conformance_tests!`](crate::store_conformance_tests) in its `tests/` directory:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use spane_store::{HistoryStore, MemoryStore};
//! use spane_testkit::{async_trait, store_scenarios::StoreFactory};
//!
//! struct Memory;
//!
//! #[async_trait]
//! impl StoreFactory for Memory {
//!     async fn store(&self) -> Arc<dyn HistoryStore> {
//!         Arc::new(MemoryStore::new())
//!     }
//! }
//!
//! spane_testkit::store_conformance_tests!(Memory);
//! # fn main() {}
//! ```
//!
//! Each scenario is a plain `async fn` taking the store, run by [`run`], which calls
//! [`StoreFactory::cleanup`] whether the scenario passed or panicked. Concurrency in the
//! scenarios is real (tasks on a multi-threaded runtime), and nothing waits on a sleep.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use serde_json::{Value, json};
use spane_core::{
    ExecutionId, ExecutionRecord, ExecutionStatus, NodeDefinition, NodeResult, NodeStatus,
    WorkflowDefinition,
};
use spane_store::{ExecutionQuery, HistoryStore, Store, StoreError};

/// Builds a fresh, isolated store for one test (on PostgreSQL: its own schema; on SQLite: its
/// own file), so that tests running in parallel never see each other's rows.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// A new, empty store.
    async fn store(&self) -> Arc<dyn HistoryStore>;

    /// Removes what [`store`](Self::store) created (a schema, a file). Called once the
    /// scenario has ended, also when it failed.
    async fn cleanup(&self) {}
}

#[async_trait]
impl<F: StoreFactory + ?Sized> StoreFactory for Arc<F> {
    async fn store(&self) -> Arc<dyn HistoryStore> {
        (**self).store().await
    }

    async fn cleanup(&self) {
        (**self).cleanup().await;
    }
}

/// Runs `scenario` on a store of `factory`, then cleans up, then fails if the scenario did.
pub async fn run<F, S, Fut>(factory: &F, scenario: S)
where
    F: StoreFactory + ?Sized,
    S: FnOnce(Arc<dyn HistoryStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = factory.store().await;
    // On a task of its own, so that a panic (a failed assertion) comes back as a value and
    // the cleanup still runs.
    let outcome = tokio::spawn(scenario(store)).await;
    factory.cleanup().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("scenario did not finish: {error}"),
        }
    }
}

/// Expands into one `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per scenario
/// of [`store_scenarios`](crate::store_scenarios), each building its store with the given
/// [`StoreFactory`](crate::store_scenarios::StoreFactory) expression (evaluated inside each
/// async test, so it may `.await`). The calling crate needs `tokio` with the `macros` feature;
/// invoke the macro inside a module of its own when several stores share one test file.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::store_conformance_tests!(@tests ($factory)
            json_values_round_trip_exactly,
            node_result_needs_its_execution,
            saves_are_idempotent_upserts,
            concurrent_writers_leave_one_row,
            unchanged_definition_keeps_its_version,
            concurrent_saves_create_no_duplicate_versions,
            workflows_page_and_deactivate,
            filters_by_workflow_status_and_time,
            pagination_sees_each_execution_once_during_writes,
            child_executions_of_a_parent,
            counts_by_status,
            invalid_queries_are_refused,
        );
    };
    (@tests ($factory:expr) $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let factory = $factory;
                $crate::store_scenarios::run(&factory, $crate::store_scenarios::$name).await;
            }
        )*
    };
}

const T0: i64 = 1_700_000_000_000;

fn record(workflow: &str, status: ExecutionStatus, created_at: i64) -> ExecutionRecord {
    ExecutionRecord::new(
        ExecutionId::new(),
        workflow.to_owned(),
        1,
        status,
        json!({}),
        created_at,
    )
}

fn result(node: &str, status: NodeStatus, data: Option<Value>, attempts: u32) -> NodeResult {
    {
        let mut built = NodeResult::new(node.to_owned(), status);
        built.data = data;
        built.attempts = attempts;
        // Not the attempts: a store that mixes the two columns up is caught.
        built.claims = attempts + 1;
        built.started_at = Some(T0 + 1);
        built.finished_at = Some(T0 + 2);
        built
    }
}

fn definition(id: &str, nodes: &[&str]) -> WorkflowDefinition {
    nodes
        .iter()
        .fold(WorkflowDefinition::new(id, id.to_uppercase()), |wf, n| {
            wf.node(NodeDefinition::new(*n, "echo"))
        })
}

/// Every page of `query`, following the cursors; panics on a page over its limit.
async fn all_pages(store: &dyn HistoryStore, mut query: ExecutionQuery) -> Vec<ExecutionRecord> {
    let limit = query.effective_limit();
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = store.list_executions_page(&query).await.expect("page");
        assert!(page.items.len() <= limit, "a page holds at most its limit");
        out.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return out,
        }
    }
    panic!("pagination did not end after 10,000 pages");
}

fn ids(records: &[ExecutionRecord]) -> Vec<ExecutionId> {
    records.iter().map(|r| r.execution_id).collect()
}

fn assert_newest_first(records: &[ExecutionRecord]) {
    for pair in records.windows(2) {
        let key = |r: &ExecutionRecord| (r.created_at, r.execution_id);
        assert!(
            key(&pair[0]) > key(&pair[1]),
            "executions come newest first (created_at, then id): {:?} before {:?}",
            key(&pair[0]),
            key(&pair[1])
        );
    }
}

/// The values the original stored as NULL (`0`, `false`, `""`), `null` itself, and values
/// whose exact text matters.
fn tricky_values() -> Vec<Value> {
    let large: Vec<Value> = (0..20_000)
        .map(|i| match i % 4 {
            0 => json!(i),
            1 => json!(format!("item-{i}")),
            2 => json!(i % 3 == 0),
            _ => json!({ "i": i, "nested": [i, null] }),
        })
        .collect();
    vec![
        json!(0),
        json!(false),
        json!(""),
        Value::Null,
        json!(true),
        json!(-0.5),
        json!(1.0e300),
        json!(u64::MAX),
        json!(i64::MIN),
        json!("quotes \" backslash \\ newline \n nul \u{0} emoji \u{1F600} é"),
        json!([]),
        json!({}),
        // Key order is kept (not sorted), nested values stay as they are.
        json!({ "z": 0, "a": false, "m": "", "n": null, "deep": { "b": [0, false, "", null, {}], "a": { "x": [[[]]] } } }),
        Value::Array(large),
    ]
}

/// `0`, `false`, `""`, `null`, nested objects and large arrays round-trip exactly as initial
/// data and as node data; a node without data stays distinct from one whose data is `null`.
pub async fn json_values_round_trip_exactly(store: Arc<dyn HistoryStore>) {
    for (i, value) in tricky_values().into_iter().enumerate() {
        let mut rec = record("wf", ExecutionStatus::Completed, T0 + i as i64);
        rec.initial_data = value.clone();
        rec.error = Some(String::new());
        rec.finished_at = Some(T0 + 99);
        rec.node_results.insert("with".into(), {
            let mut built = result("with", NodeStatus::Failed, Some(value.clone()), 3);
            built.error = Some("boom: \"quoted\"".into());
            built.continued = true;
            built
        });
        rec.node_results.insert(
            "without".into(),
            result("without", NodeStatus::Skipped, None, 0),
        );
        store.save_execution(&rec).await.expect("save_execution");
        let back = store
            .get_execution(rec.execution_id)
            .await
            .expect("get_execution")
            .expect("saved execution is found");
        assert_eq!(back, rec, "value #{i} round-trips through save_execution");
        assert_eq!(
            serde_json::to_string(&back.initial_data).unwrap(),
            serde_json::to_string(&value).unwrap(),
            "value #{i}: same text, key order included"
        );
        assert_eq!(
            back.node_results["without"].data, None,
            "absent stays absent"
        );

        // The same value through save_node_result.
        let single = result("single", NodeStatus::Completed, Some(value.clone()), 1);
        store
            .save_node_result(rec.execution_id, &single)
            .await
            .expect("save_node_result");
        let back = store
            .get_execution(rec.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            back.node_results["single"], single,
            "value #{i} via save_node_result"
        );
        assert_eq!(back.output("single"), Some(&value));
    }
    let listed = store
        .list_executions(&ExecutionQuery::default())
        .await
        .expect("list_executions");
    assert_eq!(listed.len(), tricky_values().len());
    for rec in &listed {
        let direct = store
            .get_execution(rec.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rec, &direct,
            "listing returns the same records as get_execution"
        );
    }
}

/// A node result for an execution the store never saw is refused, and nothing is written.
pub async fn node_result_needs_its_execution(store: Arc<dyn HistoryStore>) {
    let unknown = ExecutionId::new();
    let err = store
        .save_node_result(
            unknown,
            &result("a", NodeStatus::Completed, Some(json!(1)), 1),
        )
        .await
        .expect_err("no execution, no node result");
    assert_eq!(err, StoreError::ExecutionNotFound(unknown));
    assert_eq!(store.get_execution(unknown).await.unwrap(), None);
    assert!(
        store
            .count_nodes_by_status(unknown)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Saving the same record again changes nothing; a newer record replaces the older one but
/// keeps node results written separately and the first creation time.
pub async fn saves_are_idempotent_upserts(store: Arc<dyn HistoryStore>) {
    let mut rec = record("wf", ExecutionStatus::Running, T0);
    rec.node_results.insert(
        "a".into(),
        result("a", NodeStatus::Completed, Some(json!({ "x": 1 })), 1),
    );
    store.save_execution(&rec).await.unwrap();
    store.save_execution(&rec).await.unwrap();
    assert_eq!(
        store.get_execution(rec.execution_id).await.unwrap(),
        Some(rec.clone())
    );

    let b = result("b", NodeStatus::Running, None, 1);
    store.save_node_result(rec.execution_id, &b).await.unwrap();
    let b2 = {
        let mut built = result("b", NodeStatus::Completed, Some(json!(0)), 2);
        built.error = Some("retrying".into());
        built
    };
    store.save_node_result(rec.execution_id, &b2).await.unwrap();
    store.save_node_result(rec.execution_id, &b2).await.unwrap();

    let mut done = rec.clone();
    done.status = ExecutionStatus::Failed;
    done.error = Some("node \"c\" failed: x".into());
    done.finished_at = Some(T0 + 50);
    done.created_at = T0 + 1_000; // ignored: the creation time of the first save stands
    done.node_results.insert(
        "a".into(),
        result("a", NodeStatus::Completed, Some(json!({ "x": 2 })), 2),
    );
    done.node_results
        .insert("c".into(), result("c", NodeStatus::Failed, None, 3));
    store.save_execution(&done).await.unwrap();

    let back = store
        .get_execution(rec.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.status, ExecutionStatus::Failed);
    assert_eq!(back.error, done.error);
    assert_eq!(back.finished_at, Some(T0 + 50));
    assert_eq!(back.created_at, T0, "created_at is the first save's");
    assert_eq!(
        back.node_results.len(),
        3,
        "a, b and c: b was written separately"
    );
    assert_eq!(back.node_results["a"], done.node_results["a"]);
    assert_eq!(back.node_results["b"], b2);
    assert_eq!(back.node_results["c"], done.node_results["c"]);
    let counts = store.count_nodes_by_status(rec.execution_id).await.unwrap();
    assert_eq!(
        counts,
        HashMap::from([(NodeStatus::Completed, 2), (NodeStatus::Failed, 1)])
    );
    assert_eq!(
        store.count_by_status(None).await.unwrap(),
        HashMap::from([(ExecutionStatus::Failed, 1)])
    );
}

/// Concurrent writers of the same node results (through `save_node_result` and
/// `save_execution` at once) leave one result per node, and the counts stay exact.
pub async fn concurrent_writers_leave_one_row(store: Arc<dyn HistoryStore>) {
    const WRITERS: u32 = 4;
    const ROUNDS: u32 = 15;
    let nodes = ["a", "b", "c"];
    let rec = record("wf", ExecutionStatus::Running, T0);
    store.save_execution(&rec).await.unwrap();

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        let mut rec = rec.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let attempts = round + 1;
                if writer % 2 == 0 {
                    for node in nodes {
                        let r = result(node, NodeStatus::Completed, Some(json!(writer)), attempts);
                        store.save_node_result(rec.execution_id, &r).await.unwrap();
                    }
                } else {
                    rec.node_results = nodes
                        .iter()
                        .map(|n| {
                            let r = result(n, NodeStatus::Completed, Some(json!(writer)), attempts);
                            (n.to_string(), r)
                        })
                        .collect();
                    store.save_execution(&rec).await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }

    let back = store
        .get_execution(rec.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        back.node_results
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        nodes.to_vec()
    );
    for r in back.node_results.values() {
        assert_eq!(r.attempts, ROUNDS, "the last round of some writer wins");
        let writer = r.data.as_ref().and_then(Value::as_u64).expect("writer id");
        assert!(writer < u64::from(WRITERS));
    }
    assert_eq!(
        store.count_nodes_by_status(rec.execution_id).await.unwrap(),
        HashMap::from([(NodeStatus::Completed, nodes.len() as u64)]),
        "one row per node, whatever the number of writes"
    );
    assert_eq!(
        store.count_by_status(Some("wf")).await.unwrap(),
        HashMap::from([(ExecutionStatus::Running, 1)])
    );
    let listed = store
        .list_executions(&ExecutionQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "one execution row");
}

/// An unchanged definition keeps its version (key order does not matter), a changed one gets
/// the next, and every version stays readable.
pub async fn unchanged_definition_keeps_its_version(store: Arc<dyn HistoryStore>) {
    let config = |c: Value| {
        WorkflowDefinition::new("orders", "Orders")
            .node(NodeDefinition::new("a", "echo").with_config(c))
    };
    let v1 = config(json!({ "x": 0, "y": { "p": false, "q": "" } }));
    assert_eq!(store.save_workflow(&v1).await.unwrap(), 1);
    assert_eq!(store.save_workflow(&v1).await.unwrap(), 1, "unchanged");
    let reordered = config(json!({ "y": { "q": "", "p": false }, "x": 0 }));
    assert_eq!(
        store.save_workflow(&reordered).await.unwrap(),
        1,
        "same content, other key order"
    );

    let v2 = config(json!({ "x": 1, "y": { "p": false, "q": "" } }));
    assert_eq!(store.save_workflow(&v2).await.unwrap(), 2, "changed");
    assert_eq!(store.save_workflow(&v2).await.unwrap(), 2);
    assert_eq!(
        store.latest_version(&v2.id).await.unwrap(),
        Some(2),
        "the latest version, without the definition"
    );
    assert_eq!(
        store.latest_version("never-registered").await.unwrap(),
        None
    );
    assert_eq!(
        store.save_workflow(&v1).await.unwrap(),
        3,
        "going back is a change too"
    );

    for (version, def) in [(1, &v1), (2, &v2), (3, &v1)] {
        let stored = store
            .get_workflow("orders", Some(version))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("version {version} is readable"));
        assert_eq!(stored.version, version);
        assert_eq!(&stored.definition, def, "version {version} as saved");
    }
    let latest = store.get_workflow("orders", None).await.unwrap().unwrap();
    assert_eq!((latest.version, &latest.definition), (3, &v1));
    assert_eq!(store.get_workflow("orders", Some(4)).await.unwrap(), None);
    assert_eq!(store.get_workflow("missing", None).await.unwrap(), None);

    let other = definition("alpha", &["n"]);
    assert_eq!(
        store.save_workflow(&other).await.unwrap(),
        1,
        "versions are per workflow"
    );
    store
        .save_workflow(&definition("Zeta", &["n"]))
        .await
        .unwrap();
    let listed = store.list_workflows().await.unwrap();
    let listed: Vec<(&str, u32)> = listed
        .iter()
        .map(|w| (w.definition.id.as_str(), w.version))
        .collect();
    assert_eq!(
        listed,
        vec![("Zeta", 1), ("alpha", 1), ("orders", 3)],
        "latest of each, by id in byte order (whatever the database's locale)"
    );
}

/// Concurrent savers never write a version twice: savers of one new definition all get the
/// same version, savers of different definitions get consecutive versions.
pub async fn concurrent_saves_create_no_duplicate_versions(store: Arc<dyn HistoryStore>) {
    const SAVERS: usize = 6;
    let same = definition("race", &["a"]);
    let mut tasks = Vec::new();
    for _ in 0..SAVERS {
        let store = Arc::clone(&store);
        let def = same.clone();
        tasks.push(tokio::spawn(async move {
            store.save_workflow(&def).await.unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            1,
            "every saver of the first definition gets 1"
        );
    }

    let mut tasks = Vec::new();
    for i in 0..SAVERS {
        let store = Arc::clone(&store);
        let def = definition("race", &["a", &format!("n{i}")]);
        tasks.push(tokio::spawn(async move {
            let version = store.save_workflow(&def).await.unwrap();
            (version, def)
        }));
    }
    let mut versions = BTreeSet::new();
    for task in tasks {
        let (version, def) = task.await.unwrap();
        assert!(versions.insert(version), "version {version} given twice");
        let stored = store
            .get_workflow("race", Some(version))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.definition, def,
            "version {version} holds its saver's definition"
        );
    }
    let expected: BTreeSet<u32> = (2..2 + SAVERS as u32).collect();
    assert_eq!(versions, expected, "consecutive versions, none skipped");
    let latest = store.get_workflow("race", None).await.unwrap().unwrap();
    assert_eq!(latest.version, 1 + SAVERS as u32);
    let summary = store.workflow_summary("race").await.unwrap().unwrap();
    assert_eq!(summary.latest_version, 1 + SAVERS as u32);
}

/// Workflows list by page in id order with a total; deactivation is a flag that saving does
/// not reset, and deactivated definitions stay readable.
pub async fn workflows_page_and_deactivate(store: Arc<dyn HistoryStore>) {
    for id in ["delta", "alpha", "echo", "charlie", "bravo"] {
        store.save_workflow(&definition(id, &["a"])).await.unwrap();
    }
    store
        .save_workflow(&definition("charlie", &["a", "b"]))
        .await
        .unwrap();

    let mut seen = Vec::new();
    for offset in (0..6).step_by(2) {
        let page = store.list_workflows_page(offset, 2).await.unwrap();
        assert_eq!(page.total, 5);
        assert!(page.items.len() <= 2);
        seen.extend(page.items);
    }
    let names: Vec<&str> = seen.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(names, ["alpha", "bravo", "charlie", "delta", "echo"]);
    let charlie = &seen[2];
    assert_eq!(
        (
            charlie.latest_version,
            charlie.name.as_str(),
            charlie.active
        ),
        (2, "CHARLIE", true)
    );
    assert!(charlie.created_at <= charlie.updated_at);
    assert!(
        store
            .list_workflows_page(5, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let everything = store.list_workflows_page(0, u64::MAX).await.unwrap();
    assert_eq!(everything.items.len(), 5);
    let beyond = store.list_workflows_page(u64::MAX, u64::MAX).await.unwrap();
    assert!(beyond.items.is_empty());

    assert!(store.deactivate_workflow("charlie").await.unwrap());
    assert!(
        store.deactivate_workflow("charlie").await.unwrap(),
        "idempotent"
    );
    assert!(
        !store.deactivate_workflow("zulu").await.unwrap(),
        "unknown workflow"
    );
    assert!(
        !store
            .workflow_summary("charlie")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert_eq!(store.workflow_summary("zulu").await.unwrap(), None);
    let page = store.list_workflows_page(0, 10).await.unwrap();
    let active: Vec<bool> = page.items.iter().map(|w| w.active).collect();
    assert_eq!(active, [true, true, false, true, true]);

    assert_eq!(
        store
            .save_workflow(&definition("charlie", &["a", "b"]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .save_workflow(&definition("charlie", &["a", "b", "c"]))
            .await
            .unwrap(),
        3
    );
    let summary = store.workflow_summary("charlie").await.unwrap().unwrap();
    assert!(!summary.active, "saving does not reactivate");
    assert_eq!(summary.latest_version, 3);
    assert!(
        store
            .get_workflow("charlie", Some(1))
            .await
            .unwrap()
            .is_some()
    );

    assert!(store.activate_workflow("charlie").await.unwrap());
    assert!(
        store
            .workflow_summary("charlie")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert!(!store.activate_workflow("zulu").await.unwrap());
}

/// Filters by workflow, status, parent and a half-open time range, in `list_executions` and
/// `list_executions_page` alike.
pub async fn filters_by_workflow_status_and_time(store: Arc<dyn HistoryStore>) {
    let mut all = Vec::new();
    for i in 0..24i64 {
        let workflow = if i % 2 == 0 { "even" } else { "odd" };
        let status = match i % 3 {
            0 => ExecutionStatus::Completed,
            1 => ExecutionStatus::Failed,
            _ => ExecutionStatus::Running,
        };
        let rec = record(workflow, status, T0 + i * 10);
        store.save_execution(&rec).await.unwrap();
        all.push(rec);
    }
    let expect = |f: &dyn Fn(&ExecutionRecord) -> bool| {
        let mut v: Vec<ExecutionId> = all
            .iter()
            .filter(|r| f(r))
            .map(|r| r.execution_id)
            .collect();
        v.reverse();
        v
    };
    let cases: Vec<(ExecutionQuery, Vec<ExecutionId>)> = vec![
        (ExecutionQuery::default(), expect(&|_| true)),
        (
            ExecutionQuery {
                workflow_id: Some("even".into()),
                ..Default::default()
            },
            expect(&|r| r.workflow_id == "even"),
        ),
        (
            ExecutionQuery {
                status: Some(ExecutionStatus::Failed),
                ..Default::default()
            },
            expect(&|r| r.status == ExecutionStatus::Failed),
        ),
        (
            ExecutionQuery {
                workflow_id: Some("odd".into()),
                status: Some(ExecutionStatus::Completed),
                ..Default::default()
            },
            expect(&|r| r.workflow_id == "odd" && r.status == ExecutionStatus::Completed),
        ),
        (
            // Half-open: T0 + 50 is in, T0 + 120 is out.
            ExecutionQuery {
                created_after: Some(T0 + 50),
                created_before: Some(T0 + 120),
                ..Default::default()
            },
            expect(&|r| r.created_at >= T0 + 50 && r.created_at < T0 + 120),
        ),
        (
            ExecutionQuery {
                workflow_id: Some("even".into()),
                created_after: Some(T0 + 100),
                ..Default::default()
            },
            expect(&|r| r.workflow_id == "even" && r.created_at >= T0 + 100),
        ),
        (
            ExecutionQuery {
                workflow_id: Some("none".into()),
                ..Default::default()
            },
            Vec::new(),
        ),
        (
            ExecutionQuery {
                parent_execution_id: Some(all[0].execution_id),
                ..Default::default()
            },
            Vec::new(),
        ),
    ];
    for (query, expected) in cases {
        let listed = store.list_executions(&query).await.unwrap();
        assert_eq!(ids(&listed), expected, "list_executions {query:?}");
        let paged = all_pages(
            &*store,
            ExecutionQuery {
                limit: Some(4),
                ..query.clone()
            },
        )
        .await;
        assert_eq!(ids(&paged), expected, "pages of {query:?}");
    }
    let limited = store
        .list_executions(&ExecutionQuery {
            limit: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&limited),
        expect(&|_| true)[..5].to_vec(),
        "limit keeps the newest"
    );
    let page = store
        .list_executions_page(&ExecutionQuery {
            limit: Some(24),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 24);
    assert_eq!(
        page.next_cursor, None,
        "an exactly full last page has no cursor"
    );
    let unbounded = ExecutionQuery {
        limit: Some(usize::MAX),
        ..Default::default()
    };
    assert_eq!(store.list_executions(&unbounded).await.unwrap().len(), 24);
    let page = store.list_executions_page(&unbounded).await.unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (24, None));
}

/// Paging through every execution while other tasks add executions and change statuses
/// returns each execution that existed at the start exactly once, in order, and nothing twice.
pub async fn pagination_sees_each_execution_once_during_writes(store: Arc<dyn HistoryStore>) {
    let mut existing = Vec::new();
    for i in 0..90i64 {
        // Groups of three share a creation time, so ties are broken by id.
        let rec = record("wf", ExecutionStatus::Running, T0 + i / 3);
        store.save_execution(&rec).await.unwrap();
        existing.push(rec);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU32::new(0));
    let pages = Arc::new(AtomicU32::new(0));
    let writer = {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        let progress = Arc::clone(&progress);
        let pages = Arc::clone(&pages);
        let existing = existing.clone();
        tokio::spawn(async move {
            let mut written = 0u32;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // A few writes per page read, not a flood.
                if written >= 3 * (pages.load(Ordering::Acquire) + 1) {
                    tokio::task::yield_now().await;
                    continue;
                }
                // New executions are newer than every existing one...
                let rec = record("wf", ExecutionStatus::Running, spane_core::now_millis());
                store.save_execution(&rec).await.unwrap();
                // ...and existing ones change status (their creation time does not move).
                let mut old = existing[i % existing.len()].clone();
                old.status = ExecutionStatus::Completed;
                store.save_execution(&old).await.unwrap();
                written += 1;
                progress.store(written, Ordering::Release);
                i += 7;
                tokio::task::yield_now().await;
            }
            written
        })
    };

    let mut seen = Vec::new();
    let mut query = ExecutionQuery {
        limit: Some(7),
        ..Default::default()
    };
    loop {
        let page = store.list_executions_page(&query).await.unwrap();
        assert!(page.items.len() <= 7);
        seen.extend(page.items);
        pages.fetch_add(1, Ordering::Release);
        // At least one write lands between two pages.
        let before = progress.load(Ordering::Acquire);
        while progress.load(Ordering::Acquire) == before {
            assert!(!writer.is_finished(), "the writer stopped early");
            tokio::task::yield_now().await;
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(
        written >= 13,
        "90 executions in pages of 7: a write between every two pages"
    );

    assert_newest_first(&seen);
    let mut unique = BTreeSet::new();
    for id in ids(&seen) {
        assert!(unique.insert(id), "execution {id} returned twice");
    }
    for rec in &existing {
        assert!(
            unique.contains(&rec.execution_id),
            "execution {} was skipped",
            rec.execution_id
        );
    }
    let total: u64 = store.count_by_status(None).await.unwrap().values().sum();
    assert_eq!(total, existing.len() as u64 + u64::from(written));
}

/// The children of an execution, oldest first with their node results; grandchildren are not
/// children.
pub async fn child_executions_of_a_parent(store: Arc<dyn HistoryStore>) {
    let parent = record("parent", ExecutionStatus::Running, T0);
    store.save_execution(&parent).await.unwrap();
    let mut children = Vec::new();
    for i in 0..3i64 {
        let mut child = record("child", ExecutionStatus::Completed, T0 + 10 - i);
        child.parent_execution_id = Some(parent.execution_id);
        child.depth = 1;
        child.node_results.insert(
            "x".into(),
            result("x", NodeStatus::Completed, Some(json!(i)), 1),
        );
        store.save_execution(&child).await.unwrap();
        children.push(child);
    }
    let mut grandchild = record("child", ExecutionStatus::Running, T0 + 20);
    grandchild.parent_execution_id = Some(children[0].execution_id);
    grandchild.depth = 2;
    store.save_execution(&grandchild).await.unwrap();
    store
        .save_execution(&record("other", ExecutionStatus::Running, T0 + 5))
        .await
        .unwrap();

    let found = store.child_executions(parent.execution_id).await.unwrap();
    children.sort_by_key(|c| (c.created_at, c.execution_id));
    assert_eq!(
        found, children,
        "the three children, oldest first, node results included"
    );
    let below = store
        .child_executions(children[2].execution_id)
        .await
        .unwrap();
    assert_eq!(ids(&below), [grandchild.execution_id]);
    assert!(
        store
            .child_executions(grandchild.execution_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .child_executions(ExecutionId::new())
            .await
            .unwrap()
            .is_empty()
    );

    let query = ExecutionQuery {
        parent_execution_id: Some(parent.execution_id),
        ..Default::default()
    };
    let listed = store.list_executions(&query).await.unwrap();
    let mut newest_first = children.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
}

/// Counts by status, of one workflow or all; statuses without executions are absent; counts
/// follow status changes.
pub async fn counts_by_status(store: Arc<dyn HistoryStore>) {
    assert!(store.count_by_status(None).await.unwrap().is_empty());
    let plan = [
        ("a", ExecutionStatus::Completed, 5),
        ("a", ExecutionStatus::Failed, 2),
        ("a", ExecutionStatus::Running, 1),
        ("b", ExecutionStatus::Completed, 3),
        ("b", ExecutionStatus::Cancelled, 1),
    ];
    let mut running = None;
    for (i, (workflow, status, n)) in plan.into_iter().enumerate() {
        for j in 0..n {
            let rec = record(workflow, status, T0 + (i * 10 + j) as i64);
            store.save_execution(&rec).await.unwrap();
            if status == ExecutionStatus::Running {
                running = Some(rec);
            }
        }
    }
    use ExecutionStatus::{Cancelled, Completed, Failed, Running};
    assert_eq!(
        store.count_by_status(Some("a")).await.unwrap(),
        HashMap::from([(Completed, 5), (Failed, 2), (Running, 1)])
    );
    assert_eq!(
        store.count_by_status(Some("b")).await.unwrap(),
        HashMap::from([(Completed, 3), (Cancelled, 1)])
    );
    assert_eq!(
        store.count_by_status(None).await.unwrap(),
        HashMap::from([(Completed, 8), (Failed, 2), (Running, 1), (Cancelled, 1)])
    );
    assert!(store.count_by_status(Some("c")).await.unwrap().is_empty());

    let mut finished = running.expect("one running execution");
    finished.status = Completed;
    store.save_execution(&finished).await.unwrap();
    store.save_execution(&finished).await.unwrap();
    assert_eq!(
        store.count_by_status(Some("a")).await.unwrap(),
        HashMap::from([(Completed, 6), (Failed, 2)])
    );
}

/// A cursor the store did not hand out and a page of size 0 are refused with
/// [`StoreError::Invalid`]; the capabilities are reachable through `dyn Store`.
pub async fn invalid_queries_are_refused(store: Arc<dyn HistoryStore>) {
    for cursor in ["", "garbage", "12.not-an-id"] {
        let query = ExecutionQuery {
            cursor: Some(cursor.into()),
            ..Default::default()
        };
        let err = store.list_executions_page(&query).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { .. }),
            "{cursor:?}: {err:?}"
        );
        let err = store.list_executions(&query).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { .. }),
            "{cursor:?}: {err:?}"
        );
    }
    let zero = ExecutionQuery {
        limit: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        store.list_executions_page(&zero).await,
        Err(StoreError::Invalid { .. })
    ));

    let plain: &dyn Store = &*store;
    assert!(
        plain.catalog().is_some(),
        "WorkflowStore::catalog hands out the catalog"
    );
    assert!(
        plain.history().is_some(),
        "ExecutionStore::history hands out the history"
    );
    let rec = record("wf", ExecutionStatus::Running, T0);
    plain.save_execution(&rec).await.unwrap();
    let history = plain.history().unwrap();
    assert_eq!(
        history.count_by_status(None).await.unwrap(),
        HashMap::from([(ExecutionStatus::Running, 1)])
    );
}
