//! # spane-migrations
//!
//! The SQL schema of SPANE's history store, as [sea-orm migrations] that run on PostgreSQL and
//! SQLite. `spane_store::SqlStore` applies them when it connects (unless told not to); a
//! program that manages its schema itself runs [`Migrator`] with any sea-orm connection.
//!
//! | Table | What it holds |
//! |---|---|
//! | `workflows` | one row per workflow: name, `active`, `latest_version`, timestamps |
//! | `workflow_versions` | every definition version, unique per `(workflow_id, version)`, with its content hash |
//! | `executions` | one row per execution: pinned version, status, parent (execution and node) and depth, initial data, metadata, error, timestamps, and its node results (`nodes`) |
//!
//! `executions.nodes` is a JSON object from node id to that node's entry: `status`, `data`
//! (the output's JSON text, as a string; `null` for no output), `error`, `attempts`, `claims`,
//! `continued`, `started_at`, `finished_at` — every key present, `null` for none. Until
//! migration 7 these were the rows of a `node_results` table, one per `(execution_id,
//! node_id)`; migration 7 moves them into their execution's row (a finished execution is then
//! written as one row, not one per node) and its `down` moves them back.
//!
//! Migration 3 created `dlq_items`, `logs` and `payloads`, which no code wrote; migration 5
//! drops them (dead letters live in the queue backend, and payloads are resolved before
//! history is written).
//!
//! JSON values are stored as JSON **text** (`TEXT`), not `jsonb`: the text round-trips exactly
//! (key order, `0`, `false`, `""` and `null` alike), and SQL `NULL` means "no value", which
//! stays distinct from the JSON value `null`. Times are milliseconds since the Unix epoch
//! (`BIGINT`), like everywhere else in SPANE. Id columns compare by bytes (`COLLATE "C"` on
//! PostgreSQL, SQLite's default), so listings sort the same on every backend whatever the
//! database's locale, and ULIDs sort by time. The bookkeeping table is `spane_migrations`
//! rather than sea-orm's default `seaql_migrations`, so that SPANE's schema can live beside an
//! application's own migrations.
//!
//! ```no_run
//! # async fn run() -> Result<(), sea_orm_migration::DbErr> {
//! use spane_migrations::{Migrator, MigratorTrait};
//!
//! let db = sea_orm_migration::sea_orm::Database::connect("sqlite://history.db?mode=rwc").await?;
//! Migrator::up(&db, None).await?;
//! # Ok(()) }
//! ```
//!
//! [sea-orm migrations]: https://www.sea-ql.org/SeaORM/docs/migration/writing-migration/

mod collate;
mod m20261125_000001_workflows;
mod m20261125_000002_executions;
mod m20261125_000003_operations;
mod m20261130_000004_parent_node;
mod m20261201_000005_drop_unused;
mod m20261201_000006_node_claims;
mod m20261202_000007_nodes_in_execution;

pub use sea_orm_migration;
pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

/// Name of the table that records which migrations ran.
pub const MIGRATION_TABLE: &str = "spane_migrations";

/// Every migration of the SPANE schema, oldest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_workflows::Migration),
            Box::new(m20261125_000002_executions::Migration),
            Box::new(m20261125_000003_operations::Migration),
            Box::new(m20261130_000004_parent_node::Migration),
            Box::new(m20261201_000005_drop_unused::Migration),
            Box::new(m20261201_000006_node_claims::Migration),
            Box::new(m20261202_000007_nodes_in_execution::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        MIGRATION_TABLE.into_iden()
    }
}
