//! Write-behind history on PostgreSQL with worker processes: a worker is killed mid-run, and
//! afterwards the SQL history still holds every committed node (the surviving worker's history
//! writer takes over what the dead one had read but not written).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use sea_orm::{ConnectionTrait, Database};
use spane::prelude::*;
use spane::queue::RedisConfig;
use spane::store::{ExecutionStore, SqlStore, SqlStoreOptions};
use spane_testkit::postgres::database_url;

const CHAIN: usize = 5;

/// Drops the test's schema when the test ends, however it ends.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // A thread of its own: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(db) = Database::connect(&url).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                            ))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_loses_no_history_with_write_behind() {
    const EXECUTIONS: usize = 40;
    let url = redis_url();
    let prefix = unique_prefix("history");
    let _keys = Keyspace::new(&url, &prefix);
    let db = database_url();
    let schema = format!(
        "spane_hist_{}",
        ExecutionId::new().to_string().to_lowercase()
    );
    let _schema = Schema {
        url: db.clone(),
        name: schema.clone(),
    };
    let store = Arc::new(
        SqlStore::connect(&db, SqlStoreOptions::default().schema(schema.clone()))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {db} is needed for this test: {e}")),
    );

    let options = WorkerOptions {
        concurrency: 8,
        lease_ms: 1000,
        work_ms: 60,
        events_cap: None,
    };
    let extra = [
        "--database-url",
        db.as_str(),
        "--schema",
        schema.as_str(),
        "--history-reclaim-ms",
        "1000",
    ];
    let mut a = Worker::start_with(&url, &prefix, "A", &options, &extra);
    let b = Worker::start_with(&url, &prefix, "B", &options, &extra);

    // The test's own engine registers and enqueues; it runs no workers (so no writer).
    let engine = WorkflowEngine::builder()
        .registry(NodeRegistry::new().tap_pass())
        .config(engine_config())
        .store(store.clone())
        .redis(RedisConfig::new(&url).prefix(&prefix))
        .await
        .expect("Redis")
        .build();
    engine
        .register_workflow(chain("chain", CHAIN))
        .await
        .expect("valid workflow");
    let ids = enqueue_many(&engine, "chain", EXECUTIONS).await;
    let client = connect(&url).await.expect("Redis");

    poll_until(
        "worker A running nodes, 15 started",
        Duration::from_secs(30),
        || async {
            let w = per_worker(&client, &prefix).await;
            let started = w.get("A").copied().unwrap_or(0);
            let done = w.get("A:finished").copied().unwrap_or(0);
            (started >= 15 && started > done).then_some(())
        },
    )
    .await;
    a.sigkill();

    let records = wait_all(&engine, &ids, Duration::from_secs(60)).await;
    assert!(
        records
            .iter()
            .all(|r| r.status == ExecutionStatus::Completed)
    );

    // Every committed node reaches PostgreSQL, with the output Redis has.
    let nodes = chain_nodes(CHAIN);
    poll_until(
        "the SQL history holds every committed node",
        Duration::from_secs(30),
        || async {
            for record in &records {
                let Ok(Some(row)) = store.get_execution(record.execution_id).await else {
                    return None;
                };
                if row.status != ExecutionStatus::Completed || row.node_results.len() != nodes.len()
                {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for record in &records {
        let row = store
            .get_execution(record.execution_id)
            .await
            .unwrap()
            .unwrap();
        for node in &nodes {
            assert_eq!(row.node_results[node].status, NodeStatus::Completed);
            assert_eq!(row.output(node), record.output(node), "{node}");
        }
    }
    drop(b);
}

trait TapPass {
    fn tap_pass(self) -> Self;
}

impl TapPass for NodeRegistry {
    /// The test engine validates definitions against the worker's node type.
    fn tap_pass(mut self) -> Self {
        self.register(
            "pass",
            executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
        );
        self
    }
}
