//! Node results move into their execution's row: `executions.nodes`, a JSON object from node id
//! to entry, replaces the `node_results` table.
//!
//! Write-behind history copies a finished execution at once; with a row per node, a 10-node
//! execution was 11 row inserts, each with its index entries and foreign-key check, and the
//! database spent four times the CPU it spends on one row holding the same results. An entry
//! keeps every column of the old table: `{"status", "data", "error", "attempts", "claims",
//! "continued", "started_at", "finished_at"}`, with `data` the output's JSON text as a string
//! (`null`: no output). Existing rows are copied; `down` copies them back.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Executions {
    Table,
    Nodes,
}

#[derive(DeriveIden)]
enum NodeResults {
    Table,
}

/// Every node result of an execution as one JSON object (the format of `executions.nodes`).
fn copy_into_executions(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "UPDATE executions SET nodes = n.nodes FROM (\
             SELECT execution_id, json_object_agg(node_id, json_build_object(\
             'status', status, 'data', data, 'error', error, 'attempts', attempts, \
             'claims', claims, 'continued', continued, 'started_at', started_at, \
             'finished_at', finished_at))::text AS nodes \
             FROM node_results GROUP BY execution_id) AS n \
             WHERE executions.id = n.execution_id"
        }
        _ => {
            "UPDATE executions SET nodes = (\
             SELECT json_group_object(node_id, json_object(\
             'status', status, 'data', data, 'error', error, 'attempts', attempts, \
             'claims', claims, 'continued', json(CASE WHEN continued THEN 'true' ELSE 'false' END), \
             'started_at', started_at, 'finished_at', finished_at)) \
             FROM node_results WHERE node_results.execution_id = executions.id) \
             WHERE EXISTS (SELECT 1 FROM node_results WHERE node_results.execution_id = executions.id)"
        }
    }
}

/// The entries of `executions.nodes` as rows of `node_results` again.
fn copy_into_node_results(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "INSERT INTO node_results (execution_id, node_id, status, data, error, attempts, \
             claims, continued, started_at, finished_at) \
             SELECT e.id, j.key, j.value->>'status', j.value->>'data', j.value->>'error', \
             (j.value->>'attempts')::bigint, COALESCE((j.value->>'claims')::bigint, 0), \
             COALESCE((j.value->>'continued')::boolean, FALSE), \
             (j.value->>'started_at')::bigint, (j.value->>'finished_at')::bigint \
             FROM executions e, json_each(e.nodes::json) j WHERE e.nodes IS NOT NULL"
        }
        _ => {
            "INSERT INTO node_results (execution_id, node_id, status, data, error, attempts, \
             claims, continued, started_at, finished_at) \
             SELECT e.id, j.key, json_extract(j.value, '$.status'), json_extract(j.value, '$.data'), \
             json_extract(j.value, '$.error'), json_extract(j.value, '$.attempts'), \
             COALESCE(json_extract(j.value, '$.claims'), 0), \
             COALESCE(json_extract(j.value, '$.continued'), 0), \
             json_extract(j.value, '$.started_at'), json_extract(j.value, '$.finished_at') \
             FROM executions e, json_each(e.nodes) j WHERE e.nodes IS NOT NULL"
        }
    }
}

// The trait spells `&SchemaManager` with its lifetime elided; naming it here would not match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager
            .alter_table(
                Table::alter()
                    .table(Executions::Table)
                    .add_column(text_null(Executions::Nodes))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(copy_into_executions(manager.get_database_backend()))
            .await?;
        manager
            .drop_table(Table::drop().table(NodeResults::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // The table as migrations 2 and 6 left it, made by them.
        crate::m20261125_000002_executions::create_node_results(manager).await?;
        crate::m20261201_000006_node_claims::Migration
            .up(manager)
            .await?;
        db.execute_unprepared(copy_into_node_results(manager.get_database_backend()))
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Executions::Table)
                    .drop_column(Executions::Nodes)
                    .to_owned(),
            )
            .await
    }
}
