//! The store conformance suite on [`SqlStore`] over SQLite: a database file per test (the
//! way an embedded application keeps its history), and `sqlite::memory:`.

use std::path::PathBuf;
use std::sync::Arc;

use spane_core::ExecutionId;
use spane_store::{HistoryStore, SqlStore, SqlStoreOptions};
use spane_testkit::async_trait;
use spane_testkit::store_scenarios::StoreFactory;

/// A fresh database file in the temporary directory, deleted after the test.
struct SqliteFile {
    path: PathBuf,
}

impl SqliteFile {
    fn new() -> Self {
        let name = format!("spane-store-test-{}.db", ExecutionId::new());
        Self {
            path: std::env::temp_dir().join(name),
        }
    }
}

#[async_trait]
impl StoreFactory for SqliteFile {
    async fn store(&self) -> Arc<dyn HistoryStore> {
        let url = format!("sqlite://{}?mode=rwc", self.path.display());
        Arc::new(
            SqlStore::connect(&url, SqlStoreOptions::default())
                .await
                .expect("connect to a new SQLite file"),
        )
    }

    async fn cleanup(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An in-memory SQLite database (one connection, so one database).
struct SqliteMemory;

#[async_trait]
impl StoreFactory for SqliteMemory {
    async fn store(&self) -> Arc<dyn HistoryStore> {
        Arc::new(
            SqlStore::connect("sqlite::memory:", SqlStoreOptions::default())
                .await
                .expect("connect to sqlite::memory:"),
        )
    }
}

mod file {
    spane_testkit::store_conformance_tests!(super::SqliteFile::new());
}

mod memory {
    spane_testkit::store_conformance_tests!(super::SqliteMemory);
}

#[tokio::test]
async fn history_survives_reconnecting_to_the_file() {
    use serde_json::json;
    use spane_core::{ExecutionRecord, ExecutionStatus, NodeDefinition, WorkflowDefinition};
    use spane_store::{ExecutionStore, WorkflowStore};

    let factory = SqliteFile::new();
    let url = format!("sqlite://{}?mode=rwc", factory.path.display());
    let wf = WorkflowDefinition::new("wf", "W").node(NodeDefinition::new("a", "echo"));
    let record = {
        let mut built = ExecutionRecord::new(
            ExecutionId::new(),
            "wf",
            1,
            ExecutionStatus::Completed,
            json!({ "n": 0 }),
            1,
        );
        built.finished_at = Some(2);
        built
    };
    {
        let store = SqlStore::connect(&url, SqlStoreOptions::default())
            .await
            .unwrap();
        assert_eq!(store.save_workflow(&wf).await.unwrap(), 1);
        store.save_execution(&record).await.unwrap();
        store.close().await.unwrap();
    }
    // Connecting again runs no migration twice and finds everything.
    let store = SqlStore::connect(&url, SqlStoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.save_workflow(&wf).await.unwrap(), 1);
    assert_eq!(
        store.get_execution(record.execution_id).await.unwrap(),
        Some(record)
    );
    store.close().await.unwrap();
    factory.cleanup().await;
}

#[tokio::test]
async fn options_are_checked() {
    use spane_store::StoreError;

    let err = SqlStore::connect("sqlite::memory:", SqlStoreOptions::default().schema("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let err = SqlStore::connect("mysql://localhost/x", SqlStoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("postgres://"), "{err}");
    // Without migrations, an empty database has no tables: reads fail, they do not panic.
    let store = SqlStore::connect(
        "sqlite::memory:",
        SqlStoreOptions::default().run_migrations(false),
    )
    .await
    .unwrap();
    let err = spane_store::WorkflowStore::get_workflow(&store, "wf", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");
}
