//! PostgreSQL for tests: the server's URL and a schema of its own per test, so that tests run
//! in parallel and in any order against one database.
//!
//! The server comes from `SPANE_DATABASE_URL` or `DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`.

use std::future::Future;

use sea_orm::{ConnectionTrait, Database};

/// The test server's URL.
pub fn database_url() -> String {
    std::env::var("SPANE_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs `sql` on its own connection to [`database_url`]; panics, naming the statement, when it
/// fails or the server is unreachable.
pub async fn admin(sql: &str) {
    let url = database_url();
    let db = Database::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is not reachable: {e}"));
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = db.close().await;
}

/// Runs `scenario` with a fresh schema (`spane_test_<ulid>`), dropped afterwards even when the
/// scenario panics (the panic is then resumed).
pub async fn with_schema<F, Fut>(scenario: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = format!(
        "spane_test_{}",
        spane_core::ExecutionId::new().to_string().to_lowercase()
    );
    admin(&format!("CREATE SCHEMA \"{schema}\"")).await;
    let outcome = tokio::spawn(scenario(schema.clone())).await;
    admin(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
