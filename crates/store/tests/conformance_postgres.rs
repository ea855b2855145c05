//! The store conformance suite on [`SqlStore`] over PostgreSQL: each test gets a schema of its
//! own (`spane_test_<ulid>`), created before and dropped after (also when the test fails).
//!
//! The server comes from `SPANE_DATABASE_URL` or `DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (`cargo xtask services` checks it is up).

use std::sync::Arc;

use sea_orm::{ConnectionTrait, Database};
use spane_core::ExecutionId;
use spane_store::{HistoryStore, SqlStore, SqlStoreOptions};
use spane_testkit::async_trait;
use spane_testkit::postgres::database_url;
use spane_testkit::store_scenarios::StoreFactory;

struct Postgres {
    url: String,
    schema: String,
}

impl Postgres {
    fn new() -> Self {
        Self {
            url: database_url(),
            schema: format!(
                "spane_test_{}",
                ExecutionId::new().to_string().to_lowercase()
            ),
        }
    }

    async fn admin(&self, sql: &str) {
        let db = Database::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is not reachable: {e}", self.url));
        db.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = db.close().await;
    }
}

#[async_trait]
impl StoreFactory for Postgres {
    async fn store(&self) -> Arc<dyn HistoryStore> {
        self.admin(&format!("CREATE SCHEMA \"{}\"", self.schema))
            .await;
        let options = SqlStoreOptions::default()
            .schema(self.schema.clone())
            .max_connections(4);
        Arc::new(
            SqlStore::connect(&self.url, options)
                .await
                .expect("connect to PostgreSQL"),
        )
    }

    async fn cleanup(&self) {
        self.admin(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        ))
        .await;
    }
}

spane_testkit::store_conformance_tests!(Postgres::new());

/// Several processes starting at once migrate the schema once: the others wait on the
/// advisory lock and find the migrations applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_migrate_once() {
    let factory = Postgres::new();
    let connects = (0..4).map(|_| {
        let url = factory.url.clone();
        let options = SqlStoreOptions::default()
            .schema(factory.schema.clone())
            .max_connections(2);
        tokio::spawn(async move { SqlStore::connect(&url, options).await })
    });
    let mut stores = Vec::new();
    for task in connects.collect::<Vec<_>>() {
        stores.push(task.await.unwrap().expect("every connect succeeds"));
    }
    for store in &stores {
        store.close().await.unwrap();
    }
    let db = Database::connect(&factory.url).await.unwrap();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT version FROM \"{}\".spane_migrations",
                factory.schema
            ),
        ))
        .await
        .unwrap();
    use spane_migrations::MigratorTrait;
    assert_eq!(
        rows.len(),
        spane_migrations::Migrator::migrations().len(),
        "every migration, each recorded once"
    );
    let _ = db.close().await;
    factory.cleanup().await;
}
