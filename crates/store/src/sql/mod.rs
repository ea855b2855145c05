//! The SQL store: sea-orm on PostgreSQL or SQLite, with the schema of `spane-migrations`.

mod convert;
mod entity;
mod executions;
#[cfg(feature = "postgres")]
mod unnest;
mod workflows;

use std::fmt;
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    SqlErr, Statement, TransactionTrait,
};
use sha2::{Digest, Sha256};
use spane_migrations::{Migrator, MigratorTrait};

use crate::StoreError;

/// How [`SqlStore::connect`] sets up the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlStoreOptions {
    /// PostgreSQL only: the schema that holds the tables (the connections' `search_path`),
    /// created when missing if `run_migrations` is set. `None` uses the server's default
    /// search path (usually `public`). Useful to keep several deployments, or tests, apart in
    /// one database. A plain identifier: letters, digits and `_`, not starting with a digit.
    pub schema: Option<String>,
    /// Apply the pending migrations of `spane-migrations` when connecting (default `true`).
    /// With `false`, the schema must be migrated beforehand (`spane_migrations::Migrator`).
    pub run_migrations: bool,
    /// Most connections in the pool. Default: 10 on PostgreSQL; 1 on SQLite, which allows one
    /// writer at a time anyway (and for which every connection to `sqlite::memory:` would be
    /// a database of its own).
    pub max_connections: Option<u32>,
    /// How long a call waits for a connection before it fails with
    /// [`StoreError::Unavailable`] (default 30 s). While the server refuses connections, the
    /// pool keeps trying to connect for that long, with a pause between tries that doubles up
    /// to a fifth of this wait (6 s by default): a call that started during an outage may see
    /// the server only that long after it is back. A shorter wait lets a caller that retries
    /// (the write-behind history writer does) notice an outage, and its end, sooner (5 s: pauses
    /// of at most 1 s).
    pub acquire_timeout: Option<Duration>,
}

impl Default for SqlStoreOptions {
    fn default() -> Self {
        Self {
            schema: None,
            run_migrations: true,
            max_connections: None,
            acquire_timeout: None,
        }
    }
}

impl SqlStoreOptions {
    /// Sets [`schema`](Self::schema).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets [`run_migrations`](Self::run_migrations).
    pub fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_timeout(mut self, wait: Duration) -> Self {
        self.acquire_timeout = Some(wait);
        self
    }
}

/// Definitions and history in PostgreSQL or SQLite, through sea-orm.
///
/// - **Definitions.** `save_workflow` compares the SHA-256 of the definition's canonical JSON
///   ([`content_hash`](crate::content_hash)) with the latest version's: unchanged keeps the
///   version, changed inserts the next one. Concurrent savers race on the unique key
///   `(workflow_id, version)`; a loser reads again and retries, so no version is written twice
///   and two savers of the same new definition get the same version.
/// - **History.** One row per execution, its node results in the row as a JSON object
///   (`executions.nodes`, node id to entry): copying a finished execution is one row, not one
///   per node, which is what lets write-behind history keep up with a busy engine. Every write
///   is an idempotent upsert: an execution by id (`ON CONFLICT ... DO UPDATE`), its node
///   entries merged by node id, so a write repeated after a crash or by two workers leaves
///   one row and one entry per node, and a record that lacks some nodes' results does not
///   drop them. `save_node_result` merges one entry in one statement; for an execution that
///   was never saved it fails with [`StoreError::ExecutionNotFound`], as in
///   [`MemoryStore`](crate::MemoryStore), rather than inventing a placeholder execution.
/// - **JSON** (initial data, node data, definitions) is stored as text, so values round-trip
///   exactly: `0`, `false`, `""` and `null` stay what they are, key order is kept, and a
///   node without data (SQL `NULL`) is distinct from one whose data is `null`.
///
/// Cloning is cheap: clones share the connection pool.
#[derive(Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.db.get_database_backend())
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, `sqlite://path?mode=rwc`,
    /// `sqlite::memory:`) and, unless `options` says otherwise, applies the pending migrations.
    ///
    /// On PostgreSQL the migrations run in one transaction under an advisory lock (per
    /// schema), so processes that start together migrate once and wait for each other.
    pub async fn connect(url: &str, options: SqlStoreOptions) -> Result<Self, StoreError> {
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let sqlite = url.starts_with("sqlite:");
        if !postgres && !sqlite {
            return Err(StoreError::Invalid {
                reason: "database url: expected postgres://, postgresql:// or sqlite:".to_owned(),
            });
        }
        if postgres && !cfg!(feature = "postgres") {
            return Err(StoreError::Invalid {
                reason: "database url: a postgres:// URL needs spane-store's `postgres` feature (spane's `postgres`)".to_owned(),
            });
        }
        if sqlite && !cfg!(feature = "sqlite") {
            return Err(StoreError::Invalid {
                reason: "database url: a sqlite: URL needs spane-store's `sqlite` feature (spane's `sqlite`)".to_owned(),
            });
        }
        if let Some(schema) = &options.schema {
            if sqlite {
                return Err(StoreError::Invalid {
                    reason: format!("schema = {schema:?}: SQLite has no schemas"),
                });
            }
            check_identifier(schema)?;
        }
        let mut connect = ConnectOptions::new(url);
        connect.sqlx_logging(false);
        if let Some(schema) = &options.schema {
            connect.set_schema_search_path(schema.clone());
        }
        if let Some(max) = options.max_connections {
            connect.max_connections(max);
        }
        if let Some(wait) = options.acquire_timeout {
            connect.acquire_timeout(wait);
        }
        let db = Database::connect(connect).await.map_err(db_error)?;
        let store = Self { db };
        if options.run_migrations {
            store.migrate(options.schema.as_deref()).await?;
        }
        Ok(store)
    }

    /// Closes the connections. Clones of this store can no longer be used afterwards.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.db.close_by_ref().await.map_err(db_error)
    }

    async fn migrate(&self, schema: Option<&str>) -> Result<(), StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Migrator::up(&self.db, None).await.map_err(db_error);
        }
        let txn = self.db.begin().await.map_err(db_error)?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [migration_lock_key(schema).into()],
        ))
        .await
        .map_err(db_error)?;
        if let Some(schema) = schema {
            // `schema` is a checked identifier.
            txn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .map_err(db_error)?;
        }
        Migrator::up(&txn, None).await.map_err(db_error)?;
        txn.commit().await.map_err(db_error)
    }
}

/// `n` as a SQL `LIMIT` or `OFFSET`: both databases take a signed 64-bit value.
fn clamp(n: u64) -> u64 {
    n.min(i64::MAX as u64)
}

/// The advisory lock that serialises migrations of one schema.
fn migration_lock_key(schema: Option<&str>) -> i64 {
    let digest = Sha256::digest(format!("spane-migrations/{}", schema.unwrap_or("")).as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

fn check_identifier(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let valid = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            reason: format!(
                "schema = {schema:?}: expected letters, digits and `_` (at most 63), not starting with a digit"
            ),
        })
    }
}

/// A database error as a store error: [`StoreError::Unavailable`] when retrying may help (the
/// connection, the pool, a serialization failure or a deadlock, a busy SQLite file).
pub(crate) fn db_error(e: DbErr) -> StoreError {
    let reason = e.to_string();
    let transient = is_transient(&e);
    let source = Some(spane_core::ErrorSource::new(e));
    if transient {
        StoreError::Unavailable { reason, source }
    } else {
        StoreError::Database { reason, source }
    }
}

fn is_transient(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error;
    let (DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error))) =
        e
    else {
        return matches!(e, DbErr::Conn(_) | DbErr::ConnectionAcquire(_));
    };
    match &**error {
        Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => true,
        Error::Database(db) => matches!(
            db.code().as_deref(),
            // PostgreSQL: serialization failure, deadlock, admin shutdown, cannot connect now.
            Some("40001" | "40P01" | "57P01" | "57P03")
            // SQLite: busy, locked (and their extended codes).
            | Some("5" | "6" | "261" | "262" | "517")
        ),
        _ => false,
    }
}

/// Whether `e` is the violation of a unique key.
fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

#[cfg(test)]
mod tests {
    use super::{check_identifier, migration_lock_key};

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["public", "spane_test_01hz", "_x", "A1"] {
            assert!(check_identifier(good).is_ok(), "{good}");
        }
        for bad in ["", "1x", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_keys_differ_per_schema() {
        assert_ne!(migration_lock_key(None), migration_lock_key(Some("a")));
        assert_eq!(migration_lock_key(Some("a")), migration_lock_key(Some("a")));
    }
}
