//! Every migration, up and down one step at a time, on SQLite and on PostgreSQL (a schema of
//! its own, dropped afterwards), with the keys the store relies on.

use sea_orm_migration::SchemaManager;
use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use spane_migrations::{Migrator, MigratorTrait};

/// The tables each migration creates, in order.
const STEPS: [&[&str]; 3] = [
    &["workflows", "workflow_versions"],
    &["executions", "node_results"],
    &["dlq_items", "logs", "payloads"],
];

/// The tables of the third step, which the fifth drops.
const UNUSED: &[&str] = STEPS[2];

async fn tables_exist(db: &DatabaseConnection, tables: &[&str]) -> Vec<bool> {
    let manager = SchemaManager::new(db);
    let mut out = Vec::new();
    for table in tables {
        out.push(manager.has_table(*table).await.expect("has_table"));
    }
    out
}

async fn exec(db: &DatabaseConnection, sql: &str) -> Result<(), String> {
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn exercise(db: &DatabaseConnection) {
    // Up, one migration at a time.
    for (i, tables) in STEPS.iter().enumerate() {
        assert!(
            tables_exist(db, tables).await.iter().all(|e| !e),
            "before step {i}"
        );
        Migrator::up(db, Some(1)).await.expect("up one step");
        assert!(
            tables_exist(db, tables).await.iter().all(|e| *e),
            "after step {i}"
        );
    }
    exec(db, "INSERT INTO payloads (id, execution_id, data, size, created_at) VALUES ('p', 'x', '[]', 2, 0)").await.unwrap();
    // The fourth adds the parent's node of a sub-workflow's execution.
    let manager = SchemaManager::new(db);
    assert!(
        !manager
            .has_column("executions", "parent_node_id")
            .await
            .unwrap()
    );
    Migrator::up(db, Some(1)).await.expect("up one step");
    assert!(
        manager
            .has_column("executions", "parent_node_id")
            .await
            .unwrap()
    );
    // The fifth drops the tables of the third that nothing wrote.
    Migrator::up(db, Some(1)).await.expect("up one step");
    assert!(tables_exist(db, UNUSED).await.iter().all(|e| !e));
    // The sixth counts claims beside attempts; rows written before it read 0.
    exec(db, "INSERT INTO workflows (id, name, active, latest_version, created_at, updated_at) VALUES ('old', 'W', TRUE, 1, 0, 0)").await.unwrap();
    exec(db, "INSERT INTO executions (id, workflow_id, workflow_version, status, depth, initial_data, created_at) VALUES ('old', 'old', 1, 'completed', 0, 'null', 0)").await.unwrap();
    exec(db, "INSERT INTO node_results (execution_id, node_id, status, attempts, continued) VALUES ('old', 'a', 'completed', 2, FALSE)").await.unwrap();
    assert!(!manager.has_column("node_results", "claims").await.unwrap());
    Migrator::up(db, Some(1)).await.expect("up one step");
    assert!(manager.has_column("node_results", "claims").await.unwrap());
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT claims FROM node_results WHERE execution_id = 'old'",
        ))
        .await
        .unwrap()
        .expect("the old row");
    assert_eq!(row.try_get::<i64>("", "claims").unwrap(), 0);
    // The seventh moves node results into their execution's row, values kept.
    exec(db, "INSERT INTO node_results (execution_id, node_id, status, data, error, attempts, claims, continued, started_at, finished_at) VALUES ('old', 'b', 'failed', '{\"k\":[1,2.5]}', 'boom \"quoted\"', 3, 4, TRUE, 10, 20)").await.unwrap();
    exec(db, "INSERT INTO node_results (execution_id, node_id, status, data, attempts, continued) VALUES ('old', 'c', 'completed', 'null', 1, FALSE)").await.unwrap();
    Migrator::up(db, Some(1)).await.expect("up one step");
    assert!(tables_exist(db, &["node_results"]).await.iter().all(|e| !e));
    let nodes = node_entries(db, "old").await;
    assert_eq!(
        nodes,
        serde_json::json!({
            "a": {"status": "completed", "data": null, "error": null, "attempts": 2, "claims": 0,
                  "continued": false, "started_at": null, "finished_at": null},
            "b": {"status": "failed", "data": "{\"k\":[1,2.5]}", "error": "boom \"quoted\"",
                  "attempts": 3, "claims": 4, "continued": true, "started_at": 10, "finished_at": 20},
            "c": {"status": "completed", "data": "null", "error": null, "attempts": 1, "claims": 0,
                  "continued": false, "started_at": null, "finished_at": null},
        })
    );
    assert!(
        Migrator::get_pending_migrations(db)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::up(db, None).await.expect("up again is a no-op");

    // The keys the store relies on.
    exec(db, "INSERT INTO workflows (id, name, active, latest_version, created_at, updated_at) VALUES ('wf', 'W', TRUE, 1, 0, 0)").await.unwrap();
    let version = "INSERT INTO workflow_versions (workflow_id, version, definition, content_hash, created_at) VALUES ('wf', 1, '{}', 'h', 0)";
    exec(db, version).await.unwrap();
    assert!(
        exec(db, version).await.is_err(),
        "unique (workflow_id, version)"
    );
    let execution = "INSERT INTO executions (id, workflow_id, workflow_version, status, depth, initial_data, created_at) VALUES ('x', 'wf', 1, 'running', 0, 'null', 0)";
    exec(db, execution).await.unwrap();
    assert!(exec(db, execution).await.is_err(), "unique execution id");

    if db.get_database_backend() == DbBackend::Postgres {
        // Key columns compare by bytes whatever the database's locale.
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT table_name, column_name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND collation_name = 'C' \
                 ORDER BY table_name, column_name",
            ))
            .await
            .unwrap();
        let columns: Vec<String> = rows
            .iter()
            .map(|r| {
                let table: String = r.try_get("", "table_name").unwrap();
                let column: String = r.try_get("", "column_name").unwrap();
                format!("{table}.{column}")
            })
            .collect();
        assert_eq!(
            columns,
            [
                "executions.id",
                "executions.parent_execution_id",
                "executions.workflow_id",
                "workflow_versions.workflow_id",
                "workflows.id",
            ]
        );
    }

    // Down, one migration at a time, newest first: the node results are rows again.
    Migrator::down(db, Some(1)).await.expect("down one step");
    assert!(!manager.has_column("executions", "nodes").await.unwrap());
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT status, data, error, attempts, claims, continued, started_at, finished_at \
             FROM node_results WHERE execution_id = 'old' AND node_id = 'b'",
        ))
        .await
        .unwrap()
        .expect("node b's row");
    assert_eq!(row.try_get::<String>("", "status").unwrap(), "failed");
    assert_eq!(
        row.try_get::<Option<String>>("", "data")
            .unwrap()
            .as_deref(),
        Some("{\"k\":[1,2.5]}")
    );
    assert_eq!(
        row.try_get::<Option<String>>("", "error")
            .unwrap()
            .as_deref(),
        Some("boom \"quoted\"")
    );
    assert_eq!(row.try_get::<i64>("", "attempts").unwrap(), 3);
    assert_eq!(row.try_get::<i64>("", "claims").unwrap(), 4);
    assert!(row.try_get::<bool>("", "continued").unwrap());
    assert_eq!(
        row.try_get::<Option<i64>>("", "started_at").unwrap(),
        Some(10)
    );
    assert_eq!(
        row.try_get::<Option<i64>>("", "finished_at").unwrap(),
        Some(20)
    );
    let count = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM node_results WHERE execution_id = 'old' AND data IS NULL",
        ))
        .await
        .unwrap()
        .expect("a count");
    assert_eq!(
        count.try_get::<i64>("", "n").unwrap(),
        1,
        "only node a has no data"
    );
    Migrator::down(db, Some(1)).await.expect("down one step");
    assert!(!manager.has_column("node_results", "claims").await.unwrap());
    Migrator::down(db, Some(1)).await.expect("down one step");
    assert!(tables_exist(db, UNUSED).await.iter().all(|e| *e));
    Migrator::down(db, Some(1)).await.expect("down one step");
    assert!(
        !manager
            .has_column("executions", "parent_node_id")
            .await
            .unwrap()
    );
    for (i, tables) in STEPS.iter().enumerate().rev() {
        Migrator::down(db, Some(1)).await.expect("down one step");
        assert!(
            tables_exist(db, tables).await.iter().all(|e| !e),
            "after undoing step {i}"
        );
    }
    // And up again from nothing.
    Migrator::up(db, None).await.expect("up after down");
    assert!(
        tables_exist(db, &["workflows", "workflow_versions", "executions"])
            .await
            .iter()
            .all(|e| *e)
    );
    assert!(tables_exist(db, UNUSED).await.iter().all(|e| !e));
    assert!(tables_exist(db, &["node_results"]).await.iter().all(|e| !e));
}

/// `executions.nodes` of execution `id`, parsed.
async fn node_entries(db: &DatabaseConnection, id: &str) -> serde_json::Value {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT nodes FROM executions WHERE id = '{id}'"),
        ))
        .await
        .unwrap()
        .expect("the execution's row");
    let text: String = row.try_get("", "nodes").unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn migrations_on_sqlite() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    assert_eq!(db.get_database_backend(), DbBackend::Sqlite);
    exercise(&db).await;
    assert!(
        SchemaManager::new(&db)
            .has_table(spane_migrations::MIGRATION_TABLE)
            .await
            .unwrap(),
        "bookkeeping in spane_migrations"
    );
}

#[tokio::test]
async fn migrations_on_postgres() {
    let url = std::env::var("SPANE_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "spane_test_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let admin = Database::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is not reachable: {e}"));
    exec(&admin, &format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();

    let mut options = ConnectOptions::new(&url);
    options
        .set_schema_search_path(schema.clone())
        .max_connections(2);
    let db = Database::connect(options).await.unwrap();
    let outcome = tokio::spawn({
        let db = db.clone();
        async move { exercise(&db).await }
    })
    .await;
    let _ = db.close().await;
    exec(&admin, &format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
