//! The batch upsert of executions on PostgreSQL: one statement for any number of rows.
//!
//! The rows go as one array per column, expanded by `UNNEST`, so the statement's text is the
//! same for every batch: it is prepared once per connection and kept in the connection's
//! statement cache, and PostgreSQL binds 12 parameters instead of 12 per row. A multi-row
//! `VALUES` has a different text for every row count, so each new batch size was parsed,
//! planned and cached again (with up to thousands of parameters), which cost the database
//! and the writer more than the rows themselves. Arrays also carry `NULL`s and text as they
//! are: nothing is escaped.

use sea_orm::sqlx::{self, PgPool};
use sea_orm::{DbErr, RuntimeErr};
use spane_core::ExecutionRecord;

use super::convert::{json_text, nodes_text};

/// Inserts the rows, or merges them into those that exist: the columns are replaced but
/// `created_at` (the listing order never moves) and `metadata`; `nodes` is merged entry by
/// entry (PostgreSQL's `||` replaces top-level keys), so a partial record never drops a
/// node's result. The rows are inserted in the order of the arrays.
const UPSERT: &str = r#"INSERT INTO executions (id, workflow_id, workflow_version, status,
    parent_execution_id, depth, parent_node_id, initial_data, error, created_at, finished_at,
    nodes)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::int8[],
    $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[])
ON CONFLICT (id) DO UPDATE SET
    workflow_id = EXCLUDED.workflow_id,
    workflow_version = EXCLUDED.workflow_version,
    status = EXCLUDED.status,
    parent_execution_id = EXCLUDED.parent_execution_id,
    parent_node_id = EXCLUDED.parent_node_id,
    depth = EXCLUDED.depth,
    initial_data = EXCLUDED.initial_data,
    error = EXCLUDED.error,
    finished_at = EXCLUDED.finished_at,
    nodes = (COALESCE(executions.nodes, '{}')::jsonb || COALESCE(EXCLUDED.nodes, '{}')::jsonb)::text"#;

/// The columns of the rows, one array each, in the order of [`UPSERT`]'s parameters.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<String>,
    workflow_id: Vec<&'a str>,
    workflow_version: Vec<i64>,
    status: Vec<&'static str>,
    parent_execution_id: Vec<Option<String>>,
    depth: Vec<i64>,
    parent_node_id: Vec<Option<&'a str>>,
    initial_data: Vec<String>,
    error: Vec<Option<&'a str>>,
    created_at: Vec<i64>,
    finished_at: Vec<Option<i64>>,
    nodes: Vec<String>,
}

impl<'a> Columns<'a> {
    fn of(records: &[&'a ExecutionRecord]) -> Self {
        let mut c = Columns::default();
        for r in records {
            c.id.push(r.execution_id.to_string());
            c.workflow_id.push(&r.workflow_id);
            c.workflow_version.push(i64::from(r.workflow_version));
            c.status.push(r.status.as_str());
            c.parent_execution_id
                .push(r.parent_execution_id.map(|p| p.to_string()));
            c.depth.push(i64::from(r.depth));
            c.parent_node_id.push(r.parent_node_id.as_deref());
            c.initial_data.push(json_text(&r.initial_data));
            c.error.push(r.error.as_deref());
            c.created_at.push(r.created_at);
            c.finished_at.push(r.finished_at);
            c.nodes.push(nodes_text(&r.node_results));
        }
        c
    }
}

/// Upserts `records` (distinct executions, in the order their row locks are taken) in one
/// statement, which is atomic by itself.
pub(super) async fn upsert_executions(
    pool: &PgPool,
    records: &[&ExecutionRecord],
) -> Result<(), DbErr> {
    let c = Columns::of(records);
    sqlx::query(UPSERT)
        .bind(c.id)
        .bind(c.workflow_id)
        .bind(c.workflow_version)
        .bind(c.status)
        .bind(c.parent_execution_id)
        .bind(c.depth)
        .bind(c.parent_node_id)
        .bind(c.initial_data)
        .bind(c.error)
        .bind(c.created_at)
        .bind(c.finished_at)
        .bind(c.nodes)
        .execute(pool)
        .await
        .map(|_| ())
        // As sea-orm reports a failed statement, so that `db_error` tells transient failures
        // from the others the same way for every statement of the store.
        .map_err(|e| DbErr::Exec(RuntimeErr::SqlxError(e.into())))
}
